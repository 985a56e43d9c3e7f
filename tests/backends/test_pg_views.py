"""Fresh joins' room views read in batches on a shared PostgreSQL (chat.backends.pg_views)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from chat.backends.base import StoreUnavailable
from chat.backends.pg_views import VIEWS_SQL, RoomViews
from chat.backends.postgres import PostgresHistory


class HeldFetch:
    """A database that answers each statement only when the test lets it: last seq = the room's length."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gates: dict[int, asyncio.Event] = {}  # statement n is answered once gate n is set
        self.fail = fail

    async def __call__(self, sql: str, rooms: list[str], limits: list[int]) -> list[dict[str, Any]]:
        assert sql == VIEWS_SQL
        self.calls.append(rooms)
        await self.gates.setdefault(len(self.calls), asyncio.Event()).wait()
        if self.fail is not None:
            raise self.fail
        return [{"i": i + 1, "last_seq": len(room), "seq": None} for i, room in enumerate(rooms)]

    async def answer(self, n: int) -> None:
        self.gates.setdefault(n, asyncio.Event()).set()


@pytest.mark.gen_test
async def test_views_asked_while_one_is_read_go_together_in_the_next_statement():
    fetch = HeldFetch()
    views = RoomViews(fetch)
    first = views.read("a", 50)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [views.read(room, 50) for room in ("bb", "ccc", "bb", "dddd")]
    await fetch.answer(1)
    assert await first == (1, [])
    await fetch.answer(2)
    assert [await f for f in later] == [(2, []), (3, []), (2, []), (4, [])]
    assert fetch.calls == [["a"], ["bb", "ccc", "dddd"]]  # one statement for the four, each room once
    assert views.statements == 2


@pytest.mark.gen_test
async def test_every_caller_of_a_failed_statement_is_answered_unavailable(caplog):
    for failure, logged in ((StoreUnavailable("postgresql: gone"), False), (RuntimeError("a bug"), True)):
        fetch = HeldFetch(failure)
        views = RoomViews(fetch)
        waiting = [views.read(room, 50) for room in ("a", "b")]
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="chat.backends.pg_views"):
            await fetch.answer(1)
            for future in waiting:
                with pytest.raises(StoreUnavailable):
                    await future
            await asyncio.sleep(0)
        assert ("reading room views failed" in caplog.text) is logged


@pytest.fixture
def shared(io_loop, postgres_dsn) -> Iterator[PostgresHistory]:
    store = PostgresHistory(postgres_dsn, sole_writer=False)  # one of several servers on the database
    io_loop.run_sync(lambda: store.recent_refs(0))
    yield store
    io_loop.run_sync(store.close)


@pytest.mark.postgres
@pytest.mark.gen_test
async def test_a_storm_of_fresh_joins_reads_each_room_as_one_join_alone_would_in_few_statements(shared):
    for n, room in enumerate(("quiet", "busy", "mid")):
        for i in range(n * 4):
            await shared.append(room, "bob", f"{room} {i}", 1000 + i, "s1", None)
    alone = {room: await shared.room_view(room, None, 3) for room in ("quiet", "busy", "mid", "nobody")}
    before = shared._views.statements
    storm = await asyncio.gather(*(shared.room_view(room, None, 3) for room in ["quiet", "busy", "mid", "nobody"] * 10))
    assert storm == [alone[room] for room in ["quiet", "busy", "mid", "nobody"] * 10]
    assert alone["quiet"] == alone["nobody"] == (0, [])
    assert (alone["mid"][0], [m.text for m in alone["mid"][1]]) == (8, ["mid 5", "mid 6", "mid 7"])
    assert (alone["busy"][0], [m.seq for m in alone["busy"][1]]) == (4, [2, 3, 4])
    assert shared._views.statements - before <= 2  # 40 joins: one statement, or two if one was already sent
