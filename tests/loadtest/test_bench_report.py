"""The figures bench/run.py reports (the redis ladder, the steady-rate target) are picked by rules: test the rules."""

from __future__ import annotations

import dataclasses
import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from suite.figures import common_rate, zero_loss_max
from suite.params import Suite
from suite.report.fanout import floor_ratios
from suite.report.merge import merge_partial
from suite.report.model import Report
from suite.report.scaling import scale_section
from suite.runs import Run
from suite.servers import SERVERS
from suite.targets import hold_verdict, judge
from suite.wording import generator_vs_server, hold_cap, workers_vs_one


@pytest.fixture(scope="module")
def bench() -> SimpleNamespace:
    """The harness's names these tests use, from the modules of bench/suite/ where they now live."""
    return SimpleNamespace(
        Run=Run,
        Suite=Suite,
        Report=Report,
        SERVERS=SERVERS,
        zero_loss_max=zero_loss_max,
        common_rate=common_rate,
        merge_partial=merge_partial,
        generator_vs_server=generator_vs_server,
        workers_vs_one=workers_vs_one,
        hold_verdict=hold_verdict,
        hold_cap=hold_cap,
        scale_section=scale_section,
        floor_ratios=floor_ratios,
        issue9_targets=lambda report: [row.row() for row in judge(report, issue=9)],
    )


def step(bench: SimpleNamespace, offered: int, per_second: int, *, lost: int = 0, connected: int = 10) -> Any:
    """A ladder step: ``per_second`` deliveries in each second of a 5 s run."""
    expected = per_second * 5
    report = {
        "config": {"duration": 5},
        "connect": {"attempted": 10, "connected": connected},
        "deliveries": {"expected": expected, "received": expected - lost, "lost": lost, "duplicated": 0},
        "errors": {"by_kind": {}},
        "timeline": [{"t": t, "deliveries": per_second} for t in range(1, 6)],
    }
    return bench.Run("ours", f"scale-{offered}", [], [], report=report, offered_per_s=offered)


def test_the_zero_loss_maximum_skips_steps_that_lost_or_dropped_sockets(bench):
    steps = [
        step(bench, 10_000, 10_000),
        step(bench, 20_000, 19_000),
        step(bench, 40_000, 39_000, lost=1),  # faster, but not clean
        step(bench, 60_000, 45_000, connected=9),  # a socket never connected
    ]
    best = bench.zero_loss_max(steps)
    assert best.offered_per_s == 20_000
    assert bench.zero_loss_max([steps[2]]) is None


def test_the_common_rate_is_the_highest_every_configuration_kept_up_with(bench):
    ladders = {
        "single": [step(bench, 10_000, 10_000), step(bench, 20_000, 20_000), step(bench, 40_000, 30_000)],
        "redis": [step(bench, 10_000, 10_000), step(bench, 20_000, 19_500)],
    }
    assert bench.common_rate(ladders) == 20_000  # 30,000 of 40,000 offered is falling behind
    ladders["redis"][1] = step(bench, 20_000, 15_000)
    assert bench.common_rate(ladders) == 10_000


def test_a_partial_run_rewrites_its_sections_and_keeps_the_others(bench):
    old = "# Results\n\nmachine\n\n## 1. Burst\nold burst\n## 6. Scaling out\nold scaling\n"
    new = "# Results\n\nmachine\n\n## 1. Burst\nnot run\n## 6. Scaling out\nnew scaling\n"
    merged = bench.merge_partial(old, new, ["6. Scaling out"], "Partial run: redis on today")
    assert "old burst" in merged
    assert "new scaling" in merged
    assert "old scaling" not in merged
    assert merged.count("Partial run: redis on ") == 1
    again = bench.merge_partial(merged, new, ["6. Scaling out"], "Partial run: redis on tomorrow")
    assert again.count("Partial run: redis on ") == 1  # the earlier note of the same scenarios is replaced


