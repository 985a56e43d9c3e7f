"""asyncpg against psycopg 3 (with psycopg_pool) on the history's batch-insert path.

Each driver stores the same batches with the store's one statement
(``SELECT * FROM chat_append(...)``, :mod:`chat.backends.schema`), one batch in
flight at a time as :class:`chat.backends.postgres.PostgresHistory` does, into
10 rooms, and reports the median round trip per batch and the client CPU per
message (``time.process_time`` of this process, so server time is not in it).

    .venv/bin/python bench/pg_drivers.py                  # a throwaway cluster
    .venv/bin/python bench/pg_drivers.py --dsn postgresql://... --batches 300

Each driver gets a fresh database; the drivers alternate per batch size, so a
noisy neighbour hurts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chat.backends.postgres import keep_session, migrate_postgres

# The six-array chat_append (messages only) that schema version 4 keeps for the
# servers of the release before: the batch this comparison has always timed.
APPEND_SQL = "SELECT * FROM chat_append($1, $2, $3, $4, $5, $6)"

ROOMS = 10
Arrays = tuple[list[str], list[str], list[str], list[int], list[str], list[str | None]]


def arrays(size: int, start: int) -> Arrays:
    rooms = [f"room{(start + i) % ROOMS}" for i in range(size)]
    refs: list[str | None] = [f"r{start + i}" if i % 2 else None for i in range(size)]
    return (
        rooms,
        ["bob"] * size,
        [f"message {start + i} é" for i in range(size)],
        [1000 + i for i in range(size)],
        ["s1"] * size,
        refs,
    )


async def asyncpg_driver(dsn: str) -> tuple[Callable[[Arrays], Awaitable[int]], Callable[[], Awaitable[None]]]:
    import asyncpg  # type: ignore[import-untyped]

    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2, reset=keep_session)  # as the store
    await migrate_postgres(pool)

    async def run(a: Arrays) -> int:
        async with pool.acquire() as conn:
            return len(await conn.fetch(APPEND_SQL, *a))

    return run, pool.close


async def psycopg_driver(dsn: str) -> tuple[Callable[[Arrays], Awaitable[int]], Callable[[], Awaitable[None]]]:
    import asyncpg
    from psycopg_pool import AsyncConnectionPool

    setup = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    await migrate_postgres(setup)  # the schema, as the store makes it (not timed)
    await setup.close()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn, min_size=2, max_size=2, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    sql = APPEND_SQL.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s")
    sql = sql.replace("$4", "%s").replace("$5", "%s").replace("$6", "%s")

    async def run(a: Arrays) -> int:
        async with pool.connection() as conn:
            cur = await conn.execute(sql, a)
            return len(await cur.fetchall())

    return run, pool.close


DRIVERS = {"asyncpg": asyncpg_driver, "psycopg": psycopg_driver}


async def measure(dsn: str, driver: str, size: int, batches: int) -> tuple[float, float]:
    run, close = await DRIVERS[driver](dsn)
    try:
        for i in range(20):  # warm up: prepared statements, caches
            await run(arrays(size, -(i + 1) * size))
        times: list[float] = []
        cpu0 = time.process_time()
        for i in range(batches):
            started = time.perf_counter()
            assert await run(arrays(size, i * size)) == size
            times.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu0
    finally:
        await close()
    return statistics.median(times) * 1000, cpu / (batches * size) * 1e6


async def main(dsn: str | None, batches: int, sizes: list[int]) -> None:
    with contextlib.ExitStack() as stack:
        if dsn is None:
            from tests.support.postgres import postgres_server

            server = stack.enter_context(postgres_server())
            new_db: Callable[[], str] = server.create_database
        else:
            new_db = lambda: dsn  # noqa: E731  (reruns append to the same rooms: fine for timing)
        print(f"{'driver':8} {'batch':>5} {'median ms/batch':>16} {'client CPU us/msg':>18}")
        for size in sizes:
            for driver in DRIVERS:
                ms, us = await measure(new_db(), driver, size, batches)
                print(f"{driver:8} {size:5d} {ms:16.3f} {us:18.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="a PostgreSQL database to write into (default: a throwaway cluster)")
    parser.add_argument("--batches", type=int, default=500, help="batches per driver and size")
    parser.add_argument("--sizes", default="1,10,100", help="messages per batch, comma-separated")
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.batches, [int(s) for s in args.sizes.split(",")]))
