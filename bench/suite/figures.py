"""The figures the report states and judges, computed from the runs: one function per figure.

Per run: whether a ladder step was clean and kept up, a join storm's refusals. Per report (over
the repeated runs of a scenario, as medians): the burst's and the steady loads' CPU per delivery,
bytes per idle socket, sockets held, the slow consumer's memory and latency.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .params import load_key
from .runs import Run
from .servers import ALL_SCALE_CONFIGS

if TYPE_CHECKING:
    from .report.model import Report

# A server sustaining less than this share of an offered load is reported as saturated by it.
SATURATED = 0.95


def median(values: Iterable[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


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
    for label, n in kinds.items() if isinstance(kinds, dict) else []:
        kind = next((k for k, marks in REFUSAL_KINDS if any(m in label for m in marks)), "other")
        counts[kind] += int(n)
    return counts


def welcomed(run: Run) -> int:
    """Sockets that got ``welcome``: those that joined, and those whose join then failed."""
    kinds = run.get("errors", "by_kind")
    if not isinstance(kinds, dict):
        return run.sockets_held
    return run.sockets_held + sum(int(n) for label, n in kinds.items() if label.startswith("join: "))


def burst_figures(report: Report) -> dict[str, tuple[float | None, float | None]]:
    """server -> (CPU us/delivery over the send+drain window, over the whole run)."""
    figures = {}
    for kind in report.servers:
        runs = report.of("burst", kind.key)
        if runs:
            figures[kind.key] = (
                median(r.window_us_per_delivery for r in runs),
                median(r.cpu_us_per_delivery for r in runs),
            )
    return figures


@dataclasses.dataclass(frozen=True)
class Steady:
    """Ours against the floor at one fixed load: CPU µs per delivery (send + drain, medians), the load
    generator's worst sender lag p90 over the two (ms), and the time between two messages (ms)."""

    ours: float | None
    floor: float | None
    lag_ms: float
    spacing_ms: float

    @property
    def ratio(self) -> float | None:
        return self.ours / self.floor if self.ours and self.floor else None

    @property
    def clumped(self) -> bool:
        """Messages the load generator wrote late arrive in clumps, which ours writes with one send() per
        member and the floor with one per message: that is not the steady case. A tenth of them late by
        more than the time between two messages, and it is not."""
        return self.lag_ms > self.spacing_ms


def steady_against_floor(report: Report, per_s: int) -> Steady:
    """Ours and the floor at the fixed load ``per_s``."""
    ours, floor = (
        median(r.window_us_per_delivery for r in report.of(load_key(per_s), key)) for key in ("ours", "floor")
    )
    lag = max(
        median(r.get("messages", "send_lag_ms", "p90") for r in report.of(load_key(per_s), key)) or 0.0
        for key in ("ours", "floor")
    )
    return Steady(ours, floor, lag, 1000 * report.suite.room_members / per_s)


def idle_figures(report: Report) -> dict[str, float | None]:
    """server -> bytes per idle socket (the load tester's figure)."""
    return {
        kind.key: median(r.get("idle", "bytes_per_socket") for r in report.of(report.suite.idle_key, kind.key))
        for kind in report.servers
        if report.of(report.suite.idle_key, kind.key)
    }


def hold_figures(report: Report) -> dict[str, int]:
    """server -> the most sockets fully connected in any idle run."""
    most = {}
    for kind in report.servers:
        steps = hold_steps(report, kind.key)
        if steps:
            most[kind.key] = max((r.sockets_held for r in steps if r.fully_connected), default=0)
    return most


def hold_steps(report: Report, server: str) -> list[Run]:
    return [
        r for r in report.runs if r.server == server and (r.load == report.suite.idle_key or r.load.startswith("hold-"))
    ]


def slow_figures(report: Report) -> tuple[float, float | None, int, int] | None:
    """(peak RSS with a stalled reader minus without, MB; others' p99 change; gaps; deliveries lost)."""
    calm, stalled = report.of("slow-0", "ours"), report.of("slow-1", "ours")
    if not calm or not stalled or calm[0].report is None or stalled[0].report is None:
        return None
    a, b = calm[0], stalled[0]
    p99_a, p99_b = a.get("latency_ms", "p99"), b.get("latency_ms", "p99")
    change = (p99_b - p99_a) / p99_a if p99_a and p99_b is not None else None
    growth = (b.server_rss_peak - a.server_rss_peak) / 2**20
    return growth, change, int(b.get("deliveries", "gaps") or 0), int(b.get("deliveries", "lost") or 0)


def scale_steps(report: Report) -> dict[str, list[Run]]:
    """The redis scenario's steps, by configuration (issue 11's, or those of a suite saved before it), in
    the order they ran."""
    steps: dict[str, list[Run]] = {}
    for r in report.runs:
        if r.load.startswith("scale-") and r.server in ALL_SCALE_CONFIGS:
            steps.setdefault(r.server, []).append(r)
    return {key: steps[key] for key in ALL_SCALE_CONFIGS if key in steps}


def per_message(run: Run, sample: str) -> float | None:
    """A sample of the harness's /metrics page (see :class:`TreeMetrics`), its change over the send +
    drain window per message sent."""
    value = run.get("server", "metrics_delta", sample)
    sent = run.get("messages", "sent")
    return float(value) / int(sent) if value is not None and sent else None


def round_trips(run: Run) -> float | None:
    """Database round trips per message: every statement the server ran in the step's PostgreSQL
    database over the send + drain window (``pg_stat_statements``), per message sent."""
    return per_message(run, "process_postgres_statements_total")


@dataclasses.dataclass(frozen=True)
class DatabaseCost:
    """Ours on PostgreSQL + Redis against ours on SQLite, one process each, at every offered rate both
    kept up with: server CPU µs per delivery (send + drain) of each, by rate."""

    pairs: dict[int, tuple[float, float]]  # offered deliveries/s -> (SQLite's, PostgreSQL + Redis's)

    @property
    def ratios(self) -> list[float]:
        return [pg / sqlite for sqlite, pg in self.pairs.values() if sqlite]

    @property
    def ratio(self) -> float | None:
        """The median of the ratios: one ladder step is one run, and one run's CPU per delivery is noisy."""
        return median(self.ratios)


def database_cost(steps_by_config: dict[str, list[Run]], base: str = "sqlite", other: str = "pg-redis") -> DatabaseCost:
    """``other``'s server CPU per delivery against ``base``'s at each offered rate both kept up with."""

    def kept(key: str) -> dict[int, float]:
        return {
            r.offered_per_s: r.window_us_per_delivery
            for r in steps_by_config.get(key, [])
            if r.offered_per_s is not None and r.window_us_per_delivery is not None and kept_up(r)
        }

    ours, theirs = kept(base), kept(other)
    return DatabaseCost({rate: (ours[rate], theirs[rate]) for rate in sorted(ours.keys() & theirs.keys())})


def nofile_hard(report: Report) -> int:
    """The per-process open-file limit (hard RLIMIT_NOFILE) of the machine the suite ran on.

    Recorded when the suite ran; a suite saved before it was recorded is judged against the limit
    of the machine that renders it.
    """
    recorded = report.extra.get("nofile_hard")
    return int(recorded) if recorded is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[1]
