"""A server's figures are its whole process tree's: the supervisor of ``--workers`` and every
worker. The sums of :mod:`chat.server.proctree`, on /proc-shaped files and on real processes, and what
the load tester makes of them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.loadtest import stats
from chat.loadtest.accounting import Ledger
from chat.loadtest.metrics import ServerProbe, ServerSnapshot
from chat.loadtest.monitor import Monitor
from chat.loadtest.options import LoadConfig
from chat.loadtest.report import build, render
from chat.loadtest.run import RunData
from chat.loadtest.worker import WorkerResult
from chat.server import proctree
from chat.server.metrics import TreeCollector


def stat_line(pid: int, name: str, utime: int, stime: int, cutime: int, cstime: int, rss_pages: int) -> str:
    """A /proc/PID/stat line: start time 500 ticks after boot, 1 MB of virtual memory."""
    fields = ["S", "1", str(pid), str(pid), "0", "-1", "0", "0", "0", "0", "0"]
    fields += [str(utime), str(stime), str(cutime), str(cstime), "20", "0", "1", "0", "500", str(2**20), str(rss_pages)]
    return f"{pid} ({name}) " + " ".join(fields) + " 0 0 0\n"


def fake_proc(root: Path, tree: dict[int, list[int]], stats_of: dict[int, str], fds: dict[int, int]) -> Path:
    (root / "stat").write_text("cpu  1 2 3 4\nbtime 1700000000\n")
    for pid, children in tree.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (task / "children").write_text(" ".join(map(str, children)) + (" " if children else ""))
        if pid in stats_of:
            (root / str(pid) / "stat").write_text(stats_of[pid])
        (root / str(pid) / "fd").mkdir()
        for fd in range(fds.get(pid, 0)):
            (root / str(pid) / "fd" / str(fd)).touch()
    return root


def test_stat_is_read_after_a_command_name_with_spaces_and_parentheses():
    stat = proctree.parse_stat(stat_line(4242, "python (a) b", 250, 150, 7, 3, 10), page_bytes=4096)
    assert stat.cpu_ticks == 410  # utime + stime + what it holds for reaped children
    assert stat.rss_bytes == 10 * 4096
    assert stat.start_ticks == 500
    assert stat.vms_bytes == 2**20


def test_tree_usage_adds_up_the_root_and_every_process_below_it(tmp_path):
    # A supervisor (100) with two workers (101, 102) and a worker's child (103); 104 exited
    # between the listing and the read, and is left out.
    proc = fake_proc(
        tmp_path,
        {100: [101, 102, 104], 101: [103], 102: [], 103: []},
        {
            100: stat_line(100, "python server.py", 10, 5, 300, 100, 1000),  # it reaped a worker: 400 ticks
            101: stat_line(101, "python server.py", 200, 50, 0, 0, 3000),
            102: stat_line(102, "python server.py", 100, 20, 0, 0, 2000),
            103: stat_line(103, "sh", 1, 1, 0, 0, 10),
        },
        {100: 5, 101: 20, 102: 30, 103: 3},
    )
    assert proctree.descendants(100, proc) == [100, 101, 102, 104, 103]
    usage = proctree.tree_usage(100, proc, ticks_per_second=100, page_bytes=4096)
    assert usage.processes == 4
    assert usage.cpu_seconds == pytest.approx((415 + 250 + 120 + 2) / 100)
    assert usage.rss_bytes == (1000 + 3000 + 2000 + 10) * 4096
    assert usage.vms_bytes == 4 * 2**20
    assert usage.open_fds == 58
    assert usage.start_ticks == 500
    # One process without children is just itself.
    alone = proctree.tree_usage(102, proc, ticks_per_second=100, page_bytes=4096)
    assert (alone.processes, alone.cpu_seconds, alone.rss_bytes, alone.open_fds) == (1, 1.2, 2000 * 4096, 30)
    with pytest.raises(ProcessLookupError):
        proctree.tree_usage(104, proc)  # the root itself is gone


def test_the_metrics_tree_collector_reports_the_sums_under_the_standard_names(tmp_path):
    proc = fake_proc(
        tmp_path,
        {100: [101], 101: []},
        {100: stat_line(100, "python", 100, 0, 0, 0, 10), 101: stat_line(101, "python", 200, 100, 0, 0, 20)},
        {100: 1, 101: 2},
    )
    samples = {s.name: s.value for family in TreeCollector(100, proc=proc).collect() for s in family.samples}
    assert samples["chat_processes"] == 2
    assert samples["process_cpu_seconds_total"] == pytest.approx(400 / proctree.TICKS_PER_SECOND)
    assert samples["process_resident_memory_bytes"] == 30 * proctree.PAGE_BYTES
    assert samples["process_open_fds"] == 3
    assert samples["process_start_time_seconds"] == 1700000000 + 500 / proctree.TICKS_PER_SECOND


# A process that holds MB megabytes, starts CHILDREN copies of itself below it (each holding as
# much, with no children), and says "ready" once all of them are.
TREE_SCRIPT = """
import os, subprocess, sys
mb, children = int(sys.argv[1]), int(sys.argv[2])
held = bytearray(os.urandom(mb * 2**20))
below = [subprocess.Popen([sys.executable, __file__, str(mb), "0"], stdout=subprocess.PIPE) for _ in range(children)]
for child in below:
    assert child.stdout.readline() == b"ready\\n"
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def process_tree(tmp_path) -> Iterator[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """A real process with two children, each holding 40 MB: (the root's pid, MB per process)."""
    script = tmp_path / "tree.py"
    script.write_text(TREE_SCRIPT)
    mb = 40
    root = subprocess.Popen([sys.executable, str(script), str(mb), "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert root.stdout is not None
        assert root.stdout.readline() == b"ready\n"
        yield root.pid, mb
    finally:
        assert root.stdin is not None
        root.stdin.close()  # the children's stdin is the root's: they end with it
        root.wait(timeout=30)
        assert root.stdout is not None
        root.stdout.close()


def test_tree_usage_of_real_processes_counts_every_process_memory(process_tree):
    root, mb = process_tree
    usage = proctree.tree_usage(root)
    assert usage.processes == 3
    each = [proctree.tree_usage(pid) for pid in proctree.descendants(root)]
    assert [u.processes for u in each] == [3, 1, 1]  # the children have none below them
    assert usage.rss_bytes >= 3 * mb * 2**20  # every process holds its own mb
    assert each[1].rss_bytes + each[2].rss_bytes < usage.rss_bytes  # the root's counts too
    assert usage.open_fds is not None
    assert usage.open_fds >= 3 * 3


def test_the_load_testers_probe_reads_the_whole_tree(process_tree):
    root, mb = process_tree
    snapshot = asyncio.run(ServerProbe(None, root).snapshot())
    assert snapshot.processes == 3
    assert snapshot.rss_bytes is not None
    assert snapshot.rss_bytes >= 3 * mb * 2**20
    assert snapshot.cpu_seconds is not None
    assert snapshot.cpu_seconds > 0
    leaf = proctree.descendants(root)[1]  # one process, nothing below it: its own figures
    single = asyncio.run(ServerProbe(None, leaf).snapshot())
    assert single.processes == 1
    assert single.rss_bytes is not None
    assert mb * 2**20 <= single.rss_bytes < snapshot.rss_bytes / 2


def idle_run(sockets: tuple[int, ...], before: ServerSnapshot, after: ServerSnapshot) -> RunData:
    """An idle run whose load processes held ``sockets`` between the two snapshots."""
    empty = stats.encode(stats.new_histogram())
    results = [
        WorkerResult(proc, Ledger(), empty, empty, [], attempted=n, connected=n) for proc, n in enumerate(sockets)
    ]
    config = LoadConfig(url="ws://127.0.0.1:1/ws", clients=sum(sockets), scenario="idle", procs=len(sockets))
    return RunData(config, results, Monitor(len(sockets)), 0, 1.0, before, after)


def test_idle_memory_per_socket_is_the_whole_trees_growth_over_every_socket():
    mb = 10**6
    data = idle_run((6000, 6000), ServerSnapshot(2.0, 150 * mb, 4), ServerSnapshot(3.0, 270 * mb, 4))
    report, _ = build(data)
    assert report["idle"]["bytes_per_socket"] == 10_000  # 120 MB more over the 12,000 sockets of both
    assert report["idle"]["processes"] == 4
    assert report["server"]["processes"] == 4
    assert report["server"]["cpu_seconds"] == 1.0
    text = render(report)
    assert "server RSS 150.0 MB -> 270.0 MB (sum over 4 processes), 9.8 KB per socket" in text
    assert "RSS 150.0 MB -> 270.0 MB (sum over 4 processes)" in text


def test_idle_memory_of_one_process_reads_as_before():
    mb = 10**6
    data = idle_run((1000,), ServerSnapshot(1.0, 50 * mb, 1), ServerSnapshot(1.5, 60 * mb, 1))
    report, _ = build(data)
    assert report["idle"]["bytes_per_socket"] == 10_000
    text = render(report)
    assert "server RSS 50.0 MB -> 60.0 MB, 9.8 KB per socket" in text
    assert "sum over" not in text
