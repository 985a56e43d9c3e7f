"""--retention-days: old messages go in chunks, on both engines; seq never goes back; nothing goes without it."""

from __future__ import annotations

import pytest

from chat.backends import retention
from chat.backends.postgres import PostgresHistory
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import EventKind, ReadState

DAY_MS = 86_400_000
NOW_S = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request, tmp_path):  # type: ignore[no-untyped-def]
    def make(days: float | None):  # type: ignore[no-untyped-def]
        if request.param == "sqlite":
            return SQLiteHistory(str(tmp_path / "h.db"), retention_days=days, wall=lambda: NOW_S)
        return PostgresHistory(request.getfixturevalue("postgres_dsn"), retention_days=days, wall=lambda: NOW_S)

    return make


@pytest.mark.gen_test(timeout=60)
async def test_retention_deletes_only_older_messages_and_seq_goes_on(make_store, monkeypatch):
    monkeypatch.setattr(retention, "CHUNK", 7)  # several chunks per pass
    store = make_store(30)
    now_ms = int(NOW_S * 1000)
    for i in range(40):  # 40 messages 31 days old, with refs, then 5 recent
        await store.append("old", "bob", f"o{i}", now_ms - 31 * DAY_MS + i, "s", f"r{i}")
    for i in range(5):
        await store.append("old", "bob", f"n{i}", now_ms - DAY_MS, "s", None)
    await store.append("gone", "bob", "x", now_ms - 40 * DAY_MS, "s", None)
    assert await store.retention.run_once() == 41
    assert [m.text for m in await store.after("old", 0, 100)] == [f"n{i}" for i in range(5)]
    assert await store.after("gone", 0, 10) == []
    # The counters stay: a room emptied by retention goes on from its last seq.
    assert await store.last_seq("gone") == 1
    assert (await store.append("gone", "bob", "y", now_ms, "s", None)).seq == 2
    # A ref whose message is gone may be used again.
    assert (await store.append("old", "bob", "again", now_ms, "s", "r0")).seq == 46
    assert await store.retention.run_once() == 0
    await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_nothing_is_deleted_without_a_retention_period(make_store):
    store = make_store(None)
    await store.append("old", "bob", "ancient", 1, "s", None)
    assert await store.retention.run_once() == 0
    await store.recent_refs(0)  # the service's start: no background task without a period
    assert store.retention._task is None
    assert [m.text for m in await store.after("old", 0, 10)] == ["ancient"]
    await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_what_is_kept_about_an_expired_message_goes_with_it(make_store):
    store = make_store(30)
    now_ms = int(NOW_S * 1000)
    old = now_ms - 31 * DAY_MS
    await store.append("r", "bob", "ancient zebra", old, "s", None, mentions=("amy",))
    await store.append("r", "amy", "", now_ms, "s2", None, kind=EventKind.REACTION, target=1, emoji="👍")
    await store.append("r", "bob", "recent zebra", now_ms, "s", None, mentions=("amy",))
    assert [h.seq for h in await store.search("zebra", ["r"], None, 10)] == [3, 1]
    assert await store.retention.run_once() == 1
    assert [h.seq for h in await store.search("zebra", ["r"], None, 10)] == [3]
    assert await store.read_state(1, "amy", ["r"]) == {"r": ReadState(0, 1, 1)}
    # The rows themselves are gone, not only unreachable through the message.
    assert await rows(store, "SELECT count(*) FROM reactions") == 0
    assert await rows(store, "SELECT count(*) FROM mentions WHERE seq = 1") == 0
    if isinstance(store, SQLiteHistory):
        assert await rows(store, "SELECT count(*) FROM search_docs WHERE seq = 1") == 0
        assert await rows(store, "SELECT count(*) FROM messages_fts") == 1
    # A reaction to the expired message left nothing behind: the same toggle starts over.
    again = await store.append("r", "amy", "", now_ms, "s2", None, kind=EventKind.REACTION, target=1, emoji="👍")
    assert again.on is False  # its target is gone: the event takes its seq and changes nothing
    await store.close()


async def rows(store: SQLiteHistory | PostgresHistory, sql: str) -> int:
    if isinstance(store, SQLiteHistory):
        return int(store._db.execute(sql).fetchone()[0])
    return int((await store._fetch(sql))[0][0])
