"""The issues' targets: each one a threshold, the figure it is judged on, and its verdict from that figure.

A target that has no figure in a run (its scenario did not run, or a server it compares against
did not) gives no row, except the slow consumer's, which says "not measured". The words of a
verdict are never written by hand: :func:`verdict` turns a comparison of figure and threshold into
"met" or "missed", and the few other outcomes ("cannot be shown here", "not shown by this run")
come from figures too.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from .figures import (
    Steady,
    burst_figures,
    database_cost,
    hold_figures,
    idle_figures,
    median,
    nofile_hard,
    per_message,
    refusals,
    round_trips,
    scale_steps,
    slow_figures,
    steady_against_floor,
    zero_loss_max,
)
from .params import TARGET_SOCKETS, load_key
from .report.search import ENGINE_LABELS, engines, search_figures
from .servers import ALL_SCALE_CONFIGS, SCALE_CONFIGS, SERVERS
from .text import fmt, loss, table

if TYPE_CHECKING:
    from .report.model import Report

MET = "**met**"
MISSED = "**missed**"
# The steady target compares steady fan-out; a run whose messages arrived in clumps did not measure it.
NOT_SHOWN = "not shown by this run"


def verdict(ok: bool) -> str:
    return MET if ok else MISSED


@dataclasses.dataclass(frozen=True)
class Judged:
    """One row of the Targets table: what the issue asks, what this run measured, and the verdict."""

    target: str
    figure: str
    verdict: str

    def row(self) -> list[str]:
        return [self.target, self.figure, self.verdict]


class Target(Protocol):
    @property
    def issue(self) -> int:
        """The issue that set it; issue 9's rows are marked "(9)", issue 11's "(11)"."""
        ...

    def judge(self, report: Report) -> list[Judged]:
        """This target's rows from the report's figures: none when the run has no figure for it."""
        ...


@dataclasses.dataclass(frozen=True)
class BurstCpuRatio:
    """In the burst, ours spends at most 1/``at_least`` of ``baseline``'s CPU per delivery (send + drain)."""

    baseline: str
    at_least: float
    issue: int = 3

    def ratio(self, report: Report, i: int = 0) -> tuple[float | None, float | None, float | None] | None:
        """(ours, theirs, theirs / ours) for figure ``i`` (0: send + drain, 1: whole run); None when either
        server's burst did not run."""
        figures = burst_figures(report)
        if "ours" not in figures or self.baseline not in figures:
            return None
        ours, theirs = figures["ours"][i], figures[self.baseline][i]
        return ours, theirs, theirs / ours if ours and theirs else None

    def judge(self, report: Report) -> list[Judged]:
        measured = self.ratio(report)
        if measured is None or measured[0] is None:
            return []
        ours, theirs, ratio = measured
        return [
            Judged(
                f"burst: CPU per delivery at most 1/{self.at_least:g} of {SERVERS[self.baseline].label}'s",
                f"{fmt(ours, 2)} µs vs {fmt(theirs, 2)} µs: {fmt(ratio, 1)}x less (wanted {self.at_least:g}x)",
                verdict(ratio is not None and ratio >= self.at_least),
            )
        ]


@dataclasses.dataclass(frozen=True)
class CleanAndQuick:
    """At ``per_s`` deliveries/s offered: nothing lost, duplicated or reordered, and p99 at most ``p99_ms``."""

    per_s: int = 40_000
    p99_ms: float = 100.0
    issue: int = 3

    def judge(self, report: Report) -> list[Judged]:
        runs = report.of(load_key(self.per_s), "ours")
        if not runs:
            return []
        p99 = median(r.get("latency_ms", "p99") for r in runs)
        clean = all(
            r.error is None
            and r.received
            and not any(r.get("deliveries", k) for k in ("lost", "duplicated", "out_of_order"))
            for r in runs
        )
        return [
            Judged(
                f"{self.per_s:,} deliveries/s: no loss, duplicate or reorder; p99 ≤ {self.p99_ms:g} ms",
                f"lost / dup / ooo {loss(runs)}; p99 {fmt(p99, 1)} ms",
                verdict(clean and p99 is not None and p99 <= self.p99_ms),
            )
        ]


@dataclasses.dataclass(frozen=True)
class IdleMemory:
    """At most ``bytes_per_socket`` of server memory per idle socket (the load tester's figure)."""

    bytes_per_socket: int = 20 * 1024
    issue: int = 3

    def judge(self, report: Report) -> list[Judged]:
        figures = idle_figures(report)
        if "ours" not in figures:
            return []
        per_socket = figures["ours"]
        return [
            Judged(
                f"at most {self.bytes_per_socket / 1024:g} KB of server memory per idle socket",
                f"{fmt(per_socket, 1, 1 / 1024)} KB",
                verdict(per_socket is not None and per_socket <= self.bytes_per_socket),
            )
        ]


