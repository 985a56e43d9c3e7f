"""The figures bench/run.py reports (the redis ladder, the steady-rate target) are picked by rules: test the rules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def step(bench: ModuleType, offered: int, per_second: int, *, lost: int = 0, connected: int = 10) -> Any:
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


def steady(bench: ModuleType, server: str, us_per_delivery: float, lag_ms: float) -> Any:
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
        line: str = report.floor_ratios().splitlines()[-1]
        return line

    assert verdict(9.6, 3.0).endswith("ours / floor 1.20x (9.60 vs 8.00 µs); the target is at most 1.25x: **met**")
    assert verdict(10.4, 3.0).endswith("1.30x (10.40 vs 8.00 µs); the target is at most 1.25x: **missed**")
    # Late messages arrive together, and ours writes those with one send() per member: not the steady case.
    clumped = verdict(4.0, 400.0)
    assert "0.50x" in clumped
    assert clumped.endswith("not shown by this run (clumped)")
