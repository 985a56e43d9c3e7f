"""Each target in bench/suite/targets.py is judged from the figures: met on one side of its threshold,
missed on the other, and no row (or "not measured") without a figure."""

from __future__ import annotations

from typing import Any

from suite.params import Suite
from suite.report.model import Report
from suite.runs import Run
from suite.servers import SERVERS
from suite.targets import (
    MET,
    MISSED,
    BurstCpuRatio,
    CleanAndQuick,
    IdleMemory,
    SlowConsumer,
    SocketsHeld,
    SteadyAgainstFloor,
    judge,
)


def report_of(*runs: Run, **extra: Any) -> Report:
    servers = [SERVERS[key] for key in ("ours", "naive", "websockets", "floor")]
    return Report(list(runs), Suite(), servers, None, (0.0, 0.0, 0.0), 0.0, extra=extra)  # type: ignore[arg-type]


def burst(server: str, us_per_delivery: float) -> Run:
    return Run(server, "burst", [], [], report={"server": {"cpu_us_per_delivery": us_per_delivery}})


def test_the_burst_target_is_met_at_its_ratio_and_missed_below_it():
    target = BurstCpuRatio("naive", 10.0)
    met = target.judge(report_of(burst("ours", 2.0), burst("naive", 20.0)))
    assert [j.verdict for j in met] == [MET]
    assert met[0].figure == "2.00 µs vs 20.00 µs: 10.0x less (wanted 10x)"
    assert target.judge(report_of(burst("ours", 2.0), burst("naive", 19.8)))[0].verdict == MISSED


def test_the_burst_target_has_no_row_without_either_server():
    target = BurstCpuRatio("websockets", 5.0)
    assert target.judge(report_of(burst("ours", 2.0))) == []
    assert target.judge(report_of(burst("websockets", 9.0))) == []


def load_40k(p99_ms: float, lost: int = 0) -> Run:
    report = {"deliveries": {"received": 600_000 - lost, "lost": lost}, "latency_ms": {"p99": p99_ms}}
    return Run("ours", "load-40k", [], [], report=report)


def test_the_40k_target_needs_a_clean_run_within_its_p99():
    target = CleanAndQuick()
    assert target.judge(report_of(load_40k(100.0)))[0].verdict == MET
    assert target.judge(report_of(load_40k(100.1)))[0].verdict == MISSED
    assert target.judge(report_of(load_40k(20.0, lost=1)))[0].verdict == MISSED
    assert target.judge(report_of()) == []  # the load did not run: no row


def idle(bytes_per_socket: float) -> Run:
    return Run("ours", "idle-10k", [], [], report={"idle": {"bytes_per_socket": bytes_per_socket}})


def test_the_idle_memory_target_is_met_up_to_20_kb_per_socket():
    target = IdleMemory()
    met = target.judge(report_of(idle(20 * 1024)))
    assert met[0].target == "at most 20 KB of server memory per idle socket"
    assert met[0].verdict == MET
    assert target.judge(report_of(idle(20 * 1024 + 1)))[0].verdict == MISSED


def held(sockets: int) -> Run:
    return Run("ours", "idle-10k", [], [], report={"connect": {"attempted": sockets, "connected": sockets}})


def test_the_sockets_target_is_judged_against_the_recorded_open_file_limit():
    target = SocketsHeld()
    assert target.judge(report_of(held(50_000), nofile_hard=1_048_576))[0].verdict == MET
    assert target.judge(report_of(held(49_999), nofile_hard=1_048_576))[0].verdict == MISSED
    capped = target.judge(report_of(held(19_970), nofile_hard=20_000))[0]
    assert capped.verdict == "cannot be shown here (20,000 open files per process at most)"
    assert "this machine allows 20,000 open files per process" in capped.figure


def slow(stalled: int, rss_mb: float, p99_ms: float, gaps: int = 0, lost: int = 0) -> Run:
    report = {"latency_ms": {"p99": p99_ms}, "deliveries": {"gaps": gaps, "lost": lost}}
    return Run("ours", f"slow-{stalled}", [], [], report=report, server_rss_peak=int(rss_mb * 2**20))


def test_the_slow_consumer_target_needs_flat_memory_steady_p99_and_a_gap_notice():
    target = SlowConsumer()
    assert target.judge(report_of(slow(0, 100, 50.0), slow(1, 120, 59.0, gaps=1)))[0].verdict == MET
    assert target.judge(report_of(slow(0, 100, 50.0), slow(1, 121, 50.0, gaps=1)))[0].verdict == MISSED
    assert target.judge(report_of(slow(0, 100, 50.0), slow(1, 100, 60.0, gaps=1)))[0].verdict == MISSED
    assert target.judge(report_of(slow(0, 100, 50.0), slow(1, 100, 50.0)))[0].verdict == MISSED  # no gap notice
    assert target.judge(report_of(slow(0, 100, 50.0), slow(1, 100, 50.0, gaps=1, lost=1)))[0].verdict == MISSED


def test_the_slow_consumer_target_says_not_measured_without_both_runs():
    (row,) = SlowConsumer().judge(report_of(slow(0, 100, 50.0)))
    assert row.row() == ["slow consumer: memory flat, others' p99 moves < 20 %, gap notice", "not measured", "—"]


def steady(server: str, us_per_delivery: float) -> Run:
    report = {"server": {"cpu_us_per_delivery": us_per_delivery}, "messages": {"send_lag_ms": {"p90": 3.0}}}
    return Run(server, "load-20k", [], [], report=report)


def test_the_steady_target_is_met_at_exactly_its_ratio():
    target = SteadyAgainstFloor()
    assert target.judge(report_of(steady("ours", 10.0), steady("floor", 8.0)))[0].verdict == MET
    assert target.judge(report_of(steady("ours", 10.01), steady("floor", 8.0)))[0].verdict == MISSED
    assert target.judge(report_of(steady("ours", 10.0))) == []  # no floor: no row


def test_the_table_lists_only_the_targets_with_figures_and_always_the_slow_consumer():
    # The idle run is the hold ladder's first rung too: with it, the sockets target has a figure.
    rows = judge(report_of(burst("ours", 2.0), burst("naive", 30.0), idle(10_000), nofile_hard=20_000))
    assert [row.target for row in rows] == [
        "burst: CPU per delivery at most 1/10 of naive Tornado's",
        "at most 20 KB of server memory per idle socket",
        "one process holds 50,000 sockets",
        "slow consumer: memory flat, others' p99 moves < 20 %, gap notice",
    ]
    assert [row.verdict for row in rows] == [
        MET,
        MET,
        "cannot be shown here (20,000 open files per process at most)",
        "—",
    ]
    assert judge(report_of(burst("ours", 2.0)), issue=9) == []
