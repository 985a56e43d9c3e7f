"""The benchmark suite behind ``make bench``: our server and both baselines, in one run.

    .venv/bin/python bench/run.py               # the whole suite -> bench/results.md
    .venv/bin/python bench/run.py --quick       # every scenario, shortened: a smoke test of the harness
    .venv/bin/python bench/run.py --only burst --servers ours,naive

For every scenario, each server is started fresh (its own process, free port,
throwaway history), driven by the project's load tester (``python -m
chat.loadtest``) with the same options, and stopped. Besides the load tester's
own report, this harness reads the server's CPU time (utime + stime from
``/proc/PID/stat``) and RSS (``VmRSS``) before and after each run and samples
them during it, so CPU per delivery is computed the same way for all three
servers. It also samples the load generator's CPU, to show when the generator
rather than the server was the limit. bench/README.md explains the suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import shlex
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

# The targets (issue 3, "Targets").
TARGET_CPU_RATIO_NAIVE = 10.0  # ours at most a tenth of the naive baseline's CPU per delivery
TARGET_CPU_RATIO_WEBSOCKETS = 5.0  # and at most a fifth of websockets.broadcast()'s
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
        if server.kind.ready in server.log_path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.kind.label} not ready after {START_TIMEOUT_S:.0f} s: see {server.log_path}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# -- /proc readings ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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
    server_cpu: float
    server_rss: int
    generator_cpu: dict[int, float]  # pid -> cpu seconds, for each load-generating process
    machine_cpu: float  # busy seconds of all CPUs together


class Sampler:
    """Samples the server's CPU and RSS and the load generator's CPU in a thread."""

    def __init__(self, server_pid: int, generator_pid: int) -> None:
        self.server_pid = server_pid
        self.generator_pid = generator_pid
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
                        cpu_seconds(self.server_pid),
                        status_bytes(self.server_pid, "VmRSS"),
                        generator,
                        machine_busy_seconds(),
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
        busy = last.machine_cpu - first.machine_cpu - (last.server_cpu - first.server_cpu) - generator
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

    def run(self, kind: ServerKind, load: Load, adjust: Callable[[RunningServer], list[str]] | None = None) -> Run:
        """Start a fresh ``kind``, drive it with ``load``, stop it; the figures go in the returned Run.

        ``adjust`` may replace the load tester's options once the server runs.
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
                    "--server-pid",
                    str(server.proc.pid),
                    "--json",
                    str(report_path.relative_to(ROOT)),
                    "-q",
                ]
                run = Run(kind.key, load.key, command, server.command, waited_s=waited)
                self._drive(run, server, load, report_path)
                run.server_exit = stop(server.proc)
        except (RuntimeError, OSError) as exc:  # a server that would not start, or vanished from /proc
            run = Run(kind.key, load.key, [], [], error=str(exc), waited_s=waited)
        self.runs.append(run)
        print(summary_line(run), flush=True)
        return run

    def _drive(self, run: Run, server: RunningServer, load: Load, report_path: Path) -> None:
        pid = server.proc.pid
        run.server_fds_before = open_fds(pid)
        run.server_rss_before = status_bytes(pid, "VmRSS")
        cpu_before = cpu_seconds(pid)
        # No other child of ours is reaped while the load tester runs (servers are reaped when stopped),
        # so the difference in children's usage is the load tester's, its own children included.
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at = time.monotonic()
        generator = subprocess.Popen(run.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = b""
        with Sampler(pid, generator.pid) as sampler:
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
        run.server_cpu_s = cpu_seconds(pid) - cpu_before
        run.server_rss_after = status_bytes(pid, "VmRSS")
        run.server_rss_peak = max([status_bytes(pid, "VmHWM"), *(s.server_rss for s in sampler.samples)])
        run.server_busiest = sampler.busiest(lambda s: s.server_cpu)
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
    parts.append(f"busiest s: server {run.server_busiest:.2f}, generator {run.generator_busiest:.2f} cores")
    parts.append(f"others {run.others_cores:.2f} cores")
    if run.waited_s >= QUIET_SAMPLE_S + 1:
        parts.append(f"(waited {run.waited_s:.0f} s for a quiet machine)")
    if run.error:
        parts.append(f"ERROR {run.error}")
    return "  ".join(parts)


# -- the suite -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Suite:
    """The fixed parameters; ``quick()`` shortens every run for a smoke test of the harness."""

    room_members: int = 1000
    burst_senders: int = 10
    burst_rate: float = 100.0
    # 300 messages x 1,000 members: enough for a stable figure, short enough to repeat, and the naive
    # baseline (the slowest) still delivers them all within the drain on this 2-core machine.
    burst_duration_s: float = 3.0
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
    repeat: int = 3  # burst runs per server; the tables show medians
    # The slow-consumer check: a flooded room of this many members, big messages (about 585 KB/s
    # to each member), long enough that a stalled reader's socket buffers fill and its backlog
    # overflows (the server's default --max-backlog-bytes is 1 MiB).
    slow_members: int = 50
    slow_rate: float = 150.0
    slow_message_bytes: int = 3900
    slow_duration_s: float = 20.0
    slow_drain_s: float = 20.0

    @staticmethod
    def quick() -> Suite:
        return Suite(
            room_members=200,
            burst_duration_s=2,
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


SCENARIOS = ("burst", "loads", "idle", "hold", "slow")


def run_suite(harness: Harness, suite: Suite, servers: Sequence[ServerKind], only: Sequence[str]) -> None:
    if "burst" in only:
        print(f"burst: 1 room of {suite.room_members:,}, {suite.burst_senders} senders, {suite.burst_rate:g} msgs/s")
        for _ in range(suite.repeat):
            for kind in servers:
                harness.run(kind, suite.burst())
    if "loads" in only:
        print(f"fixed offered loads into 1 room of {suite.room_members:,}")
        for per_s in suite.loads_per_s:
            for kind in servers:
                harness.run(kind, suite.offered(per_s))
    idle: dict[str, Run] = {}
    if "idle" in only:
        print(f"idle memory: {suite.idle_sockets:,} sockets")
        for kind in servers:
            idle[kind.key] = harness.run(kind, suite.idle(suite.idle_sockets, suite.idle_key))
    if "hold" in only:
        print("most sockets held: idle sockets, more at each step, up to the server's fd limit")
        for kind in servers:
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
        if r.server_exit not in (0, None):
            notes.append(f"server exit {r.server_exit}")
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
    ):
        self.runs = runs
        self.load_before = load_before
        self.took_s = took_s
        self.suite = suite
        self.servers = servers
        self.started = started

    def saved(self) -> dict[str, Any]:
        """Everything the markdown is built from, for ``--render``."""
        return {
            "started": self.started.isoformat(),
            "load_before": list(self.load_before),
            "took_s": self.took_s,
            "suite": dataclasses.asdict(self.suite),
            "servers": [kind.key for kind in self.servers],
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

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
            " keeps up, its capacity for one that does not.\n\n"
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
            " **This machine caps every"
            f" process at {hard:,} open files (the hard RLIMIT_NOFILE, which cannot be raised here), so no server"
            f" process can hold the issue's {TARGET_SOCKETS:,} sockets on it**: the table shows how close each"
            " server gets to that cap.\n\n"
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
                    "cannot be shown here" if most["ours"] else verdict(False),
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
        return table(["target (issue 3)", "ours", "met?"], rows)

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

    def build(self, commands: Sequence[str]) -> str:
        return "\n".join(
            [
                "# Benchmark results",
                "",
                f"Written by `make bench` (`.venv/bin/python bench/run.py`) on {self.started:%Y-%m-%d %H:%M} UTC;"
                f" every figure comes from that one run ({self.took_s / 60:.0f} minutes), all three servers side by"
                " side. bench/README.md describes the suite.",
                "",
                "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".",
                # Other work on the machine skews every figure: say how busy it was.
                "Load average (1, 5, 15 min) before the suite started: "
                + ", ".join(f"{x:.2f}" for x in self.load_before)
                + ".",
                "",
                "## Targets",
                "",
                self.targets(),
                "",
                "## 1. Burst: server CPU per delivery",
                "",
                self.burst_section(),
                "",
                "## 2. Fixed offered loads",
                "",
                self.loads_section(),
                "",
                "## 3. Memory per idle socket",
                "",
                self.idle_section(),
                "",
                "## 4. Most sockets held",
                "",
                self.hold_section(),
                "",
                "## 5. Slow consumer",
                "",
                self.slow_section(),
                "",
                "## Reading the columns",
                "",
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
                "",
                "## Commands",
                "",
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
                "",
            ]
        )


def load_saved(path: Path) -> tuple[Report, list[str]]:
    """The Report (and command lines) of a suite saved by :meth:`Report.saved`."""
    data = json.loads(path.read_text())
    suite_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["suite"].items()}
    runs = [Run(**r) for r in data["runs"]]
    report = Report(
        runs,
        Suite(**suite_fields),
        [SERVERS[key] for key in data["servers"]],
        datetime.datetime.fromisoformat(data["started"]),
        (data["load_before"][0], data["load_before"][1], data["load_before"][2]),
        float(data["took_s"]),
    )
    return report, [command_line(r) for r in runs]


def command_line(run: Run) -> str:
    words = list(run.command)
    if not words:
        return f"# {run.load}, {SERVERS[run.server].label}: not run ({run.error})"
    for i, word in enumerate(words):
        if word.startswith("ws://"):
            words[i] = "URL"
        elif i and words[i - 1] == "--server-pid":
            words[i] = "PID"
    return f"# {run.load}, {SERVERS[run.server].label}\n{shlex.join(words)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer sockets: a smoke test of the harness")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, comma-separated [%(default)s]")
    parser.add_argument("--servers", default=",".join(SERVERS), help="servers to run, comma-separated [%(default)s]")
    parser.add_argument("--repeat", type=int, help="run the burst this many times; tables show medians [3]")
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
        args.output.write_text(report.build(commands))
        print(f"wrote {args.output}")
        return 0

    raise_fd_limit()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
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

    report = Report(harness.runs, suite, servers, started_at, load_before, took)
    text = report.build([command_line(r) for r in harness.runs])
    args.output.write_text(text)
    saved = OUT / f"{harness.tag}-runs.json"
    saved.write_text(json.dumps(report.saved(), indent=1))
    print(text)
    print(f"saved every figure in {saved.relative_to(ROOT)}")
    print(f"wrote {args.output}")
    return 0 if all(r.error is None for r in harness.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