def hold_verdict(most: int, hard: int, target: int = TARGET_SOCKETS) -> str:
    """The verdict on "one process holds ``target`` sockets", given the per-process open-file limit."""
    if most >= target:
        return verdict(True)
    if hard < target:
        return f"cannot be shown here ({hard:,} open files per process at most)"
    return verdict(False)


@dataclasses.dataclass(frozen=True)
class SocketsHeld:
    """One process holds ``sockets`` sockets; a machine whose open-file limit is lower cannot show it."""

    sockets: int = TARGET_SOCKETS
    issue: int = 3

    def judge(self, report: Report) -> list[Judged]:
        most = hold_figures(report)
        if "ours" not in most:
            return []
        hard = nofile_hard(report)
        return [
            Judged(
                f"one process holds {self.sockets:,} sockets",
                f"{most['ours']:,} fully connected; this machine allows {hard:,} open files per process",
                hold_verdict(most["ours"], hard, self.sockets),
            )
        ]


@dataclasses.dataclass(frozen=True)
class SlowConsumer:
    """With one member that stops reading, against none: peak memory grows at most ``growth_mb``, the
    others' p99 moves less than ``p99_change``, and the stalled member gets a gap notice and loses nothing."""

    growth_mb: float = 20.0
    p99_change: float = 0.20
    issue: int = 3

    def judge(self, report: Report) -> list[Judged]:
        moves = f"others' p99 moves < {self.p99_change * 100:g} %"
        slow = slow_figures(report)
        if slow is None:
            return [Judged(f"slow consumer: memory flat, {moves}, gap notice", "not measured", "—")]
        growth_mb, p99_change, gaps, lost = slow
        ok = (
            growth_mb <= self.growth_mb
            and p99_change is not None
            and abs(p99_change) < self.p99_change
            and gaps >= 1
            and lost == 0
        )
        return [
            Judged(
                f"slow consumer: memory flat (within {self.growth_mb:g} MB), {moves}, gap notice and recovery",
                f"peak RSS {growth_mb:+.1f} MB against no stalled reader; others' p99 "
                f"{'n/a' if p99_change is None else f'{p99_change:+.0%}'}; {gaps} gap notice(s); {lost} lost",
                verdict(ok),
            )
        ]


@dataclasses.dataclass(frozen=True)
class SteadyAgainstFloor:
    """At a steady ``per_s`` deliveries/s, ours spends at most ``at_most`` times the floor's CPU per delivery."""

    per_s: int = 20_000
    at_most: float = 1.25
    issue: int = 9

    def verdict(self, steady: Steady) -> str:
        """Met or missed; not shown when the messages arrived in clumps (not the steady case)."""
        if steady.ratio is None:
            return NOT_SHOWN
        return NOT_SHOWN if steady.clumped else verdict(steady.ratio <= self.at_most)

    def judge(self, report: Report) -> list[Judged]:
        steady = steady_against_floor(report, self.per_s)
        if steady.ratio is None:
            return []
        clumps = f" (messages arrived in clumps: sender lag p90 {steady.lag_ms:,.0f} ms)" if steady.clumped else ""
        return [
            Judged(
                f"(9) steady {self.per_s:,} deliveries/s: CPU per delivery at most {self.at_most:g}x the floor's",
                f"{fmt(steady.ours, 2)} µs vs {fmt(steady.floor, 2)} µs: {steady.ratio:.2f}x{clumps}",
                self.verdict(steady),
            )
        ]


@dataclasses.dataclass(frozen=True)
class JoinStormJoins:
    """A join storm at each rate: at the lowest, every socket connects and joins; at the others, none is
    refused ``unavailable`` or closed 1013 (a timeout on a saturated machine is the machine's limit)."""

    issue: int = 9

    def judge(self, report: Report) -> list[Judged]:
        rows = []
        for run in (r for r in report.runs if r.load.startswith("joinstorm-")):
            refused = refusals(run)
            attempted = int(run.get("connect", "attempted") or 0)
            per_s = run.offered_per_s or 0
            if per_s <= min(report.suite.joinstorm.per_s):
                goal = "every socket connects and joins"
                met = run.report is not None and attempted > 0 and run.sockets_held == attempted
            else:
                goal = "none refused `unavailable` or closed 1013"
                met = run.report is not None and refused["unavailable"] + refused["1013"] == 0
            rows.append(
                Judged(
                    f"(9) join storm at {per_s:,} connections/s: {goal}",
                    f"{run.sockets_held:,} of {attempted:,} joined; {refused['unavailable']:,} unavailable,"
                    f" {refused['1013']:,} closed 1013, {refused['timeouts']:,} timed out",
                    verdict(met),
                )
            )
        return rows


