"""The benchmark suite behind ``make bench``: our server and both baselines, in one run.

    .venv/bin/python bench/run.py               # the whole suite -> bench/results.md
    .venv/bin/python bench/run.py --quick       # every scenario, shortened: a smoke test of the harness
    .venv/bin/python bench/run.py --only burst --servers ours,naive
    .venv/bin/python bench/run.py --only redis  # ours alone, with Redis, and 2 workers with Redis
    .venv/bin/python bench/run.py --only joinstorm  # 50,000 sockets join 500 rooms over 3 workers + Redis

For every scenario, each server is started fresh (its own process, free port,
throwaway history), driven by the project's load tester (``python -m
chat.loadtest``) with the same options, and stopped. Besides the load tester's
own report, this harness reads the server's CPU time (utime + stime from
``/proc/PID/stat``, summed over the server process and every process below it)
and RSS (``VmRSS``) before and after each run and samples them during it, so CPU
per delivery is computed the same way for all servers. It also samples the load
generator's CPU, to show when the generator rather than the server was the
limit. A run of only some scenarios rewrites only their sections of the results
file and keeps the others' text. bench/README.md explains the suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import http.server
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "results.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The issue's targets (issue 3, "Targets").
TARGET_CPU_RATIO_NAIVE = 10.0  # ours at most a tenth of the naive baseline's CPU per delivery
TARGET_CPU_RATIO_WEBSOCKETS = 5.0  # and at most a fifth of websockets.broadcast()'s
# Steady fan-out (issue 9): at this offered load, ours at most this multiple of the floor's CPU per delivery.
TARGET_FLOOR_LOAD = 20_000
TARGET_FLOOR_RATIO = 1.25
TARGET_SOCKETS = 50_000
TARGET_BYTES_PER_IDLE_SOCKET = 20 * 1024
TARGET_P99_MS_AT_40K = 100.0

# A server gets this long to log its ready line; ours opens SQLite first.
START_TIMEOUT_S = 20.0
# And this long to exit on SIGTERM (it closes every socket first) before SIGKILL.
STOP_TIMEOUT_S = 15.0
# Samples of CPU and RSS during a run: fine enough to see a saturated second.
SAMPLE_INTERVAL_S = 0.25
# A load-generating process this busy (cores, over a 1 s window) may itself be the limit.
GENERATOR_BUSY = 0.9
# A 1-minute load average above this before the suite means something else is using the CPUs.
BUSY_MACHINE_LOAD = 0.5
# Other processes using this many cores on average during a run are noted beside its figures.
OTHERS_NOTED = 0.2
# A server sustaining less than this share of an offered load is reported as saturated by it.
SATURATED = 0.95
# Before each run, wait (up to --quiet-wait seconds, and that times this many for the whole suite)
# until the machine's CPUs are busy less than this many cores in all, sampled over QUIET_SAMPLE_S.
QUIET_CORES = 0.25
QUIET_SAMPLE_S = 1.0
QUIET_BUDGET_RUNS = 10
# File descriptors a server keeps besides client sockets (listener, epoll, SQLite, std streams)
# is measured at start; this many more are left free for what it opens later.
FD_HEADROOM = 20
# Client sockets spread over these loopback addresses: one address has ~28k ephemeral ports.
SOURCE_IPS = "127.0.0.2-127.0.0.9"
# The redis scenario's Redis: started by the harness on a free loopback port, nothing persisted.
REDIS_SERVER = "redis-server"
# Server log lines at these levels are listed beside a redis-scenario run's figures (at most this many kinds).
LOG_LEVELS_NOTED = ("WARNING", "ERROR", "CRITICAL")
LOG_KINDS_NOTED = 3
# Redis's own CPU use with nothing connected is measured over this long when it starts.
REDIS_IDLE_SAMPLE_S = 2.0


def raise_fd_limit() -> int:
    """Raise our soft RLIMIT_NOFILE to the hard one; every process we start inherits it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the servers ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServerKind:
    key: str
    label: str
    ready: str  # a line holding this in the server's log means it accepts connections
    argv: Callable[[int, Path], list[str]]  # (port, scratch dir) -> command, run from the repo root
    ready_count: int = 1  # that many such lines: one per worker process
    fanout_only: bool = False  # runs in the burst and the fixed loads only


def _ours(port: int, scratch: Path) -> list[str]:
    return [
        *python(),
        "server.py",
        "--port",
        str(port),
        "--db",
        str(scratch / "chat.sqlite3"),
        "--rate",
        "0",
        "--cookie-secret",
        "bench",
        # The load tester's sockets come from 8 loopback addresses: the default cap of 1,000 sockets
        # per client address (a defence for real deployments) would refuse most of them.
        "--max-connections-per-ip",
        "0",
    ]


SERVERS: dict[str, ServerKind] = {
    "ours": ServerKind("ours", "ours (server.py)", "chat server on", _ours),
    "naive": ServerKind(
        "naive",
        "naive Tornado",
        "listening",
        lambda port, _scratch: [*python(), "bench/naive_tornado.py", "--port", str(port)],
    ),
    "websockets": ServerKind(
        "websockets",
        "websockets broadcast()",
        "listening",
        lambda port, _scratch: [*python(), "bench/websockets_broadcast.py", "--port", str(port)],
    ),
    # The floor: one bare sock.send(frame) per member, the frame built once. It runs in the burst and
    # the fixed loads only: it is there to show what fan-out itself costs, not memory or sockets held.
    "floor": ServerKind(
        "floor",
        "floor (bare send loop)",
        "listening",
        lambda port, _scratch: [*python(), "bench/floor.py", "--port", str(port)],
        fanout_only=True,
    ),
}


def python() -> list[str]:
    """This interpreter, as a path relative to the repo root when it lives there (shorter commands)."""
    exe = Path(sys.executable)
    try:
        return [str(exe.relative_to(ROOT))]
    except ValueError:
        return [str(exe)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class RunningServer:
    kind: ServerKind
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    log_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@contextmanager
def started(kind: ServerKind, tag: str) -> Iterator[RunningServer]:
    """Start ``kind`` on a free port with its log in bench/out/logs/; stop it afterwards."""
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{tag}-{kind.key}.log"
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch, log_path.open("wb") as log_file:
        port = free_port()
        command = kind.argv(port, Path(scratch))
        # The log goes to a file, not a pipe: a pipe nobody reads would stall a chatty server.
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        server = RunningServer(kind, proc, port, command, log_path)
        try:
            wait_ready(server)
            yield server
        finally:
            stop(proc)


def wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind.label} exited with {server.proc.returncode}: see {server.log_path}")
        if server.log_path.read_text(errors="replace").count(server.kind.ready) >= server.kind.ready_count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.kind.label} not ready after {START_TIMEOUT_S:.0f} s: see {server.log_path}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code.

    The SIGKILL goes to every process below it too: a supervisor killed alone would leave its
    workers running (and holding the port).
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            below = descendants(proc.pid)[1:]
            proc.kill()
            for pid in below:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    return proc.wait()


