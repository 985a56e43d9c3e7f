"""The join storm: 50,000 sockets open and join 500 rooms over three workers and Redis, at each connect rate."""

from __future__ import annotations

from ..harness import Harness
from ..params import JoinStorm
from ..postgres_server import postgres_started
from ..redis_server import TreeMetrics, redis_command, redis_started
from ..runs import Load
from ..servers import RunningServer


def joinstorm_scenario(harness: Harness, storm: JoinStorm) -> None:
    """The join storm at each connect rate, each on a fresh server, a fresh PostgreSQL database (workers
    need one since issue 11) and an emptied Redis."""
    print(
        f"join storm: {storm.sockets:,} sockets into {storm.rooms} rooms over {storm.workers} workers + Redis,"
        f" at {', '.join(f'{r:,}' for r in storm.per_s)} connections/s"
    )
    try:
        with (
            postgres_started(f"{harness.tag}-joinstorm") as postgres,
            redis_started(f"{harness.tag}-joinstorm") as redis,
            TreeMetrics() as metrics,
        ):
            harness.extra["joinstorm_redis_version"] = redis.version
            harness.extra["joinstorm_postgres_version"] = postgres.version
            for per_s in storm.per_s:
                redis_command(redis.port, "FLUSHALL")
                database, dsn = postgres.create_database()
                load = storm.load(per_s, metrics.url)

                def watch(server: RunningServer, load: Load = load) -> list[str]:
                    metrics.server_pid = server.proc.pid
                    metrics.redis_port = redis.port
                    return load.options

                try:
                    run = harness.run(
                        storm.config.kind(redis.url, dsn),
                        load,
                        watch,
                        server_pid_option=False,
                        redis_pid=redis.proc.pid,
                        postgres_pid=postgres.pid,
                        scan_log=True,
                    )
                finally:
                    metrics.server_pid = metrics.redis_port = None
                    postgres.drop_database(database)
                run.offered_per_s = per_s
    except (RuntimeError, OSError) as exc:  # no redis-server or PostgreSQL, or one that would not start or went away
        harness.extra["joinstorm_error"] = str(exc)
        print(f"  not run: {exc}")
