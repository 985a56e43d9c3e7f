"""The redis scenario (issue 11's database rows): ours on SQLite, on PostgreSQL + Redis, and two workers on
PostgreSQL + Redis, up a ladder of offered rates."""

from __future__ import annotations

import time
from pathlib import Path

from ..figures import kept_up
from ..harness import Harness
from ..params import Suite
from ..postgres_server import SETTINGS, PostgresServer, postgres_started
from ..redis_server import RedisServer, TreeMetrics, redis_command, redis_started
from ..runs import Run
from ..servers import SCALE_CONFIGS, RunningServer, ScaleConfig


def redis_scenario(harness: Harness, suite: Suite) -> None:
    """Ours on SQLite, on PostgreSQL + Redis, and two workers on PostgreSQL + Redis, up a ladder of rates.

    Every step starts each configuration fresh: a new PostgreSQL database, an emptied Redis (FLUSHALL),
    a new SQLite file. A configuration leaves the ladder at its first step that is not clean or falls
    short of the offered rate.
    """
    print(
        f"redis: 1 room of {suite.scale_members:,}, {suite.scale_senders} senders, offered"
        f" {', '.join(f'{r:,}' for r in suite.scale_per_s)} deliveries/s, {suite.scale_duration_s:g} s each"
    )
    try:
        with (
            postgres_started(harness.tag) as postgres,
            redis_started(harness.tag) as redis,
            TreeMetrics() as metrics,
        ):
            harness.extra["redis_command"] = [Path(redis.command[0]).name, *redis.command[1:]]
            harness.extra["redis_version"] = redis.version
            harness.extra["redis_idle_cpu"] = redis.idle_cpu
            harness.extra["postgres_version"] = postgres.version
            harness.extra["postgres_settings"] = list(SETTINGS)
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
                    if not kept_up(step(harness, suite, config, per_s, redis, postgres, metrics)):
                        active.remove(config)
                if not active:
                    return
    except (RuntimeError, OSError) as exc:  # no redis-server or PostgreSQL, or one that would not start or went away
        harness.extra["redis_error"] = str(exc)
        print(f"  not run: {exc}")


def step(
    harness: Harness,
    suite: Suite,
    config: ScaleConfig,
    per_s: int,
    redis: RedisServer,
    postgres: PostgresServer,
    metrics: TreeMetrics,
) -> Run:
    """One configuration at one offered rate, on a fresh database and an emptied Redis."""
    redis_command(redis.port, "FLUSHALL")
    database, dsn = postgres.create_database() if config.postgres else ("", "")
    load = suite.scale(per_s, metrics.url)

    def watch(server: RunningServer) -> list[str]:
        metrics.server_pid = server.proc.pid
        metrics.redis_port = redis.port if config.redis else None
        if config.postgres:
            metrics.postgres, metrics.database = postgres, database
        return load.options

    try:
        run = harness.run(
            config.kind(redis.url, dsn),
            load,
            watch,
            server_pid_option=False,
            redis_pid=redis.proc.pid if config.redis else None,
            postgres_pid=postgres.pid if config.postgres else None,
            scan_log=True,
        )
    finally:
        metrics.server_pid = metrics.redis_port = None
        metrics.postgres = metrics.database = None
        if database:
            postgres.drop_database(database)
    run.offered_per_s = per_s
    return run