# -- /proc readings ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every process below it: utime + stime of each live one, plus the
    cutime + cstime each holds for children it has reaped (a worker that died and was replaced).

    For a server without children this is :func:`cpu_seconds` (its cutime and cstime do not move).
    """
    total = 0.0
    for i, proc in enumerate(descendants(pid)):
        try:
            with open(f"/proc/{proc}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            if i == 0:
                raise
            continue  # a child that exited meanwhile
        total += sum(int(x) for x in fields[11:15]) / CLK_TCK
    return total


def tree_status_bytes(pid: int, key: str) -> int:
    """:func:`status_bytes` summed over ``pid`` and every process below it (pages shared after a fork
    count once per process)."""
    total = 0
    for i, proc in enumerate(descendants(pid)):
        try:
            total += status_bytes(proc, key)
        except (FileNotFoundError, ProcessLookupError):
            if i == 0:
                raise
    return total


def status_bytes(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def machine_busy_seconds() -> float:
    """CPU time spent on anything but idle and iowait, all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    found = [pid]
    for parent in found:
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    found.extend(int(child) for child in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


@dataclasses.dataclass
class Sample:
    t: float
    server_cpu: float  # the server process and every process below it (workers)
    server_rss: int
    generator_cpu: dict[int, float]  # pid -> cpu seconds, for each load-generating process
    machine_cpu: float  # busy seconds of all CPUs together
    redis_cpu: float = 0.0  # the redis scenario's redis-server, when it is watched


class Sampler:
    """Samples the server's CPU and RSS and the load generator's CPU (and Redis's) in a thread."""

    def __init__(self, server_pid: int, generator_pid: int, redis_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.generator_pid = generator_pid
        self.redis_pid = redis_pid
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                generator: dict[int, float] = {}
                for pid in descendants(self.generator_pid):
                    with suppress(FileNotFoundError, ProcessLookupError):
                        generator[pid] = cpu_seconds(pid)
                self.samples.append(
                    Sample(
                        time.monotonic(),
                        tree_cpu_seconds(self.server_pid),
                        tree_status_bytes(self.server_pid, "VmRSS"),
                        generator,
                        machine_busy_seconds(),
                        cpu_seconds(self.redis_pid) if self.redis_pid is not None else 0.0,
                    )
                )
            except (FileNotFoundError, ProcessLookupError):
                return  # the server is gone: the run will report it
            self._stop.wait(SAMPLE_INTERVAL_S)

    def busiest(self, pick: Callable[[Sample], float], window_s: float = 1.0) -> float:
        """The highest CPU use (cores) of ``pick`` over any window of about ``window_s``."""
        best = 0.0
        start = 0
        for sample in self.samples:
            while sample.t - self.samples[start].t > window_s:
                start += 1
            first = self.samples[max(0, start - 1)]
            span = sample.t - first.t
            if span >= window_s * 0.75:
                best = max(best, (pick(sample) - pick(first)) / span)
        return best

    def others(self) -> float:
        """Cores used on average by everything but the server and the load generator (the harness included)."""
        if len(self.samples) < 2:
            return 0.0
        first, last = self.samples[0], self.samples[-1]
        pids = {pid for s in self.samples for pid in s.generator_cpu}
        generator = 0.0
        for pid in pids:
            seen = [s.generator_cpu[pid] for s in self.samples if pid in s.generator_cpu]
            generator += seen[-1] - seen[0]
        busy = (
            last.machine_cpu
            - first.machine_cpu
            - (last.server_cpu - first.server_cpu)
            - (last.redis_cpu - first.redis_cpu)
            - generator
        )
        return max(0.0, busy / (last.t - first.t))

    def busiest_generator(self) -> float:
        """The busiest second of the busiest load-generating process."""
        best = 0.0
        for pid in {pid for s in self.samples for pid in s.generator_cpu}:

            def of_pid(sample: Sample, pid: int = pid) -> float:
                return sample.generator_cpu.get(pid, 0.0)

            best = max(best, self.busiest(of_pid))
        return best


# -- one run -------------------------------------------------------------------


@dataclasses.dataclass
class Load:
    key: str  # file-name friendly: "burst", "load-40k", "idle-10k", "hold-19000"
    options: list[str]  # load-tester options, without the URL, --json, --server-pid and -q
    timeout_s: float  # the whole load-tester process is killed after this long


@dataclasses.dataclass
class Run:
    server: str
    load: str
    command: list[str]
    server_command: list[str]
    report: dict[str, Any] | None = None
    error: str | None = None
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    server_rss_before: int = 0
    server_rss_after: int = 0
    server_rss_peak: int = 0
    server_fds_before: int = 0
    server_busiest: float = 0.0  # cores, busiest second
    server_exit: int | None = None
    generator_cpu_s: float = 0.0
    generator_busiest: float = 0.0  # cores, busiest second of the busiest generating process
    others_cores: float = 0.0  # cores used meanwhile by every other process on the machine
    waited_s: float = 0.0  # waited beforehand for other work on the machine to calm down
    # The redis scenario: the offered deliveries/s, redis-server's CPU around the whole load-tester run
    # and its busiest second (cores), and the server log's warnings and errors ("2x ERROR logger: text").
    offered_per_s: int | None = None
    redis_cpu_s: float = 0.0
    redis_busiest: float = 0.0
    log_notes: list[str] = dataclasses.field(default_factory=list)

    def get(self, *path: str) -> Any:
        """A value of the load tester's report, or None."""
        node: Any = self.report
        for key in path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    @property
    def received(self) -> int:
        return int(self.get("deliveries", "received") or 0)

    @property
    def cpu_us_per_delivery(self) -> float | None:
        """The harness's figure: server CPU around the whole load-tester run, per delivery received."""
        return self.server_cpu_s * 1e6 / self.received if self.received else None

    @property
    def window_us_per_delivery(self) -> float | None:
        """The load tester's figure: server CPU from the start of sending to the end of the drain."""
        value = self.get("server", "cpu_us_per_delivery")
        return float(value) if value is not None else None

    @property
    def sockets_held(self) -> int:
        return int(self.get("connect", "connected") or 0)

    @property
    def fully_connected(self) -> bool:
        attempted = self.get("connect", "attempted")
        return self.error is None and bool(attempted) and self.sockets_held == attempted

    def timeline(self) -> list[tuple[int, int]]:
        """``(second since sending started, deliveries in that second)`` from the load tester's report."""
        entries = self.get("timeline")
        if not isinstance(entries, list):
            return []
        return [(int(e["t"]), int(e["deliveries"] or 0)) for e in entries if isinstance(e, dict) and "t" in e]

    @property
    def burst_per_s(self) -> float | None:
        """Deliveries received over the seconds from the start of sending to the last delivery."""
        seconds = [t for t, n in self.timeline() if n]
        return self.received / max(seconds) if seconds else None

    @property
    def sustained_per_s(self) -> float | None:
        """The median second's deliveries while sending (the first second, still filling up, left out).

        The load tester's deliveries.per_second divides by the sending window alone, which
        overstates a server that is still delivering during the drain.
        """
        duration = float(self.get("config", "duration") or 0)
        per_second = [n for t, n in self.timeline() if 2 <= t <= duration]
        return statistics.median(per_second) if per_second else None

    @property
    def connect_cpu_ms(self) -> float | None:
        """An idle run's server CPU from before connecting until every socket was up, per socket."""
        cpu = self.get("server", "cpu_seconds")
        return float(cpu) * 1000 / self.sockets_held if cpu is not None and self.sockets_held else None

    @property
    def idle_bytes_per_socket(self) -> float | None:
        """The harness's own figure: peak RSS over the fresh server's RSS, per socket held."""
        held = self.sockets_held
        return (self.server_rss_peak - self.server_rss_before) / held if held else None


def machine_busy_cores(seconds: float) -> float:
    """Cores busy on the whole machine over the next ``seconds``."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


class Harness:
    def __init__(self, loadtest: list[str], tag: str, quiet_wait_s: float = 0.0) -> None:
        self.loadtest = loadtest
        self.tag = tag
        self.runs: list[Run] = []
        # Seconds each run may wait for other work on the machine to calm down, and the suite's total.
        self.quiet_wait_s = quiet_wait_s
        self.quiet_budget_s = quiet_wait_s * QUIET_BUDGET_RUNS
        # What a scenario records beside its runs, for the report (the redis scenario's Redis).
        self.extra: dict[str, Any] = {}

    def wait_for_quiet(self) -> float:
        """Wait (within the budgets) until the machine is nearly idle; returns the seconds waited.

        Between runs nothing of ours is running, so whatever keeps the CPUs busy is someone else's.
        """
        started_at = time.monotonic()
        deadline = started_at + min(self.quiet_wait_s, self.quiet_budget_s)
        while machine_busy_cores(QUIET_SAMPLE_S) > QUIET_CORES and time.monotonic() < deadline:
            pass
        waited = time.monotonic() - started_at
        self.quiet_budget_s = max(0.0, self.quiet_budget_s - waited)
        return waited

    def run(
        self,
        kind: ServerKind,
        load: Load,
        adjust: Callable[[RunningServer], list[str]] | None = None,
        *,
        server_pid_option: bool = True,
        redis_pid: int | None = None,
        scan_log: bool = False,
    ) -> Run:
        """Start a fresh ``kind``, drive it with ``load``, stop it; the figures go in the returned Run.

        ``adjust`` may replace the load tester's options once the server runs. Without
        ``server_pid_option`` the load tester gets no ``--server-pid`` (its options then name where it
        reads the server's figures). ``redis_pid``: a redis-server whose CPU is read too. ``scan_log``:
        note the server log's warnings and errors.
        """
        runs_dir = OUT / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        again = sum(1 for r in self.runs if r.load == load.key and r.server == kind.key)
        name = f"{self.tag}-{load.key}-{kind.key}" + (f"-{again + 1}" if again else "")
        report_path = runs_dir / f"{name}.json"
        report_path.unlink(missing_ok=True)
        print(f"  {load.key:<12} {kind.label:<24}", end="", flush=True)
        waited = self.wait_for_quiet() if self.quiet_wait_s else 0.0
        try:
            with started(kind, name) as server:
                options = adjust(server) if adjust else load.options
                command = [
                    *self.loadtest,
                    server.url,
                    *options,
                    *(["--server-pid", str(server.proc.pid)] if server_pid_option else []),
                    "--json",
                    str(report_path.relative_to(ROOT)),
                    "-q",
                ]
                run = Run(kind.key, load.key, command, server.command, waited_s=waited)
                self._drive(run, server, load, report_path, redis_pid)
                run.server_exit = stop(server.proc)
            if scan_log:
                run.log_notes = log_notes(server.log_path.read_text(errors="replace"))
        except (RuntimeError, OSError) as exc:  # a server that would not start, or vanished from /proc
            run = Run(kind.key, load.key, [], [], error=str(exc), waited_s=waited)
        self.runs.append(run)
        print(summary_line(run), flush=True)
        return run

    def _drive(
        self, run: Run, server: RunningServer, load: Load, report_path: Path, redis_pid: int | None = None
    ) -> None:
        pid = server.proc.pid
        run.server_fds_before = open_fds(pid)
        run.server_rss_before = tree_status_bytes(pid, "VmRSS")
        cpu_before = tree_cpu_seconds(pid)
        redis_before = cpu_seconds(redis_pid) if redis_pid is not None else 0.0
        # No other child of ours is reaped while the load tester runs (servers are reaped when stopped),
        # so the difference in children's usage is the load tester's, its own children included.
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at = time.monotonic()
        generator = subprocess.Popen(run.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = b""
        with Sampler(pid, generator.pid, redis_pid) as sampler:
            try:
                output, _ = generator.communicate(timeout=load.timeout_s)
            except subprocess.TimeoutExpired:
                stop(generator)
                output, _ = generator.communicate()
                run.error = f"load tester killed after {load.timeout_s:.0f} s"
        run.wall_s = time.monotonic() - started_at
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        run.generator_cpu_s = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        if server.proc.poll() is not None:
            run.error = f"the server died (exit {server.proc.returncode}): see {server.log_path}"
            return
        run.server_cpu_s = tree_cpu_seconds(pid) - cpu_before
        run.server_rss_after = tree_status_bytes(pid, "VmRSS")
        run.server_rss_peak = max([tree_status_bytes(pid, "VmHWM"), *(s.server_rss for s in sampler.samples)])
        run.server_busiest = sampler.busiest(lambda s: s.server_cpu)
        if redis_pid is not None:
            run.redis_cpu_s = cpu_seconds(redis_pid) - redis_before
            run.redis_busiest = sampler.busiest(lambda s: s.redis_cpu)
        run.generator_busiest = sampler.busiest_generator()
        run.others_cores = sampler.others()
        if generator.returncode not in (0, 1) and run.error is None:  # 1: an --slo missed, still a report
            tail = output.decode(errors="replace").strip().splitlines()[-5:]
            run.error = f"load tester exited {generator.returncode}: " + " | ".join(tail)
        try:
            run.report = json.loads(report_path.read_text())
        except (FileNotFoundError, ValueError) as exc:
            run.error = run.error or f"no report from the load tester ({exc})"


def summary_line(run: Run) -> str:
    """One line per run while the suite goes."""
    if run.error and run.report is None:
        return f" FAILED: {run.error}"
    parts = [f"{run.wall_s:5.1f} s"]
    if run.get("scenario") == "idle":
        parts.append(f"{run.sockets_held:,}/{fmt(run.get('connect', 'attempted'))} sockets")
        parts.append(f"{fmt(run.get('idle', 'bytes_per_socket'), 1, 1 / 1024)} KB/socket")
    else:
        parts.append(f"{run.received:,}/{fmt(run.get('deliveries', 'expected'))} deliveries")
        parts.append(f"{fmt(run.window_us_per_delivery, 2)} us/delivery ({fmt(run.cpu_us_per_delivery, 2)} whole run)")
        parts.append(f"p50 {fmt(run.get('latency_ms', 'p50'), 1)} p99 {fmt(run.get('latency_ms', 'p99'), 1)} ms")
        parts.append(f"lost {fmt(run.get('deliveries', 'lost'))}")
    busiest = f"busiest s: server {run.server_busiest:.2f}, generator {run.generator_busiest:.2f}"
    if run.redis_busiest:
        busiest += f", redis {run.redis_busiest:.2f}"
    parts.append(busiest + " cores")
    parts.append(f"others {run.others_cores:.2f} cores")
    if run.waited_s >= QUIET_SAMPLE_S + 1:
        parts.append(f"(waited {run.waited_s:.0f} s for a quiet machine)")
    if run.error:
        parts.append(f"ERROR {run.error}")
    if run.log_notes:
        parts.append("server log: " + "; ".join(run.log_notes))
    return "  ".join(parts)


LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>[\w.]+)(?:\[\d+\])?: (?P<text>.*)$")


def log_notes(log: str) -> list[str]:
    """The server log's warnings and errors, alike lines counted once: ``["2x ERROR chat.x: text", ...]``.

    Worker processes log the same line with their pid (``chat.x[123]``), which is left out.
    """
    seen: dict[str, int] = {}
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match and match["level"] in LOG_LEVELS_NOTED:
            key = f"{match['level']} {match['logger']}: {match['text']}"
            seen[key] = seen.get(key, 0) + 1
    notes = [f"{n}x {key}" for key, n in list(seen.items())[:LOG_KINDS_NOTED]]
    if len(seen) > LOG_KINDS_NOTED:
        notes.append(f"{len(seen) - LOG_KINDS_NOTED} more kinds")
    return notes


# -- the suite -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Suite:
    """The fixed parameters; ``quick()`` shortens every run for a smoke test of the harness."""

    room_members: int = 1000
    burst_senders: int = 10
    # A burst: 200 messages sent within 0.1 s (issue 9's "burst of 200"), 200,000 deliveries: messages
    # that meet in the server's loop ticks, where coalescing pays. (Until issue 9 this was 100 msg/s
    # for 3 s, a steady 100,000 deliveries/s that a quiet machine serves one message per tick.)
    burst_rate: float = 2000.0
    burst_duration_s: float = 0.1
    burst_drain_s: float = 60.0
    loads_per_s: tuple[int, ...] = (10_000, 20_000, 40_000)
    load_senders: int = 10
    load_duration_s: float = 15.0
    load_drain_s: float = 10.0
    idle_sockets: int = 10_000
    idle_hold_s: float = 3.0
    # Idle sockets join rooms of this many: a join (and a leave) tells the other members, so big rooms
    # would turn connecting into a presence storm, which is not what these runs measure.
    idle_room_size: int = 20
    hold_counts: tuple[int, ...] = ()  # rungs between the idle run and the last one
    hold_max: bool = True  # and a last rung: as many sockets as the server's fd limit allows
    # Connections per second. A handshake costs these servers 0.6-1.4 ms of CPU here, so at
    # 1,000/s thousands of sockets saturate a server and connects time out, which would measure the
    # ramp rather than the sockets held: the idle runs ramp at half that.
    ramp_per_s: int = 1000
    idle_ramp_per_s: int = 500
    message_bytes: int = 100
    # Two load-generating processes: the generator costs more CPU per delivery than the servers.
    procs: int = 2
    # Burst runs, and runs of each fixed load, per server (interleaved); the tables show medians. The
    # fixed loads repeat too: at 20 msg/s a run's CPU per delivery moves by a third with other work on
    # the machine, and the steady-rate target compares two such figures.
    repeat: int = 3
    # The slow-consumer check: a flooded room of this many members, big messages (about 585 KB/s
    # to each member), long enough that a stalled reader's socket buffers fill and its backlog
    # overflows (the server's default --max-backlog-bytes is 1 MiB).
    slow_members: int = 50
    slow_rate: float = 150.0
    slow_message_bytes: int = 3900
    slow_duration_s: float = 20.0
    slow_drain_s: float = 20.0
    # The redis scenario: one room of this many members, scale_senders sending at each offered rate of
    # the ladder (deliveries/s = messages/s x members) for scale_duration_s, up to scale_drain_s to
    # drain. A configuration leaves the ladder at its first step with any loss, error or shortfall;
    # no step starts once the scenario has run scale_budget_s.
    scale_members: int = 1000
    scale_senders: int = 10
    scale_per_s: tuple[int, ...] = (10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 150_000, 200_000)
    scale_duration_s: float = 5.0
    scale_drain_s: float = 10.0
    scale_budget_s: float = 900.0
    joinstorm: JoinStorm = dataclasses.field(default_factory=lambda: JoinStorm())

    @staticmethod
    def quick() -> Suite:
        return Suite(
            room_members=200,
            burst_drain_s=20,
            loads_per_s=(2000, 4000),
            load_duration_s=3,
            load_drain_s=5,
            idle_sockets=1000,
            idle_hold_s=1,
            hold_counts=(2000,),
            hold_max=False,
            repeat=1,
            slow_duration_s=6,
            scale_members=200,
            scale_per_s=(2000, 4000),
            scale_duration_s=3,
            scale_drain_s=5,
            scale_budget_s=120,
            joinstorm=JoinStorm.quick(),
        )

    @property
    def idle_key(self) -> str:
        return f"idle-{self.idle_sockets // 1000}k"

    def burst(self) -> Load:
        opts = self._chat(self.burst_senders, self.burst_rate, self.burst_duration_s, self.burst_drain_s)
        connecting = self.room_members / self.ramp_per_s
        return Load("burst", opts, self._timeout(connecting, self.burst_duration_s, self.burst_drain_s))

    def offered(self, per_s: int) -> Load:
        rate = per_s / self.room_members
        opts = self._chat(self.load_senders, rate, self.load_duration_s, self.load_drain_s)
        connecting = self.room_members / self.ramp_per_s
        return Load(load_key(per_s), opts, self._timeout(connecting, self.load_duration_s, self.load_drain_s))

    def idle(self, sockets: int, key: str) -> Load:
        opts = [
            "--scenario",
            "idle",
            "--clients",
            str(sockets),
            "--ramp",
            str(self.idle_ramp_per_s),
            "--rooms",
            str(max(1, sockets // self.idle_room_size)),
            "--duration",
            f"{self.idle_hold_s:g}",
            "--procs",
            str(self.procs),
            "--source-ips",
            SOURCE_IPS,
        ]
        return Load(key, opts, self._timeout(sockets / self.idle_ramp_per_s, self.idle_hold_s, 0))

    def slow(self, stalled: int) -> Load:
        """A flooded room, with ``stalled`` members that stop reading while it floods."""
        opts = self._chat(5, self.slow_rate, self.slow_duration_s, self.slow_drain_s)
        opts[opts.index("--clients") + 1] = str(self.slow_members)
        opts[opts.index("--message-bytes") + 1] = str(self.slow_message_bytes)
        opts += ["--stalled", str(stalled)]
        connecting = self.slow_members / self.ramp_per_s
        return Load(f"slow-{stalled}", opts, self._timeout(connecting, self.slow_duration_s, self.slow_drain_s))

    def scale(self, per_s: int, metrics_url: str) -> Load:
        """A step of the redis scenario's ladder; the load tester reads the server's figures from
        ``metrics_url`` (the harness's :class:`TreeMetrics`, which adds Redis's)."""
        rate = per_s / self.scale_members
        opts = self._chat(self.scale_senders, rate, self.scale_duration_s, self.scale_drain_s)
        opts[opts.index("--clients") + 1] = str(self.scale_members)
        opts += ["--metrics-url", metrics_url]
        connecting = self.scale_members / self.ramp_per_s
        return Load(scale_key(per_s), opts, self._timeout(connecting, self.scale_duration_s, self.scale_drain_s))

    def _chat(self, senders: int, rate: float, duration: float, drain: float) -> list[str]:
        return [
            "--scenario",
            "chat",
            "--clients",
            str(self.room_members),
            "--ramp",
            str(self.ramp_per_s),
            "--rooms",
            "1",
            "--senders",
            str(senders),
            "--rate",
            f"{rate:g}",
            "--duration",
            f"{duration:g}",
            "--message-bytes",
            str(self.message_bytes),
            "--drain",
            f"{drain:g}",
            "--procs",
            str(self.procs),
        ]

    def _timeout(self, connecting: float, duration: float, drain: float) -> float:
        # Connecting (thrice the ramp's time: slow handshakes), running, draining, and a minute for
        # start-up and closing. Past it the run is reported as failed.
        return connecting * 3 + duration + drain + 60


def load_key(per_s: int) -> str:
    return f"load-{per_s / 1000:g}k"


def scale_key(per_s: int) -> str:
    return f"scale-{per_s / 1000:g}k"


SCENARIOS = ("burst", "loads", "idle", "hold", "slow", "redis", "joinstorm")


def run_suite(harness: Harness, suite: Suite, servers: Sequence[ServerKind], only: Sequence[str]) -> None:
    if "burst" in only:
        print(f"burst: 1 room of {suite.room_members:,}, {suite.burst_senders} senders, {suite.burst_rate:g} msgs/s")
        for _ in range(suite.repeat):
            for kind in servers:
                harness.run(kind, suite.burst())
    if "loads" in only:
        print(f"fixed offered loads into 1 room of {suite.room_members:,}")
        for _ in range(suite.repeat):
            for per_s in suite.loads_per_s:
                for kind in servers:
                    harness.run(kind, suite.offered(per_s))
    idle: dict[str, Run] = {}
    if "idle" in only:
        print(f"idle memory: {suite.idle_sockets:,} sockets")
        for kind in [k for k in servers if not k.fanout_only]:
            idle[kind.key] = harness.run(kind, suite.idle(suite.idle_sockets, suite.idle_key))
    if "hold" in only:
        print("most sockets held: idle sockets, more at each step, up to the server's fd limit")
        for kind in [k for k in servers if not k.fanout_only]:
            if kind.key in idle and not idle[kind.key].fully_connected:
                continue  # the idle run was the first rung, and it failed
            hold_ladder(harness, suite, kind)
    if "slow" in only:
        # The slow-consumer policy is ours alone (the baselines buffer without bound): the same
        # flooded room without and with one member that stops reading.
        print(
            f"slow consumer: 1 room of {suite.slow_members}, {suite.slow_rate:g} msgs/s of {suite.slow_message_bytes} B"
        )
        if "ours" in [k.key for k in servers]:
            for stalled in (0, 1):
                harness.run(SERVERS["ours"], suite.slow(stalled))
    if "redis" in only and "ours" in [k.key for k in servers]:
        redis_scenario(harness, suite)
    if "joinstorm" in only and "ours" in [k.key for k in servers]:
        joinstorm_scenario(harness, suite.joinstorm)


def hold_ladder(harness: Harness, suite: Suite, kind: ServerKind) -> None:
    """Idle sockets at each of suite.hold_counts, then as many as the server's fd limit allows.

    Stops at the first count not fully connected (the idle-memory run is the rung before).
    """
    for count in suite.hold_counts:
        if not harness.run(kind, suite.idle(count, f"hold-{count}")).fully_connected:
            return
    if not suite.hold_max:
        return
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def at_limit(server: RunningServer) -> list[str]:
        # As many sockets as the server has descriptors left, counted once it has started.
        return suite.idle(hard - open_fds(server.proc.pid) - FD_HEADROOM, "hold-max").options

    harness.run(kind, suite.idle(hard, "hold-max"), at_limit)


# -- the redis scenario ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """One of the redis scenario's server configurations: ours, with or without Redis, N processes."""

    key: str
    label: str
    redis: bool
    workers: int

    def argv(self, redis_url: str) -> Callable[[int, Path], list[str]]:
        def command(port: int, _scratch: Path) -> list[str]:
            # History in memory without Redis, as Redis here persists nothing either (--save '').
            words = [*python(), "server.py", "--port", str(port), "--db", ":memory:", "--rate", "0"]
            words += ["--cookie-secret", "bench", "--max-connections-per-ip", "0"]
            if self.redis:
                words += ["--redis", redis_url]
            if self.workers > 1:
                words += ["--workers", str(self.workers)]
            return words

        return command

    def kind(self, redis_url: str) -> ServerKind:
        # Each worker logs the ready line; connections made before all are up would all go to the first.
        return ServerKind(self.key, self.label, "chat server on", self.argv(redis_url), ready_count=self.workers)


SCALE_CONFIGS: dict[str, ScaleConfig] = {
    c.key: c
    for c in (
        ScaleConfig("single", "1 process, no Redis", redis=False, workers=1),
        ScaleConfig("redis", "1 process + Redis", redis=True, workers=1),
        ScaleConfig("redis-2w", "2 workers + Redis", redis=True, workers=2),
    )
}


def label_of(key: str) -> str:
    """A run's server label, whichever scenario it belongs to."""
    if key in SERVERS:
        return SERVERS[key].label
    if key in SCALE_CONFIGS:
        return SCALE_CONFIGS[key].label
    return JoinStorm().config.label if key == JoinStorm().config.key else key


def redis_command(port: int, *args: str, timeout: float = 5.0) -> str:
    """One command to the Redis on 127.0.0.1:``port``; its simple, integer or bulk-string reply."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, sock.makefile("rb") as reader:
        sock.sendall(request.encode())
        line = reader.readline()
        kind, rest = line[:1], line[1:].strip().decode()
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            return "" if int(rest) < 0 else reader.read(int(rest) + 2)[:-2].decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest}")
        raise RuntimeError(f"redis: unexpected reply {line!r}")


def redis_info(port: int, section: str = "default") -> dict[str, str]:
    """``INFO`` as a dict: used_cpu_user, used_cpu_sys (getrusage, microsecond resolution), redis_version,
    and with section ``all`` cmdstat_publish (``calls=N,usec=...``)..."""
    info = {}
    for line in redis_command(port, "INFO", section).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key] = value.strip()
    return info


def command_calls(info: dict[str, str], command: str) -> int:
    """How often Redis ran ``command``, from ``INFO all``'s ``cmdstat_<command>:calls=N,...`` (0: never)."""
    stats = dict(part.partition("=")[::2] for part in info.get(f"cmdstat_{command}", "").split(",") if part)
    return int(stats.get("calls", 0))


@dataclasses.dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    version: str
    idle_cpu: float  # cores used with no client connected (its timers), measured at start

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_cpu(info: dict[str, str]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def idle_cpu(port: int, seconds: float = REDIS_IDLE_SAMPLE_S) -> float:
    """Cores a fresh Redis uses doing nothing: the floor under its CPU per message at low rates."""
    before = redis_cpu(redis_info(port))
    time.sleep(seconds)
    return (redis_cpu(redis_info(port)) - before) / seconds


@contextmanager
def redis_started(tag: str) -> Iterator[RedisServer]:
    """A redis-server of our own on a free loopback port that persists nothing; stopped afterwards."""
    exe = shutil.which(REDIS_SERVER)
    if exe is None:
        raise RuntimeError(f"{REDIS_SERVER} not found on PATH")
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{tag}-redis-server.log"
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as scratch, log_path.open("wb") as log_file:
        port = free_port()
        command = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", scratch]
        proc = subprocess.Popen(command, cwd=scratch, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{REDIS_SERVER} exited with {proc.returncode}: see {log_path}")
                try:
                    if redis_command(port, "PING") == "PONG":
                        break
                except (OSError, RuntimeError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{REDIS_SERVER} not ready: see {log_path}") from None
                time.sleep(0.05)
            yield RedisServer(proc, port, command, redis_info(port).get("redis_version", "?"), idle_cpu(port))
        finally:
            stop(proc)


class TreeMetrics:
    """A ``/metrics`` page of the harness's own, which the load tester scrapes (``--metrics-url``) just
    before sending starts and when the drain ends, in place of ``--server-pid``, so that Redis's
    figures come with the server's:

    - ``process_cpu_seconds_total``, ``process_resident_memory_bytes``: the server process and every
      process below it (its workers), from /proc;
    - ``process_redis_cpu_seconds_total``, ``process_redis_commands_total``,
      ``process_redis_publish_total``: redis-server's CPU (``used_cpu_user`` + ``used_cpu_sys``), the
      commands it ran (those run by Lua scripts included) and its PUBLISH calls, from ``INFO all``.

    The report's ``server.cpu_seconds`` is then the whole server's CPU over the send + drain window,
    and ``server.metrics_delta`` holds Redis's over the same window.
    """

    def __init__(self) -> None:
        self.server_pid: int | None = None
        self.redis_port: int | None = None
        page = self.page

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    body, status = page().encode(), 200
                except (OSError, RuntimeError) as exc:
                    body, status = f"{exc}\n".encode(), 503
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/metrics"

    def __enter__(self) -> TreeMetrics:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def page(self) -> str:
        lines = []
        if self.server_pid is not None:
            lines.append(f"process_cpu_seconds_total {tree_cpu_seconds(self.server_pid)!r}")
            lines.append(f"process_resident_memory_bytes {tree_status_bytes(self.server_pid, 'VmRSS')}")
            lines.append(f"process_server_processes {len(descendants(self.server_pid))}")
        if self.redis_port is not None:
            info = redis_info(self.redis_port, "all")
            lines.append(f"process_redis_cpu_seconds_total {redis_cpu(info)!r}")
            lines.append(f"process_redis_commands_total {info['total_commands_processed']}")
            lines.append(f"process_redis_publish_total {command_calls(info, 'publish')}")
        return "\n".join(lines) + "\n"


def scale_clean(run: Run) -> bool:
    """Every socket connected, every delivery made (within the drain) once and in order, no error."""
    if run.error is not None or run.report is None or not run.fully_connected:
        return False
    expected = run.get("deliveries", "expected")
    if not expected or run.received != expected:
        return False
    if any(run.get("deliveries", k) for k in ("lost", "duplicated", "out_of_order")):
        return False
    kinds = run.get("errors", "by_kind")
    # How the server then stopped (a shutdown that hangs) is noted beside the step, not held against it.
    return not (isinstance(kinds, dict) and any(kinds.values()))


def kept_up(run: Run) -> bool:
    """Clean, and the median second while sending delivered at least SATURATED of the offered rate."""
    sustained = run.sustained_per_s
    return (
        scale_clean(run)
        and run.offered_per_s is not None
        and sustained is not None
        and sustained >= SATURATED * run.offered_per_s
    )


def zero_loss_max(steps: Iterable[Run]) -> Run | None:
    """The step with the most deliveries/s (the median second while sending) among the clean ones."""
    clean = [r for r in steps if scale_clean(r) and r.sustained_per_s is not None]
    return max(clean, key=lambda r: (r.sustained_per_s or 0.0, r.offered_per_s or 0), default=None)


def common_rate(steps_by_config: dict[str, list[Run]]) -> int | None:
    """The highest offered rate every configuration kept up with (clean, at least SATURATED of it)."""
    rates: set[int] | None = None
    for steps in steps_by_config.values():
        kept = {r.offered_per_s for r in steps if r.offered_per_s is not None and kept_up(r)}
        rates = kept if rates is None else rates & kept
    return max(rates) if rates else None


def redis_scenario(harness: Harness, suite: Suite) -> None:
    """Ours alone, ours with Redis, and two workers with Redis, up a ladder of offered rates.

    Every step starts each configuration fresh against an emptied Redis (FLUSHALL). A configuration
    leaves the ladder at its first step that is not clean or falls short of the offered rate.
    """
    print(
        f"redis: 1 room of {suite.scale_members:,}, {suite.scale_senders} senders, offered"
        f" {', '.join(f'{r:,}' for r in suite.scale_per_s)} deliveries/s, {suite.scale_duration_s:g} s each"
    )
    try:
        with redis_started(harness.tag) as redis, TreeMetrics() as metrics:
            harness.extra["redis_command"] = [Path(redis.command[0]).name, *redis.command[1:]]
            harness.extra["redis_version"] = redis.version
            harness.extra["redis_idle_cpu"] = redis.idle_cpu
            active = list(SCALE_CONFIGS.values())
            deadline = time.monotonic() + suite.scale_budget_s
            for per_s in suite.scale_per_s:
                for config in list(active):
                    if time.monotonic() > deadline:
                        harness.extra["scale_note"] = (
                            f"stopped after {suite.scale_budget_s:g} s, before {config.label} at {per_s:,}/s"
                        )
                        print(f"  {harness.extra['scale_note']}")
                        return
                    redis_command(redis.port, "FLUSHALL")
                    load = suite.scale(per_s, metrics.url)

                    def watch(server: RunningServer, config: ScaleConfig = config, load: Load = load) -> list[str]:
                        metrics.server_pid = server.proc.pid
                        metrics.redis_port = redis.port if config.redis else None
                        return load.options

                    try:
                        run = harness.run(
                            config.kind(redis.url),
                            load,
                            watch,
                            server_pid_option=False,
                            redis_pid=redis.proc.pid if config.redis else None,
                            scan_log=True,
                        )
                    finally:
                        metrics.server_pid = metrics.redis_port = None
                    run.offered_per_s = per_s
                    if not kept_up(run):
                        active.remove(config)
                if not active:
                    return
    except (RuntimeError, OSError) as exc:  # no redis-server, or one that would not start or went away
        harness.extra["redis_error"] = str(exc)
        print(f"  not run: {exc}")


# -- the join storm scenario -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JoinStorm:
    """The joinstorm scenario: ``sockets`` open and join ``rooms`` (round-robin) at each connect rate of
    ``per_s``, over ``workers`` worker processes on one Redis, then are held ``hold_s`` and closed.

    Every join costs Redis a name claim, presence, and reads of the room's seq, history and members;
    this measures whether a storm of them queues (every socket joins) or is refused (``unavailable``,
    1013) when the pooled connections are all busy.
    """

    sockets: int = TARGET_SOCKETS
    rooms: int = 500
    workers: int = 3
    procs: int = 3  # load-generating processes: one holds at most ~19,000 sockets here
    per_s: tuple[int, ...] = (500, 2000)
    hold_s: float = 5.0

    @staticmethod
    def quick() -> JoinStorm:
        return JoinStorm(sockets=2000, rooms=20, hold_s=1.0)

    @property
    def config(self) -> ScaleConfig:
        label = f"{self.workers} workers + Redis"
        return ScaleConfig(f"redis-{self.workers}w", label, redis=True, workers=self.workers)

    def load(self, per_s: int, metrics_url: str) -> Load:
        opts = [
            "--scenario",
            "idle",
            "--clients",
            str(self.sockets),
            "--rooms",
            str(self.rooms),
            "--ramp",
            str(per_s),
            "--duration",
            f"{self.hold_s:g}",
            "--procs",
            str(self.procs),
            "--source-ips",
            SOURCE_IPS,
            "--metrics-url",
            metrics_url,
        ]
        # The ramp (thrice its time: a saturated load generator falls behind its schedule), the last connect's
        # 15 s, the hold, and five minutes to start, to close 50,000 sockets and to write the report.
        return Load(f"joinstorm-{per_s}", opts, self.sockets / per_s * 3 + 15 + self.hold_s + 300)


# The load tester's error kinds (``connect: <why>`` before welcome, ``join: <why>`` after it) as the join
# storm table's columns.
REFUSAL_KINDS = (
    ("unavailable", ("error unavailable",)),
    ("1013", ("closed: 1013",)),
    ("timeouts", ("TimeoutError",)),
)


def refusals(run: Run) -> dict[str, int]:
    """A join storm run's failed starts by kind: unavailable, 1013, timeouts, other."""
    counts = {kind: 0 for kind, _ in REFUSAL_KINDS} | {"other": 0}
    kinds = run.get("errors", "by_kind")
    for label, n in (kinds.items() if isinstance(kinds, dict) else []):
        kind = next((k for k, marks in REFUSAL_KINDS if any(m in label for m in marks)), "other")
        counts[kind] += int(n)
    return counts


def welcomed(run: Run) -> int:
    """Sockets that got ``welcome``: those that joined, and those whose join then failed."""
    kinds = run.get("errors", "by_kind")
    if not isinstance(kinds, dict):
        return run.sockets_held
    return run.sockets_held + sum(int(n) for label, n in kinds.items() if label.startswith("join: "))


def joinstorm_scenario(harness: Harness, storm: JoinStorm) -> None:
    """The join storm at each connect rate, each on a fresh server and an emptied Redis."""
    print(
        f"join storm: {storm.sockets:,} sockets into {storm.rooms} rooms over {storm.workers} workers + Redis,"
        f" at {', '.join(f'{r:,}' for r in storm.per_s)} connections/s"
    )
    try:
        with redis_started(f"{harness.tag}-joinstorm") as redis, TreeMetrics() as metrics:
            harness.extra["joinstorm_redis_version"] = redis.version
            for per_s in storm.per_s:
                redis_command(redis.port, "FLUSHALL")
                load = storm.load(per_s, metrics.url)

                def watch(server: RunningServer, load: Load = load) -> list[str]:
                    metrics.server_pid = server.proc.pid
                    metrics.redis_port = redis.port
                    return load.options

                try:
                    run = harness.run(
                        storm.config.kind(redis.url),
                        load,
                        watch,
                        server_pid_option=False,
                        redis_pid=redis.proc.pid,
                        scan_log=True,
                    )
                finally:
                    metrics.server_pid = metrics.redis_port = None
                run.offered_per_s = per_s
    except (RuntimeError, OSError) as exc:  # no redis-server, or one that would not start or went away
        harness.extra["joinstorm_error"] = str(exc)
        print(f"  not run: {exc}")


def joinstorm_verdict(run: Run, storm: JoinStorm) -> str:
    """What one rate's figures say, in words."""
    attempted = int(run.get("connect", "attempted") or 0)
    refused = refusals(run)
    if run.report is None:
        return f"at {run.offered_per_s:,}/s the run failed: {run.error}"
    if attempted and run.sockets_held == attempted and not any(refused.values()):
        return f"at {run.offered_per_s:,}/s every one of the {attempted:,} sockets connected and joined"
    parts = [
        f"at {run.offered_per_s:,}/s {welcomed(run):,} of {attempted or storm.sockets:,} sockets connected and"
        f" {run.sockets_held:,} joined"
    ]
    hard = refused["unavailable"] + refused["1013"]
    parts.append(
        "none was refused as `unavailable` or closed 1013"
        if not hard
        else f"{refused['unavailable']:,} were refused `unavailable` and {refused['1013']:,} closed 1013"
    )
    if refused["timeouts"] or refused["other"]:
        parts.append(f"{refused['timeouts']:,} timed out and {refused['other']:,} failed otherwise")
    wall = run.wall_s or 1.0
    busy = (run.server_cpu_s + run.generator_cpu_s + run.redis_cpu_s) / wall + run.others_cores
    parts.append(
        f"over the run the server's processes used {run.server_cpu_s / wall:.2f} cores on average (busiest second"
        f" {run.server_busiest:.2f}), the load generator {run.generator_cpu_s / wall:.2f}, Redis"
        f" {run.redis_cpu_s / wall:.2f} and other work {run.others_cores:.2f}: {busy:.2f} of {os.cpu_count()} cores"
    )
    return "; ".join(parts)


def joinstorm_section(report: Report) -> str:
    storm = report.suite.joinstorm
    runs = [r for r in report.runs if r.load.startswith("joinstorm-")]
    if not runs:
        return "Not run" + (f": {report.extra['joinstorm_error']}." if report.extra.get("joinstorm_error") else ".")
    rows = []
    for run in runs:
        refused = refusals(run)
        rows.append(
            [
                fmt(run.offered_per_s),
                fmt(run.get("connect", "attempted")),
                fmt(welcomed(run)),
                fmt(run.sockets_held),
                *(fmt(refused[k]) for k in ("unavailable", "1013", "timeouts", "other")),
                f"{fmt(run.get('connect', 'p50_ms'))} / {fmt(run.get('connect', 'p99_ms'))}",
                fmt(run.server_cpu_s, 1),
                f"{run.server_busiest:.2f}",
                fmt(run.generator_cpu_s, 1),
                fmt(run.redis_cpu_s, 1),
                f"{run.others_cores:.2f}",
                fmt(run.wall_s, 0),
            ]
        )
    lines = [
        f"{storm.sockets:,} sockets open and join {storm.rooms} rooms (round-robin) at each connect rate, over"
        f" `server.py --workers {storm.workers} --redis` on one Redis, from {storm.procs} load-generating processes"
        f" spread over {SOURCE_IPS}; then held {storm.hold_s:g} s and closed. A socket is *connected* once it"
        " has `welcome` and *joined* once it has `joined`, both within the load tester's 15 s; *unavailable* is a"
        " join answered `unavailable`, *1013* a socket closed at open because its name could not be checked,"
        " *timeouts* a connect or join not answered in 15 s. Server CPU is over every worker process (the supervisor's"
        " process tree), around the whole load-tester run.",
        "",
        table(
            [
                "connections/s",
                "attempted",
                "connected",
                "joined",
                "unavailable",
                "1013",
                "timeouts",
                "other",
                "connect p50 / p99 ms",
                "server CPU s",
                "server busiest s",
                "generator CPU s",
                "Redis CPU s",
                "others (cores)",
                "wall s",
            ],
            rows,
        ),
        "",
        *(f"- {joinstorm_verdict(run, storm)}." for run in runs),
    ]
    notes = [f"- at {r.offered_per_s:,}/s the server logged: " + "; ".join(r.log_notes) for r in runs if r.log_notes]
    lines += notes or ["- The server logged no warning or error."]
    lines += ["", "Commands (`URL` is the server's `ws://127.0.0.1:P/ws`, `METRICS` the harness's `/metrics`):", ""]
    server = shlex.join(storm.config.argv("redis://127.0.0.1:R/0")(0, Path("TMP"))).replace("--port 0", "--port P")
    lines += ["```", server]
    lines += [scale_command(r) for r in runs if r.command]
    lines += ["```"]
    return "\n".join(lines)


# -- results ---------------------------------------------------------------------


def fmt(value: Any, digits: int = 0, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    number = float(value) * scale
    return f"{number:,.{digits}f}"


def median(values: Iterable[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    import tornado
    import websockets

    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": nproc or str(os.cpu_count()),
        "CPU": model,
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Tornado": tornado.version,
        "websockets": websockets.version.version,
        "RLIMIT_NOFILE hard limit per process": f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}",
    }


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


# -- sentences from figures: every comparison in the prose is computed, both ways ---------------

# Two figures within this share of each other are worded as level: runs of the same build on this
# shared 2-core machine differ by 10-25 % (docs/scaling.md), so a smaller gap says nothing.
LEVEL_WITHIN = 0.10


def compared(a: float, b: float) -> str:
    """``a`` against ``b``: "more", "less", or "about as much" when within LEVEL_WITHIN of ``b``."""
    if abs(a - b) <= LEVEL_WITHIN * abs(b):
        return "about as much"
    return "more" if a > b else "less"


def cpu_than_server(word: str) -> str:
    return f"{word} CPU per delivery " + ("as" if word == "about as much" else "than") + " the server"


def generator_vs_server(figures: dict[str, tuple[float | None, float | None]]) -> str:
    """How the load generator's CPU per delivery compares with the server's, per configuration.

    ``figures``: configuration label -> (generator µs/delivery, server µs/delivery), either None
    when not measured. A clause to follow "the load generator ...".
    """
    known = {label: (g, s) for label, (g, s) in figures.items() if g is not None and s is not None}
    if not known:
        return "has no CPU per delivery to compare with the server's (no rate every configuration kept up with)"
    detail = "; ".join(f"{label}: {g:.1f} µs against {s:.1f} µs" for label, (g, s) in known.items())
    words = {label: compared(g, s) for label, (g, s) in known.items()}
    if len(set(words.values())) == 1:
        where = "in every configuration" if len(known) > 1 else "in the one configuration measured"
        return f"spends {cpu_than_server(next(iter(words.values())))} {where} (generator against server: {detail})"
    by_word: dict[str, list[str]] = {}
    for label, word in words.items():
        by_word.setdefault(word, []).append(label)
    parts = [f"{cpu_than_server(word)} with {', '.join(labels)}" for word, labels in by_word.items()]
    return "spends " + "; ".join(parts) + f" (generator against server: {detail})"


def workers_vs_one(
    one: float | None, two: float | None, one_topped: bool, two_topped: bool, top: int | None, nproc: int
) -> str:
    """What two workers' highest zero-loss rate says against one process's, both with Redis.

    ``*_topped``: that configuration kept up with every step of the ladder, so its limit was not found.
    """
    if one is None or two is None:
        missing = "one process" if one is None else "two workers"
        return f"With no zero-loss step for {missing}, the two cannot be compared."
    if one_topped and two_topped:
        return (
            f"Both kept up with every offered rate, up to {top or 0:,}/s: the ladder did not reach either's limit,"
            " so it cannot tell whether the second worker adds capacity."
        )
    word = compared(two, one)
    figures = f"{two:,.0f} against {one:,.0f} deliveries/s"
    if word == "more":
        times = f"{two / one:.2f}x" if one else "more than"
        return f"Two workers sustained {times} one process's highest zero-loss rate ({figures})."
    shared = f"on {nproc} cores shared with the load generator and Redis"
    if word == "less":
        return f"Two workers sustained less than one process ({figures}): {shared}, the split cost more than it added."
    return (
        f"Two workers sustained about as much as one process ({figures}): {shared}, a second worker added no"
        " capacity; their figures show what the split costs."
    )


def hold_verdict(most: int, hard: int, target: int = TARGET_SOCKETS) -> str:
    """The verdict on "one process holds ``target`` sockets", given the per-process open-file limit."""
    if most >= target:
        return verdict(True)
    if hard < target:
        return f"cannot be shown here ({hard:,} open files per process at most)"
    return verdict(False)


def hold_cap(hard: int, target: int = TARGET_SOCKETS) -> str:
    """What the per-process open-file limit allows, against the target."""
    if hard < target:
        return (
            f" **This machine caps every process at {hard:,} open files (the hard RLIMIT_NOFILE, which an"
            f" unprivileged process cannot raise), so no server process can hold the issue's {target:,} sockets on"
            " it**: the table shows how close each server gets to that cap."
        )
    return (
        f" This machine allows {hard:,} open files per process, enough for the issue's {target:,} sockets: the"
        " table shows how many each server held."
    )


def loss(runs: Sequence[Run]) -> str:
    return " / ".join(fmt(median(r.get("deliveries", k) for r in runs)) for k in ("lost", "duplicated", "out_of_order"))


def errors(runs: Sequence[Run]) -> str:
    notes: list[str] = []
    for r in runs:
        if r.error:
            notes.append(r.error.replace("|", "/"))
        kinds = r.get("errors", "by_kind")
        if isinstance(kinds, dict):
            notes += [f"{k}: {v}" for k, v in kinds.items() if v]
        if r.server_exit == -signal.SIGKILL:
            notes.append(f"server still running {STOP_TIMEOUT_S:g} s after SIGTERM: killed")
        elif r.server_exit not in (0, None):
            notes.append(f"server exit {r.server_exit}")
        notes += [f"server log: {note}" for note in r.log_notes]
    busiest_others = max((r.others_cores for r in runs), default=0.0)
    if busiest_others >= OTHERS_NOTED:
        notes.append(f"other processes on the machine used up to {busiest_others:.2f} cores meanwhile")
    return "; ".join(dict.fromkeys(notes)) or "none"


class Report:
    """bench/results.md from the runs: medians where a scenario ran more than once."""

    def __init__(
        self,
        runs: Sequence[Run],
        suite: Suite,
        servers: Sequence[ServerKind],
        started: datetime.datetime,
        load_before: tuple[float, float, float],
        took_s: float,
        only: Sequence[str] = SCENARIOS,
        extra: dict[str, Any] | None = None,
    ):
        self.runs = runs
        self.load_before = load_before
        self.took_s = took_s
        self.suite = suite
        self.servers = servers
        self.started = started
        self.only = [s for s in SCENARIOS if s in only]
        self.extra = extra or {}

    def saved(self) -> dict[str, Any]:
        """Everything the markdown is built from, for ``--render``."""
        return {
            "started": self.started.isoformat(),
            "load_before": list(self.load_before),
            "took_s": self.took_s,
            "suite": dataclasses.asdict(self.suite),
            "servers": [kind.key for kind in self.servers],
            "only": self.only,
            "extra": self.extra,
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    @property
    def partial(self) -> bool:
        """Only some scenarios ran: the results file keeps the other sections' text."""
        return set(self.only) != set(SCENARIOS)

    def of(self, load: str, server: str) -> list[Run]:
        return [r for r in self.runs if r.load == load and r.server == server]

    def burst_figures(self) -> dict[str, tuple[float | None, float | None]]:
        """server -> (CPU us/delivery over the send+drain window, over the whole run)."""
        figures = {}
        for kind in self.servers:
            runs = self.of("burst", kind.key)
            if runs:
                figures[kind.key] = (
                    median(r.window_us_per_delivery for r in runs),
                    median(r.cpu_us_per_delivery for r in runs),
                )
        return figures

    def burst_section(self) -> str:
        s = self.suite
        rows = []
        for kind in self.servers:
            runs = self.of("burst", kind.key)
            if not runs:
                continue
            rows.append(
                [
                    kind.label,
                    fmt(median(r.window_us_per_delivery for r in runs), 2),
                    fmt(median(r.cpu_us_per_delivery for r in runs), 2),
                    fmt(median(r.received for r in runs))
                    + " / "
                    + fmt(median(r.get("deliveries", "expected") for r in runs)),
                    fmt(median(r.burst_per_s for r in runs)),
                    loss(runs),
                    fmt(median(r.get("latency_ms", "p50") for r in runs), 1),
                    fmt(median(r.get("latency_ms", "p99") for r in runs), 1),
                    fmt(median(r.server_rss_peak for r in runs), 0, 1 / 2**20),
                    fmt(median(r.server_busiest for r in runs), 2),
                    fmt(median(r.get("load_generator", "cpu_us_per_delivery") for r in runs), 1),
                    fmt(median(r.generator_busiest for r in runs), 2),
                    errors(runs),
                ]
            )
        deliveries = int(s.burst_rate * s.burst_duration_s * s.room_members)
        return (
            f"One room of {s.room_members:,} members; {s.burst_senders} senders send {s.burst_rate:g} messages/s in"
            f" total for {s.burst_duration_s:g} s ({deliveries:,} deliveries of {s.message_bytes}-byte messages),"
            f" then up to {s.burst_drain_s:g} s to drain. The first CPU column is the server's CPU time (utime +"
            " stime from /proc/PID/stat, read by the load tester with `--server-pid`) from the start of sending to"
            " the end of the drain, over the deliveries received: the fan-out's cost. The second is the harness's"
            " own reading of the same counters around the whole load-tester run, so it also carries connecting,"
            f" joining and closing the {s.room_members:,} sockets. *Deliveries/s* is the deliveries over the"
            " whole seconds from the start of sending to the last delivery."
            + (f" Medians of {s.repeat} runs." if s.repeat > 1 else "")
            + "\n\n"
            + table(
                [
                    "server",
                    "CPU µs/delivery (send + drain)",
                    "CPU µs/delivery (whole run)",
                    "received / expected",
                    "deliveries/s (until the last)",
                    "lost / dup / ooo",
                    "p50 ms",
                    "p99 ms",
                    "peak RSS MiB",
                    "server busiest s (cores)",
                    "generator µs/delivery",
                    "generator busiest s (cores)",
                    "errors",
                ],
                rows,
            )
            + "\n\n"
            + self.ratios()
        )

    def ratios(self) -> str:
        figures = self.burst_figures()
        if "ours" not in figures:
            return ""
        lines = []
        for key, wanted in (("naive", TARGET_CPU_RATIO_NAIVE), ("websockets", TARGET_CPU_RATIO_WEBSOCKETS)):
            if key not in figures:
                continue
            parts = []
            for i, what in ((0, "send + drain"), (1, "whole run")):
                ours, theirs = figures["ours"][i], figures[key][i]
                ratio = theirs / ours if ours and theirs else None
                parts.append(f"{fmt(ratio, 1)}x ({what})")
            lines.append(
                f"- {SERVERS[key].label} / ours: " + ", ".join(parts) + f"; the target is at least {wanted:g}x."
            )
        return "CPU per delivery, baseline over ours:\n\n" + "\n".join(lines)

    def loads_section(self) -> str:
        rows = []
        for per_s in self.suite.loads_per_s:
            for kind in self.servers:
                runs = self.of(load_key(per_s), kind.key)
                if not runs:
                    continue
                rows.append(
                    [
                        f"{per_s:,}/s",
                        kind.label,
                        fmt(median(r.sustained_per_s for r in runs)),
                        fmt(median(r.get("latency_ms", "p50") for r in runs), 1),
                        fmt(median(r.get("latency_ms", "p99") for r in runs), 1),
                        fmt(median(r.get("latency_ms", "max") for r in runs), 1),
                        loss(runs),
                        fmt(median(r.get("messages", "send_lag_ms", "p99") for r in runs), 1),
                        fmt(median(r.window_us_per_delivery for r in runs), 2),
                        fmt(median(r.server_busiest for r in runs), 2),
                        fmt(median(r.generator_busiest for r in runs), 2),
                        errors(runs),
                    ]
                )
        s = self.suite
        return (
            f"{s.load_senders} senders send at a fixed total rate into one room of {s.room_members:,} members for"
            f" {s.load_duration_s:g} s (offered deliveries/s = rate x members), {s.message_bytes}-byte messages,"
            f" up to {s.load_drain_s:g} s to drain. Latency runs from each message's intended send time, so a"
            " server (or a load generator) that falls behind shows it; *sender lag p99* is how late the load"
            " generator itself wrote its messages against the schedule. *Sustained deliveries/s* is the median"
            " second's deliveries while sending (the first second left out): the offered rate for a server that"
            " keeps up, its capacity for one that does not."
            + (f" Medians of {s.repeat} runs, the servers interleaved." if s.repeat > 1 else "")
            + "\n\n"
            + table(
                [
                    "offered",
                    "server",
                    "sustained deliveries/s",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "lost / dup / ooo",
                    "sender lag p99 ms",
                    "CPU µs/delivery (send + drain)",
                    "server busiest s (cores)",
                    "generator busiest s (cores)",
                    "errors",
                ],
                rows,
            )
            + "\n\n"
            + self.saturation()
            + self.floor_ratios()
        )

    def steady_against_floor(self, per_s: int) -> tuple[float | None, float | None, float, float]:
        """At one fixed load: (ours, floor) CPU µs per delivery, the load generator's worst sender lag p90 (ms)
        over those two, and the time between two messages (ms)."""
        ours, floor = (
            median(r.window_us_per_delivery for r in self.of(load_key(per_s), key)) for key in ("ours", "floor")
        )
        spacing_ms = 1000 * self.suite.room_members / per_s
        lag = max(
            median(r.get("messages", "send_lag_ms", "p90") for r in self.of(load_key(per_s), key)) or 0.0
            for key in ("ours", "floor")
        )
        return ours, floor, lag, spacing_ms

    def floor_ratios(self) -> str:
        """Ours against the floor (a bare send() loop) and websockets, at each fixed load."""
        lines = []
        for per_s in self.suite.loads_per_s:
            ours, floor, lag, spacing_ms = self.steady_against_floor(per_s)
            ws = median(r.window_us_per_delivery for r in self.of(load_key(per_s), "websockets"))
            if not ours:
                continue
            parts = []
            if floor:
                ratio = ours / floor
                part = f"ours / floor {ratio:.2f}x ({ours:.2f} vs {floor:.2f} µs)"
                # Messages the load generator wrote late arrive in clumps, which ours writes with one
                # send() per member and the floor with one per message: that is not the steady case. A
                # tenth of them late by more than the time between two messages, and it is not.
                clumped = lag > spacing_ms
                if clumped:
                    part += (
                        f", but the load generator fell behind (sender lag p90 up to {lag:,.0f} ms, against"
                        f" {spacing_ms:g} ms between messages), so messages arrived in clumps"
                    )
                if per_s == TARGET_FLOOR_LOAD:
                    part += f"; the target is at most {TARGET_FLOOR_RATIO:g}x: " + (
                        "not shown by this run (clumped)" if clumped else verdict(ratio <= TARGET_FLOOR_RATIO)
                    )
                parts.append(part)
            if ws:
                parts.append(f"websockets broadcast() / ours {ws / ours:.2f}x")
            if parts:
                lines.append(f"- {per_s:,}/s: " + "; ".join(parts))
        if not lines:
            return ""
        return (
            "\n\nCPU per delivery (send + drain) against the floor, a bare loop of one `send()` per member with"
            " the frame built once (`bench/floor.py`):\n\n" + "\n".join(lines)
        )

    def saturation(self) -> str:
        """Which servers could not sustain which offered loads."""
        fell_short = []
        for kind in self.servers:
            for per_s in self.suite.loads_per_s:
                sustained = median(r.sustained_per_s for r in self.of(load_key(per_s), kind.key))
                if sustained is not None and sustained < SATURATED * per_s:
                    fell_short.append(f"{kind.label} at {per_s:,}/s offered (sustained {sustained:,.0f}/s)")
        if not fell_short:
            return f"Every server sustained every offered load (at least {SATURATED:.0%} of it)."
        return f"Saturated (sustained less than {SATURATED:.0%} of the offered load): " + "; ".join(fell_short) + "."

    def idle_figures(self) -> dict[str, float | None]:
        """server -> bytes per idle socket (the load tester's figure)."""
        return {
            kind.key: median(r.get("idle", "bytes_per_socket") for r in self.of(self.suite.idle_key, kind.key))
            for kind in self.servers
            if self.of(self.suite.idle_key, kind.key)
        }

    def idle_section(self) -> str:
        rows = []
        for kind in self.servers:
            runs = self.of(self.suite.idle_key, kind.key)
            if not runs:
                continue
            rows.append(
                [
                    kind.label,
                    fmt(median(r.sockets_held for r in runs)),
                    fmt(median(r.get("idle", "rss_bytes_before") for r in runs), 1, 1 / 2**20),
                    fmt(median(r.get("idle", "rss_bytes_after") for r in runs), 1, 1 / 2**20),
                    fmt(median(r.get("idle", "bytes_per_socket") for r in runs), 1, 1 / 1024),
                    fmt(median(r.idle_bytes_per_socket for r in runs), 1, 1 / 1024),
                    fmt(median(r.connect_cpu_ms for r in runs), 2),
                    errors(runs),
                ]
            )
        s = self.suite
        return (
            f"`--scenario idle`: {s.idle_sockets:,} sockets in rooms of {s.idle_room_size}, opened at"
            f" {s.idle_ramp_per_s}/s and held {s.idle_hold_s:g} s. The load tester's figure is (server RSS once"
            " every socket is up - RSS before connecting) / sockets; the harness's is (peak RSS during the run -"
            " RSS of the fresh server) / sockets. KB = 1,024 bytes. *CPU per connect* is the server's CPU time"
            " from before the first connect until every socket is up (handshake, welcome, join, presence to the"
            " room), per socket.\n\n"
            + table(
                [
                    "server",
                    "sockets held",
                    "RSS before MiB",
                    "RSS all up MiB",
                    "KB per socket (load tester)",
                    "KB per socket (harness, peak)",
                    "server CPU per connect ms",
                    "errors",
                ],
                rows,
            )
        )

    def hold_figures(self) -> dict[str, int]:
        """server -> the most sockets fully connected in any idle run."""
        most = {}
        for kind in self.servers:
            steps = self.hold_steps(kind.key)
            if steps:
                most[kind.key] = max((r.sockets_held for r in steps if r.fully_connected), default=0)
        return most

    def hold_steps(self, server: str) -> list[Run]:
        return [
            r for r in self.runs if r.server == server and (r.load == self.suite.idle_key or r.load.startswith("hold-"))
        ]

    def hold_section(self) -> str:
        rows = []
        most = self.hold_figures()
        for kind in self.servers:
            steps = self.hold_steps(kind.key)
            if not steps:
                continue
            ladder = ", ".join(
                f"{fmt(r.get('connect', 'attempted'))} → {fmt(r.sockets_held)}"
                + ("" if r.fully_connected else " (not all)")
                for r in steps
            )
            top = steps[-1]
            rows.append(
                [
                    kind.label,
                    fmt(most[kind.key]),
                    ladder,
                    fmt(top.get("connect", "p99_ms"), 0),
                    fmt(top.get("idle", "bytes_per_socket"), 1, 1 / 1024),
                    errors(steps),
                ]
            )
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return (
            f"Idle sockets at increasing counts, {self.suite.idle_ramp_per_s} new ones a second (rooms of"
            f" {self.suite.idle_room_size}, the client sockets spread over `--source-ips {SOURCE_IPS}` and"
            f" {self.suite.procs} load-generating processes): "
            + ", then ".join(
                [
                    f"first the idle run's {self.suite.idle_sockets:,}",
                    *(f"{n:,}" for n in self.suite.hold_counts),
                    *(
                        [
                            "as many as the server process has file descriptors left (its limit minus those open"
                            f" once it has started, minus {FD_HEADROOM})"
                        ]
                        if self.suite.hold_max
                        else []
                    ),
                ]
            )
            + "; the ladder stops at the first count not fully connected."
            + hold_cap(hard)
            + "\n\n"
            + table(
                [
                    "server",
                    "most sockets fully connected",
                    "attempted → connected",
                    "connect p99 ms (last step)",
                    "KB per socket (last step)",
                    "errors",
                ],
                rows,
            )
        )

    def targets(self) -> str:
        rows: list[list[str]] = []
        figures = self.burst_figures()
        ours = figures.get("ours", (None, None))[0]
        for key, wanted in (("naive", TARGET_CPU_RATIO_NAIVE), ("websockets", TARGET_CPU_RATIO_WEBSOCKETS)):
            if key not in figures or ours is None:
                continue
            theirs = figures[key][0]
            ratio = theirs / ours if ours and theirs else None
            rows.append(
                [
                    f"burst: CPU per delivery at most 1/{wanted:g} of {SERVERS[key].label}'s",
                    f"{fmt(ours, 2)} µs vs {fmt(theirs, 2)} µs: {fmt(ratio, 1)}x less (wanted {wanted:g}x)",
                    verdict(ratio is not None and ratio >= wanted),
                ]
            )
        runs = self.of(load_key(40_000), "ours")
        if runs:
            p99 = median(r.get("latency_ms", "p99") for r in runs)
            clean = all(
                r.error is None
                and r.received
                and not any(r.get("deliveries", k) for k in ("lost", "duplicated", "out_of_order"))
                for r in runs
            )
            rows.append(
                [
                    "40,000 deliveries/s: no loss, duplicate or reorder; p99 ≤ 100 ms",
                    f"lost / dup / ooo {loss(runs)}; p99 {fmt(p99, 1)} ms",
                    verdict(clean and p99 is not None and p99 <= TARGET_P99_MS_AT_40K),
                ]
            )
        per_socket = self.idle_figures().get("ours")
        if "ours" in self.idle_figures():
            rows.append(
                [
                    "at most 20 KB of server memory per idle socket",
                    f"{fmt(per_socket, 1, 1 / 1024)} KB",
                    verdict(per_socket is not None and per_socket <= TARGET_BYTES_PER_IDLE_SOCKET),
                ]
            )
        most = self.hold_figures()
        if "ours" in most:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            rows.append(
                [
                    f"one process holds {TARGET_SOCKETS:,} sockets",
                    f"{most['ours']:,} fully connected; this machine allows {hard:,} open files per process",
                    hold_verdict(most["ours"], hard),
                ]
            )
        slow = self.slow_figures()
        if slow is not None:
            growth_mb, p99_change, gaps, lost = slow
            ok = growth_mb <= 20 and p99_change is not None and abs(p99_change) < 0.20 and gaps >= 1 and lost == 0
            rows.append(
                [
                    "slow consumer: memory flat (within 20 MB), others' p99 moves < 20 %, gap notice and recovery",
                    f"peak RSS {growth_mb:+.1f} MB against no stalled reader; others' p99 "
                    f"{'n/a' if p99_change is None else f'{p99_change:+.0%}'}; {gaps} gap notice(s); {lost} lost",
                    verdict(ok),
                ]
            )
        else:
            rows.append(["slow consumer: memory flat, others' p99 moves < 20 %, gap notice", "not measured", "—"])
        rows.extend(self.issue9_targets())
        return table(["target (issue)", "ours", "met?"], rows)

    def issue9_targets(self) -> list[list[str]]:
        """Issue 9's rows: steady fan-out against the floor, and the join storm at each rate."""
        rows: list[list[str]] = []
        ours, floor, lag, spacing_ms = self.steady_against_floor(TARGET_FLOOR_LOAD)
        if ours and floor:
            ratio = ours / floor
            clumped = lag > spacing_ms  # see floor_ratios: not the steady case
            rows.append(
                [
                    f"(9) steady {TARGET_FLOOR_LOAD:,} deliveries/s: CPU per delivery at most"
                    f" {TARGET_FLOOR_RATIO:g}x the floor's",
                    f"{fmt(ours, 2)} µs vs {fmt(floor, 2)} µs: {ratio:.2f}x"
                    + (f" (messages arrived in clumps: sender lag p90 {lag:,.0f} ms)" if clumped else ""),
                    "not shown by this run" if clumped else verdict(ratio <= TARGET_FLOOR_RATIO),
                ]
            )
        for run in (r for r in self.runs if r.load.startswith("joinstorm-")):
            refused = refusals(run)
            attempted = int(run.get("connect", "attempted") or 0)
            hard = refused["unavailable"] + refused["1013"]
            per_s = run.offered_per_s or 0
            if per_s <= min(self.suite.joinstorm.per_s):
                goal = "every socket connects and joins"
                met = run.report is not None and attempted > 0 and run.sockets_held == attempted
            else:
                goal = "none refused `unavailable` or closed 1013"
                met = run.report is not None and hard == 0
            rows.append(
                [
                    f"(9) join storm at {per_s:,} connections/s: {goal}",
                    f"{run.sockets_held:,} of {attempted:,} joined; {refused['unavailable']:,} unavailable,"
                    f" {refused['1013']:,} closed 1013, {refused['timeouts']:,} timed out",
                    verdict(met),
                ]
            )
        return rows

    def slow_figures(self) -> tuple[float, float | None, int, int] | None:
        """(peak RSS with a stalled reader minus without, MB; others' p99 change; gaps; deliveries lost)."""
        calm, stalled = self.of("slow-0", "ours"), self.of("slow-1", "ours")
        if not calm or not stalled or calm[0].report is None or stalled[0].report is None:
            return None
        a, b = calm[0], stalled[0]
        p99_a, p99_b = a.get("latency_ms", "p99"), b.get("latency_ms", "p99")
        change = (p99_b - p99_a) / p99_a if p99_a and p99_b is not None else None
        growth = (b.server_rss_peak - a.server_rss_peak) / 2**20
        return growth, change, int(b.get("deliveries", "gaps") or 0), int(b.get("deliveries", "lost") or 0)

    def slow_section(self) -> str:
        s = self.suite
        rows = []
        for key, label in (("slow-0", "no stalled reader"), ("slow-1", "1 stalled reader")):
            for r in self.of(key, "ours"):
                rows.append(
                    [
                        label,
                        fmt(r.received) + " / " + fmt(r.get("deliveries", "expected")),
                        loss([r]),
                        fmt(r.get("deliveries", "gaps")),
                        fmt(r.get("deliveries", "late")),
                        fmt(r.get("latency_ms", "p50"), 1),
                        fmt(r.get("latency_ms", "p99"), 1),
                        fmt(r.server_rss_before / 2**20, 1),
                        fmt(r.server_rss_peak / 2**20, 1),
                        errors([r]),
                    ]
                )
        if not rows:
            return "Not measured in this run."
        return "\n".join(
            [
                f"Ours only (the baselines have no slow-consumer policy: they buffer without bound). One room of"
                f" {s.slow_members} members; 5 senders send {s.slow_rate:g} messages/s of {s.slow_message_bytes}"
                f" bytes for {s.slow_duration_s:g} s (about {s.slow_rate * s.slow_message_bytes / 1000:.0f} KB/s to"
                " each member), once with every member reading and once with one member that stops reading while"
                " the room floods (`--stalled 1`) and reads again at the end. The stalled member's deliveries count"
                " for loss and order but not for latency: the p99 is the other members'. *gaps* are the gap notices"
                " the server sent; *late* the messages the stalled member then fetched with history.",
                "",
                table(
                    [
                        "run",
                        "received / expected",
                        "lost / dup / ooo",
                        "gaps",
                        "late",
                        "p50 ms",
                        "p99 ms",
                        "RSS before MiB",
                        "peak RSS MiB",
                        "errors",
                    ],
                    rows,
                ),
            ]
        )

    def scale_steps(self) -> dict[str, list[Run]]:
        """The redis scenario's steps, by configuration, in the order they ran."""
        steps: dict[str, list[Run]] = {}
        for r in self.runs:
            if r.load.startswith("scale-") and r.server in SCALE_CONFIGS:
                steps.setdefault(r.server, []).append(r)
        return {key: steps[key] for key in SCALE_CONFIGS if key in steps}

    def scale_section(self) -> str:
        s = self.suite
        by_config = self.scale_steps()
        if not by_config:
            why = self.extra.get("redis_error")
            return "Not measured in this run" + (f": {why}." if why else ".")
        common = common_rate(by_config)
        summary = []
        for key, steps in by_config.items():
            at = next((r for r in steps if r.offered_per_s == common), None)
            best = zero_loss_max(steps)
            redis = SCALE_CONFIGS[key].redis
            summary.append(
                [
                    label_of(key),
                    fmt(at.window_us_per_delivery, 2) if at else "-",
                    fmt(redis_per_message(at, "process_redis_cpu_seconds_total"), 1, 1e6) if at and redis else "-",
                    fmt(redis_per_message(at, "process_redis_commands_total"), 1) if at and redis else "-",
                    fmt(redis_per_message(at, "process_redis_publish_total"), 2) if at and redis else "-",
                    (f"{fmt(best.sustained_per_s)} (offered {fmt(best.offered_per_s)})" if best else "none"),
                    fmt(best.get("latency_ms", "p99"), 1) if best else "-",
                    fmt(best.server_busiest, 2) if best else "-",
                    fmt(best.generator_busiest, 2) if best else "-",
                    ladder_end(steps),
                ]
            )
        rows = []
        for per_s in s.scale_per_s:
            for key, steps in by_config.items():
                for r in (r for r in steps if r.offered_per_s == per_s):
                    redis = SCALE_CONFIGS[key].redis
                    rows.append(
                        [
                            f"{per_s:,}/s",
                            label_of(key),
                            fmt(r.sustained_per_s),
                            loss([r]),
                            fmt(r.get("latency_ms", "p50"), 1),
                            fmt(r.get("latency_ms", "p99"), 1),
                            fmt(r.get("server", "cpu_seconds"), 2),
                            fmt(r.window_us_per_delivery, 2),
                            fmt(redis_per_message(r, "process_redis_cpu_seconds_total"), 1, 1e6) if redis else "-",
                            fmt(redis_per_message(r, "process_redis_commands_total"), 1) if redis else "-",
                            fmt(redis_per_message(r, "process_redis_publish_total"), 2) if redis else "-",
                            fmt(r.server_busiest, 2),
                            fmt(r.redis_busiest, 2) if redis else "-",
                            fmt(r.get("load_generator", "cpu_us_per_delivery"), 1),
                            fmt(r.generator_busiest, 2),
                            errors([r]),
                        ]
                    )
        common_text = (
            f"The CPU columns are at {common:,} deliveries/s offered, the highest rate all kept up with"
            if common
            else "The CPU columns are empty: no offered rate was kept up with by every configuration, so there is"
            " none to compare them at (every step's figures are in the table after)"
        )
        nproc = os.cpu_count() or 0
        generator_figures: dict[str, tuple[float | None, float | None]] = {}
        for key, steps in by_config.items():
            at = next((r for r in steps if r.offered_per_s == common), None)
            if at is not None:
                generator_figures[label_of(key)] = (
                    at.get("load_generator", "cpu_us_per_delivery"),
                    at.window_us_per_delivery,
                )
        one_steps, two_steps = by_config.get("redis", []), by_config.get("redis-2w", [])
        one_best, two_best = zero_loss_max(one_steps), zero_loss_max(two_steps)
        workers_figures = (
            one_best.sustained_per_s if one_best else None,
            two_best.sustained_per_s if two_best else None,
            bool(one_steps) and kept_up(one_steps[-1]),
            bool(two_steps) and kept_up(two_steps[-1]),
            max((r.offered_per_s or 0 for r in one_steps + two_steps), default=None),
        )
        return "\n".join(
            [
                f"Ours three ways, driven by the same load tester: one process without Redis (history in SQLite"
                f" `:memory:`), one process with `--redis`, and `--redis --workers 2`. Measured on"
                f" {self.started:%Y-%m-%d %H:%M} UTC against redis-server {self.extra.get('redis_version', '?')}"
                " started by the harness on a free loopback port with `--save '' --appendonly no` (nothing"
                " persisted: like the in-memory SQLite) and emptied with FLUSHALL before every step. One room of"
                f" {s.scale_members:,} members, {s.scale_senders} senders, {s.message_bytes}-byte messages; each"
                f" step offers a fixed rate (deliveries/s = messages/s x {s.scale_members:,}) for"
                f" {s.scale_duration_s:g} s with up to {s.scale_drain_s:g} s to drain, to a freshly started server."
                " The offered rates climb"
                f" ({', '.join(f'{r:,}' for r in s.scale_per_s)}/s); a configuration leaves the ladder at its"
                " first step with a lost, duplicated or reordered delivery, an error, a socket not connected or"
                f" a median second below {SATURATED:.0%} of the offered rate.",
                "",
                "- *server CPU*: utime + stime of the server process **and every process below it** (the 2"
                " workers and their supervisor), plus what they hold for reaped children, from /proc. The load"
                " tester reads it just before sending starts and when the drain ends, from a `/metrics` page the"
                " harness serves for it (`--metrics-url`, no `--server-pid`), so it is the send + drain window,"
                " as in section 1. *µs/delivery* divides it by the deliveries received.",
                "- *Redis CPU µs/message*: redis-server's `used_cpu_user + used_cpu_sys` (INFO, microsecond"
                " resolution) over the same window, divided by the messages sent. *commands/message*: its"
                " `total_commands_processed` likewise, which counts the commands Lua scripts run (the append"
                " script's INCR, XADD, HSET and PUBLISH), each process's heartbeat and the refresh of every"
                " connected name it runs every few seconds (a cost per socket, not per message), and the"
                " harness's two INFOs. Both include what Redis spends per second whatever the load (its own"
                f" timers: {fmt(self.extra.get('redis_idle_cpu'), 2, 1000)} ms of CPU per second with nothing"
                " connected, measured when it started; with a server, its heartbeat and name refreshes), so at"
                " low rates they overstate the cost of a message. *PUBLISH/message*: the PUBLISH calls"
                " (`cmdstat_publish`) per message:"
                " 1 when every process subscribed to the room gets a message from one publish. A message goes"
                f" to {s.scale_members:,} members, so a Redis cost per delivery would show as"
                f" {s.scale_members:,} times these.",
                "- *highest zero-loss deliveries/s*: among the steps with every socket connected, every delivery"
                " made once and in order within the drain, and no error, the highest median second while"
                " sending (the first second left out), with the offered rate of that step. *Ladder ended at*:"
                " the step that ended a configuration's ladder, and why.",
                f"- **This machine has {nproc} cores, and the load generator ({s.procs} processes, in Python)"
                " runs on the same cores as the server, its workers and Redis**: the highest zero-loss rate is"
                " this machine's ceiling for server and generator together, not the server's alone. At the rate"
                f" of the CPU columns the load generator {generator_vs_server(generator_figures)}. "
                + workers_vs_one(*workers_figures, nproc),
                "",
                f"Per configuration. {common_text}:",
                "",
                table(
                    [
                        "configuration",
                        "server CPU µs/delivery",
                        "Redis CPU µs/message",
                        "Redis commands/message",
                        "Redis PUBLISH/message",
                        "highest zero-loss deliveries/s",
                        "p99 ms there",
                        "server busiest s there (cores)",
                        "generator busiest s there (cores)",
                        "ladder ended at",
                    ],
                    summary,
                ),
                "",
                "Every step:",
                "",
                table(
                    [
                        "offered",
                        "configuration",
                        "sustained deliveries/s",
                        "lost / dup / ooo",
                        "p50 ms",
                        "p99 ms",
                        "server CPU s (send + drain)",
                        "server CPU µs/delivery",
                        "Redis CPU µs/message",
                        "Redis commands/message",
                        "Redis PUBLISH/message",
                        "server busiest s (cores)",
                        "Redis busiest s (cores)",
                        "generator µs/delivery",
                        "generator busiest s (cores)",
                        "errors",
                    ],
                    rows,
                ),
                *([f"\nThe ladder was cut short: {self.extra['scale_note']}."] if self.extra.get("scale_note") else []),
                "",
                "Commands (`R` is Redis's free port, `P` the server's, `TMP` a scratch directory, `URL`"
                " `ws://127.0.0.1:P/ws`, `METRICS` the harness's `/metrics` page, `JSON` the step's report in"
                " bench/out/runs/):",
                "",
                "```",
                shlex.join(redis_command_template(self.extra.get("redis_command", [REDIS_SERVER]))),
                *[
                    shlex.join(c.argv("redis://127.0.0.1:R/0")(0, Path("TMP"))).replace("--port 0", "--port P")
                    for key, c in SCALE_CONFIGS.items()
                    if key in by_config
                ],
                *dict.fromkeys(scale_command(r) for steps in by_config.values() for r in steps if r.command),
                "```",
            ]
        )

    def sections(self, commands: Sequence[str]) -> list[tuple[str, tuple[str, ...], str]]:
        """``(heading, the scenarios it shows, body)`` for every section after the preamble.

        A run of only some scenarios rewrites the sections whose scenarios all ran, and keeps the
        others' text from the results file (see :func:`merge_partial`).
        """
        suite = ("burst", "loads", "idle", "hold", "slow")
        return [
            ("Targets", suite, self.targets()),
            ("1. Burst: server CPU per delivery", ("burst",), self.burst_section()),
            ("2. Fixed offered loads", ("loads",), self.loads_section()),
            ("3. Memory per idle socket", ("idle",), self.idle_section()),
            ("4. Most sockets held", ("hold",), self.hold_section()),
            ("5. Slow consumer", ("slow",), self.slow_section()),
            ("6. Scaling out: Redis and worker processes", ("redis",), self.scale_section()),
            ("7. A join storm over worker processes", ("joinstorm",), joinstorm_section(self)),
            ("Reading the columns", (), self.columns_text()),
            ("Commands", suite, self.commands_text(commands)),
        ]

    def fresh_headings(self) -> list[str]:
        return [heading for heading, needs, _ in self.sections([]) if set(needs) <= set(self.only)]

    def build(self, commands: Sequence[str]) -> str:
        lines = [
            "# Benchmark results",
            "",
            f"Written by `make bench` (`.venv/bin/python bench/run.py`) on {self.started:%Y-%m-%d %H:%M} UTC;"
            f" every figure comes from that one run ({self.took_s / 60:.0f} minutes), every server side by"
            " side. bench/README.md describes the suite.",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".",
            # Other work on the machine skews every figure: say how busy it was.
            "Load average (1, 5, 15 min) before the suite started: "
            + ", ".join(f"{x:.2f}" for x in self.load_before)
            + ".",
            "",
        ]
        for heading, _needs, body in self.sections(commands):
            lines += [f"## {heading}", "", body, ""]
        return "\n".join(lines)

    def partial_note(self) -> str:
        """The line a partial run adds to the results file's preamble."""
        rewrote = [h for h, needs, _ in self.sections([]) if needs and set(needs) <= set(self.only)]
        return (
            f"{PARTIAL_NOTE} `--only {','.join(self.only)}` on {self.started:%Y-%m-%d %H:%M} UTC"
            f" ({self.took_s / 60:.1f} minutes; load average before it "
            + ", ".join(f"{x:.2f}" for x in self.load_before)
            + ") rewrote "
            + (", ".join(f"*{h}*" for h in rewrote) or "nothing")
            + "; every other section is from the run above."
        )

    def columns_text(self) -> str:
        return "\n".join(
            [
                "- *server busiest s*: the server's CPU use over its busiest second of the run, sampled by the"
                " harness from /proc (1.00 = one core: these servers are single-threaded, so 1.00 is saturated).",
                "- *generator busiest s*: the same for the busiest of the load generator's processes; at"
                f" {GENERATOR_BUSY} or more the load generator itself may have been the limit. *generator µs/delivery*"
                " is the load tester's own CPU per delivery received, over all its processes.",
                "- *lost / dup / ooo*: deliveries lost, duplicated and out of order, as the load tester accounts them"
                " (every member must receive every message of its room once, in seq order); a delivery still"
                " missing when the drain ends counts as lost.",
                "- *errors*: the harness's notes (a failed run, a killed load tester, a server's non-zero exit,"
                f" other processes busy on the machine: {OTHERS_NOTED} cores or more on average during the run)"
                " and the load tester's errors by kind.",
            ]
        )

    def commands_text(self, commands: Sequence[str]) -> str:
        return "\n".join(
            [
                "Servers, each started fresh for every run from the repository root (`P` is a free port, `TMP` a"
                " scratch directory):",
                "",
                "```",
                *[shlex.join(kind.argv(0, Path("TMP"))).replace("--port 0", "--port P") for kind in self.servers],
                "```",
                "",
                "Load-tester runs, in order (`URL` is `ws://127.0.0.1:P/ws`, `PID` the server's process id):",
                "",
                "```",
                *commands,
                "```",
            ]
        )


PARTIAL_NOTE = "A partial run"


def split_sections(text: str) -> tuple[str, dict[str, str]]:
    """A markdown file cut at its ``## `` headings: (what precedes the first, {heading: what follows it})."""
    preamble: list[str] = []
    sections: dict[str, list[str]] = {}
    current = preamble
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return "".join(preamble), {heading: "".join(body) for heading, body in sections.items()}


def merge_partial(old: str, new: str, fresh: Iterable[str], note: str) -> str:
    """``new``'s sections in ``new``'s order: those headed ``fresh`` (or missing from ``old``) from ``new``,
    the others as ``old`` has them; ``old``'s preamble, with ``note`` in place of an earlier note of a
    partial run of the same scenarios (the note's text up to " on ")."""
    old_preamble, old_sections = split_sections(old)
    _, new_sections = split_sections(new)
    fresh = set(fresh)
    same = note.split(" on ", 1)[0] + " on "
    kept = [line for line in old_preamble.rstrip("\n").split("\n\n") if not line.startswith(same)]
    parts = ["\n\n".join([*kept, note]) + "\n\n"]
    for heading, body in new_sections.items():
        use_old = heading not in fresh and heading in old_sections
        parts.append(f"## {heading}\n" + (old_sections[heading] if use_old else body))
    return "".join(parts)


def results_text(report: Report, commands: Sequence[str], output: Path) -> str:
    """The results file's new text: all of it after a full run; after a partial one, the sections it
    rewrote merged into the file's existing text."""
    text = report.build(commands)
    if report.partial and output.exists():
        text = merge_partial(output.read_text(), text, report.fresh_headings(), report.partial_note())
    return text


def redis_per_message(run: Run, sample: str) -> float | None:
    """A sample of the harness's /metrics page (see :class:`TreeMetrics`), its change over the send +
    drain window per message sent."""
    value = run.get("server", "metrics_delta", sample)
    sent = run.get("messages", "sent")
    return float(value) / int(sent) if value is not None and sent else None


def ladder_end(steps: Sequence[Run]) -> str:
    """The step that ended a configuration's ladder and why, or that it kept up to the last step."""
    last = steps[-1] if steps else None
    if last is None or kept_up(last):
        return "kept up at every step" if last else "-"
    why = []
    if last.error:
        why.append(last.error.replace("|", "/"))
    attempted = last.get("connect", "attempted")
    if attempted and last.sockets_held != attempted:
        why.append(f"{fmt(last.sockets_held)} of {fmt(attempted)} sockets connected")
    if any(last.get("deliveries", k) for k in ("lost", "duplicated", "out_of_order")):
        why.append(f"lost / dup / ooo {loss([last])}")
    kinds = last.get("errors", "by_kind")
    if isinstance(kinds, dict) and any(kinds.values()):
        why.append(", ".join(f"{k}: {v}" for k, v in kinds.items() if v))
    if not why and last.sustained_per_s is not None:
        why.append(f"sustained {fmt(last.sustained_per_s)}/s")
    return f"{fmt(last.offered_per_s)}/s: " + ("; ".join(why) or "not clean")


def scale_command(run: Run) -> str:
    """A redis-scenario step's load-tester command, with the run-specific words as placeholders."""
    words = list(run.command)
    for i, word in enumerate(words):
        if word.startswith("ws://"):
            words[i] = "URL"
        elif i and words[i - 1] == "--metrics-url":
            words[i] = "METRICS"
        elif i and words[i - 1] == "--json":
            words[i] = "JSON"
    return shlex.join(words)


def redis_command_template(words: Sequence[str]) -> list[str]:
    """The redis-server command with its port and scratch directory as ``R`` and ``TMP``."""
    template = list(words)
    for i in range(1, len(template)):
        if template[i - 1] == "--port":
            template[i] = "R"
        elif template[i - 1] == "--dir":
            template[i] = "TMP"
    return template


def load_saved(path: Path) -> tuple[Report, list[str]]:
    """The Report (and command lines) of a suite saved by :meth:`Report.saved`."""
    data = json.loads(path.read_text())
    suite_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["suite"].items()}
    if isinstance(suite_fields.get("joinstorm"), dict):
        storm = suite_fields["joinstorm"]
        storm_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in storm.items()}
        suite_fields["joinstorm"] = JoinStorm(**storm_fields)
    runs = [Run(**r) for r in data["runs"]]
    report = Report(
        runs,
        Suite(**suite_fields),
        [SERVERS[key] for key in data["servers"]],
        datetime.datetime.fromisoformat(data["started"]),
        (data["load_before"][0], data["load_before"][1], data["load_before"][2]),
        float(data["took_s"]),
        data.get("only", SCENARIOS),
        data.get("extra", {}),
    )
    return report, suite_commands(runs)


def suite_commands(runs: Iterable[Run]) -> list[str]:
    """The Commands section's load-tester lines; the redis scenario lists its own in its section."""
    return [command_line(r) for r in runs if r.server not in SCALE_CONFIGS and not r.load.startswith("joinstorm-")]


def command_line(run: Run) -> str:
    words = list(run.command)
    if not words:
        return f"# {run.load}, {label_of(run.server)}: not run ({run.error})"
    for i, word in enumerate(words):
        if word.startswith("ws://"):
            words[i] = "URL"
        elif i and words[i - 1] == "--server-pid":
            words[i] = "PID"
    return f"# {run.load}, {label_of(run.server)}\n{shlex.join(words)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer sockets: a smoke test of the harness")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="scenarios to run, comma-separated; the results file keeps the other sections' text [%(default)s]",
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="servers to run, comma-separated [%(default)s]")
    parser.add_argument("--repeat", type=int, help="runs of the burst and of each fixed load; tables show medians [3]")
    parser.add_argument(
        "--loadtest", default=f"{shlex.join(python())} -m chat.loadtest", help="the load tester's command [%(default)s]"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds each run may wait for other work on the machine to calm down; 0: don't [%(default)s]",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the markdown file to write [bench/results.md]")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RUNS.json",
        help="run nothing: rewrite the markdown from the bench/out/*-runs.json an earlier suite saved",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        report, commands = load_saved(args.render)
        args.output.write_text(results_text(report, commands, args.output))
        print(f"wrote {args.output}")
        return 0

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    raise_fd_limit()
    servers = [SERVERS[s.strip()] for s in args.servers.split(",") if s.strip()]
    suite = Suite.quick() if args.quick else Suite()
    if args.repeat is not None:
        suite = dataclasses.replace(suite, repeat=max(1, args.repeat))
    started_at = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    if load_before[0] > BUSY_MACHINE_LOAD:
        print(f"warning: load average {load_before[0]:.2f}: other work on this machine will skew the figures")
    harness = Harness(shlex.split(args.loadtest), started_at.strftime("%Y%m%d-%H%M%S"), args.quiet_wait)
    began = time.monotonic()
    run_suite(harness, suite, servers, only)
    took = time.monotonic() - began
    print(f"suite done in {took:.0f} s\n")

    report = Report(harness.runs, suite, servers, started_at, load_before, took, only, harness.extra)
    text = results_text(report, suite_commands(harness.runs), args.output)
    args.output.write_text(text)
    saved = OUT / f"{harness.tag}-runs.json"
    saved.write_text(json.dumps(report.saved(), indent=1))
    print(text)
    print(f"saved every figure in {saved.relative_to(ROOT)}")
    print(f"wrote {args.output}")
    failed = any(r.error is not None for r in harness.runs) or "redis_error" in harness.extra
    failed = failed or "joinstorm_error" in harness.extra
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