@dataclasses.dataclass(frozen=True)
class DatabaseFanout:
    """Fan-out cost per delivery must not grow with the database: one process on PostgreSQL + Redis
    spends at most ``at_most`` times the server CPU per delivery of one process on SQLite, taken as the
    median of their ratios over the offered rates both kept up with (the redis scenario's ladder).

    Why 1.2: each ladder step is one run, and one run's CPU per delivery is noisy. In the full run of
    2026-11-30 three runs of ours at one fixed load spread by 4-38 % (20,000/s: 7.07, 9.87 and 7.37 µs),
    so the target takes the median over the ladder's rates, and allows 20 % on it: more than that median
    moves between runs, much less than a cost the database added per delivery would (a read or a write
    per member would double it). What the database adds per message (the batch's round trip, the Redis
    publish) is shared by the room's 1,000 members; in that run the Redis-streams history of the time
    came out at a median 1.15x of SQLite `:memory:` by this measure.
    """

    at_most: float = 1.2
    issue: int = 11

    def judge(self, report: Report) -> list[Judged]:
        cost = database_cost(scale_steps(report))
        if cost.ratio is None:
            return []
        sqlite, pg = (SCALE_CONFIGS[k].label for k in ("sqlite", "pg-redis"))
        spread = f"{min(cost.ratios):.2f}x-{max(cost.ratios):.2f}x" if len(cost.ratios) > 1 else "one rate"
        return [
            Judged(
                f"(11) fan-out cost per delivery does not grow with the database: {pg} at most"
                f" {self.at_most:g}x {sqlite}'s server CPU per delivery",
                f"median {cost.ratio:.2f}x over the {len(cost.pairs)} offered rate(s) both kept up with ({spread})",
                # Judged as shown (to 2 decimals): a verdict that disagreed with its figure would need explaining.
                verdict(round(cost.ratio, 2) <= self.at_most),
            )
        ]


@dataclasses.dataclass(frozen=True)
class RoundTripsPerMessage:
    """Fewer than ``below`` database round trips per message (batches), at each PostgreSQL configuration's
    highest zero-loss rate: at low rates every message arrives alone and is a batch of one."""

    below: float = 1.0
    issue: int = 11

    def judge(self, report: Report) -> list[Judged]:
        rows = []
        for key, steps in scale_steps(report).items():
            if not ALL_SCALE_CONFIGS[key].postgres:
                continue
            goal = f"(11) {ALL_SCALE_CONFIGS[key].label}: database round trips per message < {self.below:g}"
            best = zero_loss_max(steps)
            trips = round_trips(best) if best is not None else None
            if best is None or trips is None:
                rows.append(Judged(goal, "no step without loss to read it at", NOT_SHOWN))
                continue
            batches = per_message(best, "process_postgres_appends_total")
            rows.append(
                Judged(
                    goal,
                    f"{trips:.2f} at {fmt(best.sustained_per_s)} deliveries/s, its highest zero-loss rate"
                    f" ({fmt(batches, 2)} batches per message)",
                    verdict(trips < self.below),
                )
            )
        return rows


@dataclasses.dataclass(frozen=True)
class SearchReported:
    """Issue 13 asks for search latency over ``messages`` stored messages on both engines, p50 and p99 of a
    one-word query; it sets no threshold. Met when both engines were measured over that many messages and
    every answer they gave was right (a fast wrong answer measures nothing)."""

    messages: int = 1_000_000
    issue: int = 13

    def judge(self, report: Report) -> list[Judged]:
        if "search" not in report.only or not engines(report):
            return []
        figures = search_figures(report)
        shown = [
            f"{ENGINE_LABELS[key]} p50 {fmt(p50, 1)} ms, p99 {fmt(p99, 1)} ms over {messages:,}"
            + (f" ({wrong} of {queries} answers wrong)" if wrong else "")
            for key, (messages, queries, p50, p99, wrong) in figures.items()
        ]
        met = set(figures) == set(ENGINE_LABELS) and all(
            messages >= self.messages and not wrong for messages, _, _, _, wrong in figures.values()
        )
        return [
            Judged(
                f"(13) search latency over {self.messages:,} stored messages on both engines: p50 and p99 of a"
                " one-word query, every answer right",
                "; ".join(shown) or "not measured",
                verdict(met),
            )
        ]


BURST_TARGETS = (BurstCpuRatio("naive", 10.0), BurstCpuRatio("websockets", 5.0))
STEADY = SteadyAgainstFloor()
# The Targets table, in this order.
TARGETS: tuple[Target, ...] = (
    *BURST_TARGETS,
    CleanAndQuick(),
    IdleMemory(),
    SocketsHeld(),
    SlowConsumer(),
    STEADY,
    JoinStormJoins(),
    DatabaseFanout(),
    RoundTripsPerMessage(),
    SearchReported(),
)


def judge(report: Report, issue: int | None = None) -> list[Judged]:
    """Every target's rows (only ``issue``'s, when given), in the table's order."""
    return [row for target in TARGETS if issue in (None, target.issue) for row in target.judge(report)]


def targets_section(report: Report) -> str:
    return table(["target (issue)", "ours", "met?"], [row.row() for row in judge(report)])
