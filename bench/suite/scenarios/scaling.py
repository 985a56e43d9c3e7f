"""The redis scenario: ours alone, with Redis, and two workers with Redis, up a ladder of offered rates."""

from __future__ import annotations

import time
from pathlib import Path

from ..figures import kept_up
from ..harness import Harness
from ..params import Suite
from ..redis_server import TreeMetrics, redis_command, redis_started
from ..runs import Load
from ..servers import SCALE_CONFIGS, RunningServer, ScaleConfig


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
