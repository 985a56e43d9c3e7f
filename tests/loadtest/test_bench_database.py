"""Issue 11's bench rows: the redis scenario's three configurations (one process on SQLite, one on
PostgreSQL + Redis, two workers on PostgreSQL + Redis), their section, and their two targets, each judged
from the figures: met on one side of its threshold, missed on the other, no row without a figure."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

from suite.figures import database_cost, round_trips, scale_steps
from suite.params import Suite
from suite.report.model import Report
from suite.report.scaling import scale_section, server_command
from suite.runs import Run
from suite.servers import LEGACY_SCALE_CONFIGS, SCALE_CONFIGS
from suite.targets import MET, MISSED, NOT_SHOWN, DatabaseFanout, RoundTripsPerMessage, judge

RATES = (10_000, 20_000)
MEMBERS = 1000


def step(
    server: str,
    offered: int,
    us_per_delivery: float,
    *,
    statements: int | None = None,
    appends: int | None = None,
    lost: int = 0,
) -> Run:
    """A clean ladder step that kept up (every second at the offered rate, 5 s), unless ``lost``; a PostgreSQL
    configuration's step with ``statements`` and ``appends`` counted over its window."""
    expected = offered * 5
    sent = expected // MEMBERS
    delta: dict[str, Any] = {"process_postgres_cpu_seconds_total": sent * 200e-6}
    if statements is not None:
        delta["process_postgres_statements_total"] = statements
        delta["process_postgres_appends_total"] = appends if appends is not None else statements
    report = {
        "config": {"duration": 5},
        "connect": {"attempted": 10, "connected": 10},
        "deliveries": {"expected": expected, "received": expected - lost, "lost": lost, "duplicated": 0},
        "messages": {"sent": sent},
        "errors": {"by_kind": {}},
        "server": {"cpu_us_per_delivery": us_per_delivery, "metrics_delta": delta},
        "timeline": [{"t": t, "deliveries": offered} for t in range(1, 6)],
    }
    return Run(server, f"scale-{offered // 1000}k", [], [], report=report, offered_per_s=offered)


def report_of(*runs: Run, **extra: Any) -> Report:
    suite = dataclasses.replace(Suite(), scale_per_s=RATES)
    started = datetime.datetime(2026, 12, 1, 12, 0)
    return Report(list(runs), suite, [], started, (0.0, 0.0, 0.0), 60.0, only=("redis",), extra=extra)


def ladder(sqlite_us: tuple[float, float], pg_us: tuple[float, float], trips: tuple[int, int] = (40, 70)) -> Report:
    """The three configurations at 10,000 and 20,000 deliveries/s (50 and 100 messages sent);
    ``trips``: the statements each PostgreSQL configuration ran at each rate."""
    runs = []
    for i, offered in enumerate(RATES):
        runs.append(step("sqlite", offered, sqlite_us[i]))
        runs.append(step("pg-redis", offered, pg_us[i], statements=trips[i], appends=trips[i] - 2))
        runs.append(step("pg-redis-2w", offered, pg_us[i] * 1.5, statements=trips[i] + 5))
    return report_of(*runs, postgres_version="15.14", redis_version="7.0.15", redis_idle_cpu=0.002)


def test_issue_11s_three_configurations_are_run_and_the_old_ones_kept_for_rendering():
    assert [c.label for c in SCALE_CONFIGS.values()] == [
        "1 process on SQLite",
        "1 process on PostgreSQL + Redis",
        "2 workers on PostgreSQL + Redis",
    ]
    sqlite, pg, two = (
        c.argv("redis://127.0.0.1:6379/0", "postgresql://pg/db")(8001, Path("/s")) for c in SCALE_CONFIGS.values()
    )
    assert sqlite[sqlite.index("--db") + 1] == "/s/chat.sqlite3"
    assert "--redis" not in sqlite
    assert pg[pg.index("--db") + 1] == "postgresql://pg/db"
    assert "--workers" not in pg
    assert two[-4:] == ["--redis", "redis://127.0.0.1:6379/0", "--workers", "2"]
    assert all(c.legacy for c in LEGACY_SCALE_CONFIGS.values())
    assert set(SCALE_CONFIGS).isdisjoint(LEGACY_SCALE_CONFIGS)  # an old suite's runs keep their own labels


def test_the_fanout_target_is_met_within_its_tolerance_of_sqlite_and_missed_beyond():
    target = DatabaseFanout()
    # Ratios 1.10 and 1.30: their median is 1.20, exactly the tolerance.
    (met,) = target.judge(ladder((10.0, 5.0), (11.0, 6.5)))
    assert met.verdict == MET
    assert met.figure == "median 1.20x over the 2 offered rate(s) both kept up with (1.10x-1.30x)"
    assert met.target.startswith("(11) fan-out cost per delivery does not grow with the database")
    (missed,) = target.judge(ladder((10.0, 5.0), (11.0, 6.6)))  # 1.32x: median 1.21x
    assert missed.verdict == MISSED
    # Cheaper on PostgreSQL is met too: the target is that it does not grow.
    assert target.judge(ladder((10.0, 5.0), (9.0, 4.0)))[0].verdict == MET


def test_the_fanout_target_compares_only_rates_both_kept_up_with_and_has_no_row_without_them():
    runs = ladder((10.0, 5.0), (11.0, 6.5)).runs
    # SQLite lost a delivery at 20,000/s: only 10,000/s compares (1.10x).
    lossy = [
        step("sqlite", 20_000, 5.0, lost=1) if r.server == "sqlite" and r.offered_per_s == 20_000 else r for r in runs
    ]
    cost = database_cost(scale_steps(report_of(*lossy)))
    assert list(cost.pairs) == [10_000]
    assert DatabaseFanout().judge(report_of(*lossy))[0].figure.startswith("median 1.10x over the 1 offered rate(s)")
    assert DatabaseFanout().judge(report_of(*[r for r in runs if r.server != "pg-redis"])) == []
    assert DatabaseFanout().judge(report_of()) == []