def test_the_generator_is_worded_against_the_server_from_the_figures(bench):
    more = bench.generator_vs_server({"1 process": (20.0, 5.0), "2 workers": (18.0, 8.0)})
    assert more.startswith("spends more CPU per delivery than the server in every configuration")
    assert "1 process: 20.0 µs against 5.0 µs" in more
    less = bench.generator_vs_server({"1 process": (3.0, 5.0), "2 workers": (4.0, 8.0)})
    assert less.startswith("spends less CPU per delivery than the server in every configuration")
    level = bench.generator_vs_server({"1 process": (5.2, 5.0)})
    assert level.startswith("spends about as much CPU per delivery as the server in the one configuration")
    mixed = bench.generator_vs_server({"1 process": (20.0, 5.0), "2 workers": (4.0, 8.0), "none": (None, 3.0)})
    assert mixed.startswith(
        "spends more CPU per delivery than the server with 1 process; less CPU per delivery than the server"
        " with 2 workers"
    )
    assert "none" not in mixed  # not measured: not compared
    assert "no CPU per delivery to compare" in bench.generator_vs_server({})


def test_two_workers_are_worded_against_one_process_from_the_figures(bench):
    more = bench.workers_vs_one(100_000.0, 150_000.0, False, False, 200_000, 4)
    assert (
        more
        == "Two workers sustained 1.50x one process's highest zero-loss rate (150,000 against 100,000 deliveries/s)."
    )
    less = bench.workers_vs_one(100_000.0, 60_000.0, False, False, 200_000, 2)
    assert less.startswith("Two workers sustained less than one process (60,000 against 100,000 deliveries/s)")
    assert "on 2 cores" in less
    level = bench.workers_vs_one(100_000.0, 95_000.0, False, True, 200_000, 2)
    assert level.startswith("Two workers sustained about as much as one process")
    both_topped = bench.workers_vs_one(200_000.0, 200_000.0, True, True, 200_000, 2)
    assert "did not reach either's limit" in both_topped
    assert "200,000/s" in both_topped
    assert "cannot be compared" in bench.workers_vs_one(None, 50_000.0, False, False, 200_000, 2)


def test_the_50k_socket_verdict_comes_from_the_count_and_the_limit(bench):
    assert bench.hold_verdict(19_970, 20_000) == "cannot be shown here (20,000 open files per process at most)"
    assert bench.hold_verdict(50_000, 1_048_576) == "**met**"
    assert bench.hold_verdict(31_000, 1_048_576) == "**missed**"  # the machine allows it; the server fell short
    assert "no server process can hold the issue's 50,000" in bench.hold_cap(20_000)
    assert "enough for the issue's 50,000 sockets" in bench.hold_cap(1_048_576)


def scale_report(bench: SimpleNamespace, generator_us: float, workers_per_s: int) -> str:
    """The redis scenario's section for a ladder of two rates: the load generator spent
    ``generator_us`` per delivery everywhere, the servers 5 µs (8 over two workers); two workers
    sustained ``workers_per_s`` at the second rate, one process with Redis lost one there."""
    runs = []
    for key, server_us in (("single", 5.0), ("redis", 5.0), ("redis-2w", 8.0)):
        for offered in (10_000, 20_000):
            per_second = workers_per_s if key == "redis-2w" and offered == 20_000 else offered
            r = step(bench, offered, per_second, lost=1 if key == "redis" and offered == 20_000 else 0)
            r.server = key
            r.report["server"] = {"cpu_us_per_delivery": server_us}
            r.report["load_generator"] = {"cpu_us_per_delivery": generator_us}
            runs.append(r)
    suite = dataclasses.replace(bench.Suite(), scale_per_s=(10_000, 20_000))
    report = bench.Report(runs, suite, [], datetime.datetime(2026, 1, 1), (0.0, 0.0, 0.0), 60.0, only=("redis",))
    text: str = bench.scale_section(report)
    return text


