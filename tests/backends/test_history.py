import asyncio
import sqlite3

import pytest

from chat.backends.base import StoreUnavailable
from chat.backends.sqlite import SQLiteHistory


async def fill(store: SQLiteHistory, room: str, n: int, ref_prefix: str | None = None) -> None:
    for i in range(n):
        ref = f"{ref_prefix}{i}" if ref_prefix else None
        await store.append(room, "bob", f"m{i + 1}", 1000 + i, "s1", ref)


@pytest.mark.gen_test
async def test_seq_counts_per_room_from_one(tmp_path):
    store = SQLiteHistory(str(tmp_path / "h.db"))
    a1 = await store.append("a", "bob", "x", 1, "s", None)
    a2 = await store.append("a", "bob", "y", 2, "s", None)
    b1 = await store.append("b", "bob", "z", 3, "s", None)
    assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1)
    assert await store.rooms() == {"a": 2, "b": 1}
    await store.close()


@pytest.mark.gen_test
async def test_seq_and_messages_survive_reopening(tmp_path):
    path = str(tmp_path / "h.db")
    store = SQLiteHistory(path)
    await fill(store, "lobby", 3)
    await store.close()
    reopened = SQLiteHistory(path)
    assert await reopened.last_seq("lobby") == 3
    assert (await reopened.append("lobby", "bob", "next", 5, "s", None)).seq == 4
    assert [m.text for m in await reopened.before("lobby", None, 10)] == ["m1", "m2", "m3", "next"]
    await reopened.close()


@pytest.mark.gen_test
async def test_before_and_after_page_in_ascending_order(tmp_path):
    store = SQLiteHistory(str(tmp_path / "h.db"))
    await fill(store, "lobby", 10)
    assert [m.seq for m in await store.before("lobby", None, 3)] == [8, 9, 10]
    assert [m.seq for m in await store.before("lobby", 5, 3)] == [2, 3, 4]
    assert [m.seq for m in await store.after("lobby", 5, 3)] == [6, 7, 8]
    assert await store.after("lobby", 10, 3) == []
    assert (await store.get("lobby", 4)).text == "m4"  # type: ignore[union-attr]
    assert await store.get("lobby", 11) is None
    await store.close()


@pytest.mark.gen_test
async def test_recent_refs_lists_messages_sent_with_a_ref(tmp_path):
    store = SQLiteHistory(str(tmp_path / "h.db"))
    await fill(store, "lobby", 3, ref_prefix="r")
    await fill(store, "lobby", 2)
    refs = await store.recent_refs(1001)
    assert [(m.ref, m.seq) for m in refs] == [("r1", 2), ("r2", 3)]
    await store.close()


@pytest.mark.gen_test
async def test_a_failed_write_raises_unavailable_and_leaves_no_gap(tmp_path):
    store = SQLiteHistory(str(tmp_path / "h.db"))
    await store.append("lobby", "bob", "ok", 1, "s", None)
    # Another process holds the write lock: our insert cannot commit.
    blocker = sqlite3.connect(str(tmp_path / "h.db"), timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    store._db.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(StoreUnavailable):
        await store.append("lobby", "bob", "lost", 2, "s", None)
    blocker.rollback()
    blocker.close()
    assert (await store.append("lobby", "bob", "next", 3, "s", None)).seq == 2
    await store.close()


@pytest.mark.gen_test
async def test_appends_of_one_tick_are_committed_together_in_order(tmp_path):
    store = SQLiteHistory(str(tmp_path / "h.db"))
    futures = [store.append("lobby", "bob", f"m{i}", i, "s", None) for i in range(3)]
    assert await store.last_seq("lobby") == 0  # handed out, not committed yet
    assert await store.before("lobby", None, 10) == []
    order: list[int] = []
    for f in futures:
        f.add_done_callback(lambda f: order.append(f.result().seq))
    await store.drain()
    assert order == [1, 2, 3]
    assert await store.last_seq("lobby") == 3
    assert [m.text for m in await store.before("lobby", None, 10)] == ["m0", "m1", "m2"]
    await store.close()


@pytest.mark.gen_test
async def test_close_commits_what_is_pending(tmp_path):
    path = str(tmp_path / "h.db")
    store = SQLiteHistory(path)
    store.append("lobby", "bob", "last words", 1, "s", None)
    await store.close()
    reopened = SQLiteHistory(path)
    assert [m.text for m in await reopened.before("lobby", None, 10)] == ["last words"]
    await reopened.close()


@pytest.mark.gen_test
async def test_close_refuses_new_messages_and_commits_every_batch_taken(tmp_path):
    store = SQLiteHistory(str(tmp_path / "h.db"))
    first = store.append("lobby", "bob", "queued", 1, "s", None)
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)  # close() has begun and waits for the batch
    late = store.append("lobby", "bob", "too late", 2, "s", None)
    await closing
    assert (await first).seq == 1
    with pytest.raises(StoreUnavailable):
        await late