def test_round_trips_per_message_are_judged_at_each_postgresql_configurations_zero_loss_maximum():
    target = RoundTripsPerMessage()
    # At 20,000/s (100 messages): 70 statements, 68 of them chat_append, for one process; 75 for two workers.
    rows = target.judge(ladder((10.0, 5.0), (10.0, 5.0)))
    assert [(r.target, r.verdict) for r in rows] == [
        ("(11) 1 process on PostgreSQL + Redis: database round trips per message < 1", MET),
        ("(11) 2 workers on PostgreSQL + Redis: database round trips per message < 1", MET),
    ]
    assert rows[0].figure == "0.70 at 20,000 deliveries/s, its highest zero-loss rate (0.68 batches per message)"
    # One round trip per message (every message its own batch) is not fewer than one.
    (one, _two) = target.judge(ladder((10.0, 5.0), (10.0, 5.0), trips=(50, 100)))
    assert one.verdict == MISSED
    assert one.figure.startswith("1.00 at 20,000")


def test_round_trips_need_a_clean_step_and_a_postgresql_count():
    target = RoundTripsPerMessage()
    lossy = report_of(step("pg-redis", 10_000, 5.0, statements=10, lost=3))
    (row,) = target.judge(lossy)
    assert (row.figure, row.verdict) == ("no step without loss to read it at", NOT_SHOWN)
    assert target.judge(report_of(step("sqlite", 10_000, 5.0))) == []  # SQLite: no round trips to judge
    assert round_trips(step("pg-redis", 10_000, 5.0)) is None  # not counted: no figure


def test_the_targets_table_ends_with_issue_11s_rows():
    rows = judge(ladder((10.0, 5.0), (10.5, 5.5)), issue=11)
    assert [r.verdict for r in rows] == [MET, MET, MET]
    assert judge(report_of(), issue=11) == []


def test_the_section_shows_the_database_figures_and_says_how_postgresql_ran():
    text = scale_section(ladder((10.0, 5.0), (11.0, 6.5)))
    assert "Ours 3 ways, driven by the same load tester: one process on SQLite" in text
    assert "PostgreSQL 15.14, a throwaway cluster" in text
    assert "`fsync`, `synchronous_commit` and `full_page_writes` on" in text
    assert "nothing persisted: Redis holds no durable data" in text
    summary = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| 1 ")
    }
    summary |= {
        line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| 2 ")
    }
    # configuration, server CPU, PostgreSQL CPU, Redis x3, zero-loss max, round trips there, ...
    assert summary["1 process on SQLite"][7] == "n/a (in process)"
    assert summary["1 process on PostgreSQL + Redis"][1] == "6.50"  # at 20,000/s, the common rate
    assert summary["1 process on PostgreSQL + Redis"][2] == "200.0"  # PostgreSQL CPU µs per message
    assert summary["1 process on PostgreSQL + Redis"][7] == "0.70"
    assert summary["2 workers on PostgreSQL + Redis"][7] == "0.75"
    assert (
        "server CPU per delivery at each offered rate both kept up with: 10,000/s 1.10x (11.00 vs 10.00 µs),"
        " 20,000/s 1.30x (6.50 vs 5.00 µs); median 1.20x" in text
    )
    assert "postgresql://postgres@127.0.0.1:PG/DB" in text
    assert "pg_ctl start -w -D TMP -o '-p PG -c listen_addresses=127.0.0.1 -c shared_preload_libraries" in text


def test_a_suite_saved_before_issue_11_renders_with_its_own_configurations():
    runs = []
    for key in LEGACY_SCALE_CONFIGS:
        r = step(key, 10_000, 5.0)
        r.server_command = [".venv/bin/python", "server.py", "--port", "4242", "--db", ":memory:"]
        runs.append(r)
    text = scale_section(report_of(*runs, redis_version="7.0.15"))
    assert "one process without Redis (history in SQLite `:memory:`)" in text
    assert "like the in-memory SQLite" in text
    assert "PostgreSQL" not in text.split("\n\n")[0]  # nothing about a cluster that did not run
    assert "n/a (in process)" not in text
    assert ".venv/bin/python server.py --port P --db :memory:" in text
    assert DatabaseFanout().judge(report_of(*runs)) == []


def test_the_server_commands_are_shown_as_they_ran_with_placeholders():
    ran = step("pg-redis", 10_000, 5.0)
    ran.server_command = ["python", "server.py", "--port", "41234", "--db", "postgresql://postgres@127.0.0.1:5/bench_3"]
    ran.server_command += ["--redis", "redis://127.0.0.1:6/0"]
    assert server_command(SCALE_CONFIGS["pg-redis"], [ran]) == (
        "python server.py --port P --db postgresql://postgres@127.0.0.1:PG/DB --redis redis://127.0.0.1:R/0"
    )
    sqlite = step("sqlite", 10_000, 5.0)
    sqlite.server_command = ["python", "server.py", "--port", "1", "--db", "/tmp/bench-x/chat.sqlite3"]
    assert server_command(SCALE_CONFIGS["sqlite"], [sqlite]) == "python server.py --port P --db TMP/chat.sqlite3"
    # Not run yet: the command the configuration would run.
    assert "--workers 2" in server_command(SCALE_CONFIGS["pg-redis-2w"], [])
