"""The event log (issue 13) on every history store: edits, deletions and
reactions take the room's next seq with their side effects, reads show
messages as they are now, and search and read markers count what is left."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from chat.backends.base import Duplicate, HistoryStore
from chat.backends.postgres import PostgresHistory
from chat.backends.sqlite import FTS5_SECURE_DELETE, SQLiteHistory
from chat.core.model import EventKind, Message, ReadState
from tests.support.shared_history import LogStore, SharedLog

EDIT, DELETE, REACTION = EventKind.EDIT, EventKind.DELETE, EventKind.REACTION


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def store(request, io_loop, tmp_path) -> Iterator[HistoryStore]:  # type: ignore[no-untyped-def]
    made: HistoryStore
    if request.param == "sqlite":
        made = SQLiteHistory(str(tmp_path / "h.db"))
    elif request.param == "postgres":
        made = PostgresHistory(request.getfixturevalue("postgres_dsn"), sole_writer=True)
    else:
        made = LogStore(SharedLog())
    io_loop.run_sync(lambda: made.recent_refs(0))
    yield made
    io_loop.run_sync(made.close)


async def say(store: HistoryStore, text: str, name: str = "bob", *, room: str = "lobby", **kw: Any) -> Message:
    ts = int(kw.pop("ts", 1000))
    ref = kw.pop("ref", None)
    return await store.append(room, name, text, ts, str(kw.pop("session", "s1")), ref, **kw)


async def change(store: HistoryStore, kind: EventKind, target: int, name: str = "bob", **kw: Any) -> Message:
    return await say(store, str(kw.pop("text", "")), name, kind=kind, target=target, **kw)


@pytest.mark.gen_test
async def test_every_kind_takes_the_next_seq_with_no_gap(store):
    first = await say(store, "hello")
    events = await asyncio.gather(
        store.append("lobby", "bob", "hello!", 1001, "s1", None, kind=EDIT, target=1),
        store.append("lobby", "amy", "", 1002, "s2", None, kind=REACTION, target=1, emoji="👍"),
        store.append("lobby", "bob", "second", 1003, "s1", None),
        store.append("lobby", "bob", "", 1004, "s1", None, kind=DELETE, target=4),
    )
    assert [first.seq, *(e.seq for e in events)] == [1, 2, 3, 4, 5]
    assert [e.kind for e in events] == [EDIT, REACTION, EventKind.MESSAGE, DELETE]
    assert (events[0].target, events[0].text, events[1].emoji, events[1].on) == (1, "hello!", "👍", True)
    assert await store.last_seq("lobby") == 5
    assert [m.seq for m in await store.after("lobby", 0, 10)] == [1, 2, 3, 4, 5]


@pytest.mark.gen_test
async def test_a_retried_ref_of_any_kind_is_stored_once(store):
    await say(store, "hello")
    for kind, extra in ((EDIT, {"text": "fixed"}), (REACTION, {"emoji": "🎉"}), (DELETE, {})):
        original = await change(store, kind, 1, ref=f"r-{kind}", **extra)
        with pytest.raises(Duplicate) as raised:
            await change(store, kind, 1, ref=f"r-{kind}", **extra)
        assert raised.value.message.seq == original.seq
        assert raised.value.message.kind is kind
    assert await store.last_seq("lobby") == 4
    # The toggle ran once: a retried reaction does not take it back.
    assert [(m.kind, m.on) for m in await store.after("lobby", 2, 1)] == [(REACTION, True)]


@pytest.mark.gen_test
async def test_an_edit_changes_the_text_and_the_event_keeps_it(store):
    await say(store, "helo wrld", ts=1000)
    edit = await change(store, EDIT, 1, text="hello world", ts=2000)
    assert (edit.kind, edit.target, edit.text, edit.ts) == (EDIT, 1, "hello world", 2000)
    now = await store.get("lobby", 1)
    assert now is not None
    assert (now.text, now.edited, now.ts, now.deleted) == ("hello world", 2000, 1000, False)
    assert [(m.seq, m.text, m.edited) for m in await store.before("lobby", None, 10)] == [(1, "hello world", 2000)]
    assert [(m.kind, m.text) for m in await store.after("lobby", 0, 10)] == [
        (EventKind.MESSAGE, "hello world"),
        (EDIT, "hello world"),
    ]


@pytest.mark.gen_test
async def test_a_deletion_leaves_a_tombstone_without_any_of_its_texts(store):
    await say(store, "secret one", mentions=("amy",))
    await change(store, REACTION, 1, "amy", emoji="👍")
    await change(store, EDIT, 1, text="secret two")
    gone = await change(store, DELETE, 1, "mod")
    assert (gone.kind, gone.target, gone.text) == (DELETE, 1, "")
    now = await store.get("lobby", 1)
    assert now is not None
    assert (now.text, now.deleted, now.reactions, now.mentions) == ("", True, (), ())
    log = await store.after("lobby", 0, 10)
    assert [(m.kind, m.text) for m in log] == [
        (EventKind.MESSAGE, ""),
        (REACTION, ""),
        (EDIT, ""),
        (DELETE, ""),
    ]
    assert await store.search("secret", ["lobby"], None, 10) == []
    # A late edit of a deleted message is stored without its text and changes nothing.
    late = await change(store, EDIT, 1, text="secret three")
    assert (late.seq, late.text) == (5, "")
    assert (await store.get("lobby", 1)).text == ""  # type: ignore[union-attr]
    assert await store.search("three", ["lobby"], None, 10) == []


@pytest.mark.gen_test
async def test_reactions_toggle_and_read_back_grouped_in_reactions_order(store):
    await say(store, "ship it")
    toggles = [("amy", "🚀"), ("bob", "👍"), ("cid", "🚀"), ("amy", "👍"), ("bob", "👍")]
    ons = [(await change(store, REACTION, 1, name, emoji=emoji)).on for name, emoji in toggles]
    assert ons == [True, True, True, True, False]
    expected = (("👍", ("amy",)), ("🚀", ("amy", "cid")))
    assert (await store.get("lobby", 1)).reactions == expected  # type: ignore[union-attr]
    assert (await store.before("lobby", None, 10))[0].reactions == expected
    assert (await store.room_view("lobby", None, 10))[1][0].reactions == expected
    assert (await store.after("lobby", 0, 1))[0].reactions == expected


@pytest.mark.gen_test
async def test_a_change_whose_target_is_not_a_live_message_takes_its_seq_and_changes_nothing(store):
    await say(store, "hello")
    await change(store, EDIT, 1, text="hello!")
    for kind, extra in ((EDIT, {"text": "x"}), (REACTION, {"emoji": "👍"}), (DELETE, {})):
        for target in (2, 99):  # an edit event, nothing at all
            event = await change(store, kind, target, **extra)
            assert event.text == ""
            if kind is REACTION:
                assert event.on is False
    assert await store.last_seq("lobby") == 8
    now = await store.get("lobby", 1)
    assert now is not None
    assert (now.text, now.deleted, now.reactions) == ("hello!", False, ())
    assert (await store.get("lobby", 2)).text == "hello!"  # type: ignore[union-attr]


@pytest.mark.gen_test
async def test_scrollback_and_a_fresh_join_show_messages_only_a_resume_every_event(store):
    for i in range(5):
        await say(store, f"m{i + 1}", ts=1000 + i)
        await change(store, REACTION, 2 * i + 1, "amy", emoji="👀")
    assert [m.seq for m in await store.before("lobby", None, 3)] == [5, 7, 9]
    assert [m.seq for m in await store.before("lobby", 5, 10)] == [1, 3]
    last, fresh = await store.room_view("lobby", None, 2)
    assert (last, [m.text for m in fresh]) == (10, ["m4", "m5"])
    last, resumed = await store.room_view("lobby", 6, 10)
    assert (last, [(m.seq, m.kind) for m in resumed]) == (
        10,
        [(7, EventKind.MESSAGE), (8, REACTION), (9, EventKind.MESSAGE), (10, REACTION)],
    )
    assert resumed[0].reactions == (("👀", ("amy",)),)


@pytest.mark.gen_test
async def test_search_finds_current_text_newest_first_in_the_given_rooms_only(store):
    await say(store, "the deploy is done", ts=1000)
    await say(store, "Deploy again", ts=3000)
    await say(store, "deploy in private", room="secret", ts=4000)
    await say(store, "nothing here", ts=5000)
    await say(store, "typo deplyo", ts=2000)
    await change(store, EDIT, 4, text="fixed deploy", ts=6000)
    await change(store, EDIT, 2, text="redo it", ts=6001)
    hits = await store.search("DEPLOY", ["lobby"], None, 10)
    assert [(h.room, h.seq) for h in hits] == [("lobby", 4), ("lobby", 1)]
    assert hits[0].snippet == "fixed [deploy]"
    assert (hits[1].name, hits[1].ts) == ("bob", 1000)
    assert await store.search("deplyo", ["lobby"], None, 10) == []  # the text before the edit
    assert await store.search("again", ["lobby"], None, 10) == []
    assert [h.seq for h in await store.search("deploy", ["lobby"], 2000, 10)] == [1]
    assert [h.seq for h in await store.search("deploy", ["lobby"], None, 1)] == [4]
    assert [h.room for h in await store.search("deploy", ["lobby", "secret"], None, 10)] == [
        "secret",
        "lobby",
        "lobby",
    ]
    assert await store.search("deploy", [], None, 10) == []
    assert [h.seq for h in await store.search("deploy done", ["lobby"], None, 10)] == [1]


@pytest.mark.gen_test
async def test_a_query_is_words_never_engine_syntax(store):
    await say(store, 'he said "ship" it (now) OR never: a-b')
    for query in ('"ship', "ship*", "ship OR", "(now", "OR ship", "said:ship", "(ship it)", "ship & !", "a-b", "ship'"):
        assert [h.seq for h in await store.search(query, ["lobby"], None, 10)] == [1], query
    for query in ("", "   ", '"', "***", "()", "-"):
        assert await store.search(query, ["lobby"], None, 10) == [], query


@pytest.mark.gen_test
async def test_read_state_counts_what_others_sent_and_was_not_deleted(store):
    await say(store, "hi amy", "bob", mentions=("amy",))  # 1
    await say(store, "mine", "amy")  # 2: her own
    await say(store, "guest amy", "amy", guest=True)  # 3: a guest named amy is not her
    await say(store, "to be deleted @amy", "bob", mentions=("amy",))  # 4
    await change(store, DELETE, 4)  # 5
    await change(store, REACTION, 1, "cid", emoji="👍")  # 6: not a message
    await say(store, "@AMY again", "cid", mentions=("Amy",))  # 7
    assert await store.read_state(7, "amy", ["lobby", "empty"]) == {
        "lobby": ReadState(0, 3, 2),
        "empty": ReadState(0, 0, 0),
    }
    assert await store.set_read(7, "lobby", 3) == 3
    assert await store.set_read(7, "lobby", 2) == 3  # forward only
    assert (await store.read_state(7, "amy", ["lobby"]))["lobby"] == ReadState(3, 1, 1)
    assert (await store.read_state(8, "cid", ["lobby"]))["lobby"] == ReadState(0, 3, 0)  # markers are per account
    assert await store.set_read(7, "lobby", 1000) == 7  # never past the room's last seq
    assert (await store.read_state(7, "amy", ["lobby"]))["lobby"] == ReadState(7, 0, 0)


async def _write_and_delete(store: HistoryStore) -> None:
    """A message with an unusual word, edited (also unusual), reacted to, and deleted."""
    await say(store, "launch code zanzibarquux", mentions=("amy",))
    await change(store, EDIT, 1, text="launch code quuxzanzibar")
    await change(store, REACTION, 1, "amy", emoji="🎉")
    await say(store, "kept")
    await change(store, DELETE, 1)


@pytest.mark.gen_test
async def test_a_deleted_text_is_nowhere_in_the_sqlite_file(tmp_path):
    path = tmp_path / "h.db"
    store = SQLiteHistory(str(path))
    await _write_and_delete(store)
    await store.close()
    db = sqlite3.connect(path, isolation_level=None)
    if not FTS5_SECURE_DELETE:
        # Before SQLite 3.42 the FTS5 index keeps a deleted row's terms until its
        # segments merge: the step docs/operations.md gives operators.
        db.execute("PRAGMA secure_delete = ON")
        db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL's pages go into the file
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"messages", "reactions", "mentions", "search_docs", "messages_fts_content"} <= set(tables)
    for table in tables:
        for row in db.execute(f'SELECT * FROM "{table}"'):
            assert "zanzibar" not in repr(row), (table, row)
    assert db.execute("SELECT count(*) FROM reactions").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'quuxzanzibar'").fetchone()[0] == 0
    db.close()
    # secure_delete: the freed cells are zeroed, not left for an undelete tool to read.
    assert b"zanzibar" not in path.read_bytes()


@pytest.mark.gen_test
async def test_a_deleted_text_is_in_no_postgres_table(postgres_dsn):
    store = PostgresHistory(postgres_dsn, sole_writer=True)
    await _write_and_delete(store)
    await store.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        tables = [
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        assert {"messages", "reactions", "mentions", "refs"} <= set(tables)
        for table in tables:
            for row in await conn.fetch(f'SELECT t::text AS row FROM "{table}" t'):
                assert "zanzibar" not in row["row"], (table, row["row"])
        assert await conn.fetchval("SELECT count(*) FROM reactions") == 0
        assert await conn.fetchval("SELECT count(*) FROM mentions") == 0
        # The search vector is generated from the (now empty) text.
        assert await conn.fetchval("SELECT search::text FROM messages WHERE room = 'lobby' AND seq = 1") == ""
    finally:
        await conn.close()


@pytest.mark.gen_test
async def test_a_message_and_its_changes_in_one_batch_apply_in_seq_order(store):
    sent = [
        store.append("lobby", "bob", "draft", 1000, "s1", None, mentions=("amy",)),
        store.append("lobby", "bob", "final", 1001, "s1", None, kind=EDIT, target=1),
        store.append("lobby", "amy", "", 1002, "s2", None, kind=REACTION, target=1, emoji="👍"),
        store.append("lobby", "amy", "", 1003, "s2", None, kind=REACTION, target=1, emoji="👍"),
        store.append("lobby", "cid", "", 1004, "s3", None, kind=REACTION, target=1, emoji="❤️"),
        store.append("lobby", "bob", "other", 1005, "s1", None),
        store.append("lobby", "bob", "", 1006, "s1", None, kind=DELETE, target=6),
        store.append("lobby", "bob", "too late", 1007, "s1", None, kind=EDIT, target=6),
    ]
    events = await asyncio.gather(*sent)
    assert [e.seq for e in events] == list(range(1, 9))
    assert [e.on for e in events[2:5]] == [True, False, True]
    assert (events[1].text, events[7].text) == ("final", "")
    first, second = await store.before("lobby", None, 10)
    assert (first.text, first.edited, first.mentions, first.reactions) == ("final", 1001, ("amy",), (("❤️", ("cid",)),))
    assert (second.text, second.deleted) == ("", True)
    assert [h.seq for h in await store.search("final", ["lobby"], None, 10)] == [1]
    assert await store.search("other", ["lobby"], None, 10) == []
