"""The harness: one run at a time, each on a fresh server, with the load tester and the sampler."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .proc import cpu_seconds, machine_busy_cores, open_fds, tree_cpu_seconds, tree_status_bytes
from .runs import Load, Run
from .sampler import Sampler
from .servers import OUT, ROOT, RunningServer, ServerKind, started, stop
from .text import fmt

# Before each run, wait (up to --quiet-wait seconds, and that times this many for the whole suite)
# until the machine's CPUs are busy less than this many cores in all, sampled over QUIET_SAMPLE_S.
QUIET_CORES = 0.25
QUIET_SAMPLE_S = 1.0
QUIET_BUDGET_RUNS = 10
# Server log lines at these levels are listed beside a redis-scenario run's figures (at most this many kinds).
LOG_LEVELS_NOTED = ("WARNING", "ERROR", "CRITICAL")
LOG_KINDS_NOTED = 3


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
        postgres_pid: int | None = None,
        scan_log: bool = False,
    ) -> Run:
        """Start a fresh ``kind``, drive it with ``load``, stop it; the figures go in the returned Run.

        ``adjust`` may replace the load tester's options once the server runs. Without
        ``server_pid_option`` the load tester gets no ``--server-pid`` (its options then name where it
        reads the server's figures). ``redis_pid``: a redis-server whose CPU is read too; ``postgres_pid``: a
        PostgreSQL postmaster whose CPU is read too, with every process below it. ``scan_log``:
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
                self._drive(run, server, load, report_path, redis_pid, postgres_pid)
                run.server_exit = stop(server.proc)
            if scan_log:
                run.log_notes = log_notes(server.log_path.read_text(errors="replace"))
        except (RuntimeError, OSError) as exc:  # a server that would not start, or vanished from /proc
            run = Run(kind.key, load.key, [], [], error=str(exc), waited_s=waited)
        self.runs.append(run)
        print(summary_line(run), flush=True)
        return run

    def _drive(
        self,
        run: Run,
        server: RunningServer,
        load: Load,
        report_path: Path,
        redis_pid: int | None = None,
        postgres_pid: int | None = None,
    ) -> None:
        pid = server.proc.pid
        run.server_fds_before = open_fds(pid)
        run.server_rss_before = tree_status_bytes(pid, "VmRSS")
        cpu_before = tree_cpu_seconds(pid)
        redis_before = cpu_seconds(redis_pid) if redis_pid is not None else 0.0
        postgres_before = tree_cpu_seconds(postgres_pid) if postgres_pid is not None else 0.0
        # No other child of ours is reaped while the load tester runs (servers are reaped when stopped),
        # so the difference in children's usage is the load tester's, its own children included.
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at = time.monotonic()
        generator = subprocess.Popen(run.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = b""
        with Sampler(pid, generator.pid, redis_pid, postgres_pid) as sampler:
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
        if postgres_pid is not None:
            run.postgres_cpu_s = tree_cpu_seconds(postgres_pid) - postgres_before
            run.postgres_busiest = sampler.busiest(lambda s: s.postgres_cpu)
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
    if run.postgres_busiest:
        busiest += f", postgres {run.postgres_busiest:.2f}"
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