def test_the_scaling_section_says_what_its_figures_say(bench):
    costly = scale_report(bench, 20.0, 20_000)
    assert "the load generator spends more CPU per delivery than the server in every configuration" in costly
    assert "1 process, no Redis: 20.0 µs against 5.0 µs" in costly
    assert "Two workers sustained 2.00x one process's highest zero-loss rate (20,000 against 10,000" in costly
    cheap = scale_report(bench, 2.0, 10_000)
    assert "the load generator spends less CPU per delivery than the server in every configuration" in cheap
    assert "Two workers sustained about as much as one process (10,000 against 10,000 deliveries/s)" in cheap
    assert "spends more CPU" not in cheap


def steady(bench: SimpleNamespace, server: str, us_per_delivery: float, lag_ms: float) -> Any:
    """A fixed-load run at 20,000 deliveries/s: its CPU per delivery and its sender lag p90."""
    report = {
        "server": {"cpu_us_per_delivery": us_per_delivery},
        "messages": {"send_lag_ms": {"p90": lag_ms}},
    }
    return bench.Run(server, "load-20k", [], [], report=report)


def test_the_steady_target_is_judged_against_the_floor_only_when_messages_arrived_on_time(bench):
    def verdict(ours_us: float, ours_lag: float) -> str:
        runs = [steady(bench, "ours", ours_us, ours_lag), steady(bench, "floor", 8.0, 3.0)]
        suite = bench.Suite(loads_per_s=(20_000,))
        servers = [bench.SERVERS["ours"], bench.SERVERS["floor"]]
        report = bench.Report(runs, suite, servers, None, (0.0, 0.0, 0.0), 0.0, ["loads"])
        line: str = bench.floor_ratios(report).splitlines()[-1]
        return line

    assert verdict(9.6, 3.0).endswith("ours / floor 1.20x (9.60 vs 8.00 µs); the target is at most 1.25x: **met**")
    assert verdict(10.4, 3.0).endswith("1.30x (10.40 vs 8.00 µs); the target is at most 1.25x: **missed**")
    # Late messages arrive together, and ours writes those with one send() per member: not the steady case.
    clumped = verdict(4.0, 400.0)
    assert "0.50x" in clumped
    assert clumped.endswith("not shown by this run (clumped)")


def storm(bench: SimpleNamespace, per_s: int, joined: int, **failed: int) -> Any:
    """A join-storm run of 1,000 sockets at ``per_s``: ``joined`` joined, the rest failed as labelled."""
    labels = {
        "unavailable": "join: error unavailable",
        "closed": "connect: closed: 1013",
        "timeouts": "join: TimeoutError",
    }
    report = {
        "connect": {"attempted": 1000, "connected": joined},
        "errors": {"by_kind": {labels[kind]: n for kind, n in failed.items()}},
    }
    return bench.Run("ours", f"joinstorm-{per_s}", [], [], report=report, offered_per_s=per_s)


def test_issue_9_targets_are_judged_from_the_steady_and_join_storm_figures(bench):
    def rows(ours_us: float, ours_lag: float, *storms: Any) -> list[list[str]]:
        runs = [steady(bench, "ours", ours_us, ours_lag), steady(bench, "floor", 8.0, 3.0), *storms]
        report = bench.Report(runs, bench.Suite(loads_per_s=(20_000,)), [], None, (0.0, 0.0, 0.0), 0.0, ["loads"])
        result: list[list[str]] = bench.issue9_targets(report)
        return result

    met = rows(9.6, 3.0, storm(bench, 500, 1000), storm(bench, 2000, 990, timeouts=10))
    assert [row[2] for row in met] == ["**met**"] * 3
    assert met[0][1] == "9.60 µs vs 8.00 µs: 1.20x"
    assert met[2][1] == "990 of 1,000 joined; 0 unavailable, 0 closed 1013, 10 timed out"  # timeouts only: met
    missed = rows(10.4, 3.0, storm(bench, 500, 999, timeouts=1), storm(bench, 2000, 997, unavailable=2, closed=1))
    assert [row[2] for row in missed] == ["**missed**"] * 3
    assert "2 unavailable, 1 closed 1013" in missed[2][1]
    assert rows(4.0, 400.0)[0][2] == "not shown by this run"  # clumped: not the steady case
