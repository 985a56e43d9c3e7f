"""Yesterday's data, today: a database of schema version 3 (messages of guests and
accounts, rooms, refs) migrates to version 4 on both engines: every row is a
message as it was, the search index covers them, and the event log goes on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from chat.backends.base import Duplicate
from chat.backends.postgres import PostgresHistory
from chat.backends.schema import POSTGRES_STEPS, POSTGRES_VERSION_TABLE, SQLITE_STEPS, VERSION, _statements
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import EventKind, ReadState

LATER = 2_000_000_000_000
# (room, name, text, ts, session, ref, guest) as a version 3 server stored them.
V3 = [
    ("lobby", "nick", "hello from before", 1_700_000_000_000, "sa", "r1", True),
    ("lobby", "alice", "the plan is ready", 1_700_000_001_000, "sb", "r1", False),
    ("lobby", "bob", "café au lait", 1_700_000_002_000, "sc", None, False),
    ("café", "nick", "the plan elsewhere", 1_700_000_003_000, "sa", "r2", True),
]


def write_sqlite_v3(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for step in (1, 2, 3):
        for statement in _statements(SQLITE_STEPS[step]):
            db.execute(statement)
    seqs: dict[str, int] = {}
    for room, name, text, ts, session, ref, guest in V3:  # SQLiteHistory._store of version 3
        seqs[room] = seqs.get(room, 0) + 1
        db.execute(
            "INSERT INTO messages (room, seq, name, text, ts, session, ref, guest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (room, seqs[room], name, text, ts, session, ref, guest),
        )
        db.execute(
            "INSERT INTO rooms (room, last_seq, title, created) VALUES (?1, ?2, ?1, ?3)"
            " ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
            (room, seqs[room], ts),
        )
        if ref is not None:
            db.execute("INSERT INTO refs VALUES (?, ?, ?, ?, ?)", (session, ref, room, seqs[room], ts))
    db.execute("PRAGMA user_version = 3")
    db.execute("COMMIT")
    db.close()


async def write_postgres_v3(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(POSTGRES_VERSION_TABLE)
        for step in (1, 2, 3):
            await conn.execute(POSTGRES_STEPS[step])
        await conn.execute("INSERT INTO schema_version VALUES (3)")
        columns = [list(c) for c in zip(*V3, strict=True)]  # one batch of the version 3 server
        await conn.fetch("SELECT * FROM chat_append($1, $2, $3, $4, $5, $6, $7)", *columns)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request) -> str:  # type: ignore[no-untyped-def]
    return str(request.param)


async def migrated(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteHistory | PostgresHistory:
    if engine == "sqlite":
        path = tmp_path / "chat.sqlite3"
        write_sqlite_v3(path)
        return SQLiteHistory(str(path))
    dsn: str = request.getfixturevalue("postgres_dsn")
    await write_postgres_v3(dsn)
    store = PostgresHistory(dsn)
    await store.recent_refs(0)  # connects and migrates
    return store


@pytest.mark.gen_test(timeout=60)
async def test_version_3_messages_are_messages_found_by_search_and_changed_by_events(engine, request, tmp_path):
    store = await migrated(engine, request, tmp_path)
    try:
        old = await store.after("lobby", 0, 10)
        assert [(m.seq, m.name, m.text, m.guest, m.kind, m.edited, m.deleted) for m in old] == [
            (1, "nick", "hello from before", True, EventKind.MESSAGE, None, False),
            (2, "alice", "the plan is ready", False, EventKind.MESSAGE, None, False),
            (3, "bob", "café au lait", False, EventKind.MESSAGE, None, False),
        ]
        # The migration indexed every message.
        hits = await store.search("plan", ["lobby", "café"], None, 10)
        assert [(h.room, h.seq) for h in hits] == [("café", 1), ("lobby", 2)]
        assert [h.seq for h in await store.search("lait", ["lobby"], None, 10)] == [3]
        with pytest.raises(Duplicate):
            await store.append("lobby", "alice", "retried", LATER, "sb", "r1")
        # The event log goes on from each room's seq.
        edit = await store.append("lobby", "alice", "the plan is done", LATER, "k", None, kind=EventKind.EDIT, target=2)
        assert (edit.seq, edit.text) == (4, "the plan is done")
        assert [h.seq for h in await store.search("ready", ["lobby"], None, 10)] == []
        assert [h.seq for h in await store.search("done", ["lobby"], None, 10)] == [2]
        await store.append("lobby", "nick", "", LATER, "k", None, kind=EventKind.DELETE, target=1)
        assert await store.search("hello", ["lobby"], None, 10) == []
        assert [m.seq for m in await store.before("lobby", None, 10)] == [1, 2, 3]
        assert await store.read_state(1, "bob", ["lobby"]) == {"lobby": ReadState(0, 1, 0)}
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_migrated_sqlite_file_is_version_4_and_opens_again(tmp_path):
    path = tmp_path / "chat.sqlite3"
    write_sqlite_v3(path)
    await SQLiteHistory(str(path)).close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == VERSION == 4
    again = SQLiteHistory(str(path))
    try:
        assert await again.last_seq("lobby") == 3
        assert [h.seq for h in await again.search("before", ["lobby"], None, 10)] == [1]
    finally:
        await again.close()


@pytest.mark.gen_test(timeout=60)
async def test_servers_of_versions_2_and_3_still_running_on_postgres_store_messages(postgres_dsn):
    """A rolling upgrade: one server migrated the database to version 4, others
    still call the chat_append they know, and their sayers keep being served."""
    await write_postgres_v3(postgres_dsn)
    store = PostgresHistory(postgres_dsn)
    await store.recent_refs(0)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        v3 = await conn.fetch(
            "SELECT pos, seq, text, guest, fresh FROM chat_append($1, $2, $3, $4, $5, $6, $7)",
            ["lobby", "lobby"],
            ["alice", "alice"],
            ["from v3 findable", "retried"],
            [LATER, LATER],
            ["v3", "sb"],
            ["n1", "r1"],
            [False, False],
        )
        assert [(r["pos"], r["seq"], r["text"], r["guest"], r["fresh"]) for r in v3] == [
            (1, 4, "from v3 findable", False, True),
            (2, 2, "the plan is ready", False, False),  # a retried ref still answers with its original
        ]
        v2 = await conn.fetch(
            "SELECT pos, seq, text, fresh FROM chat_append($1, $2, $3, $4, $5, $6)",
            ["lobby"],
            ["old"],
            ["from v2"],
            [LATER + 1],
            ["v2"],
            [None],
        )
        assert [(r["seq"], r["fresh"]) for r in v2] == [(5, True)]
        got = await store.get("lobby", 5)
        assert got is not None
        assert (got.kind, got.guest, got.mentions) == (EventKind.MESSAGE, True, ())
        assert [h.seq for h in await store.search("findable", ["lobby"], None, 10)] == [4]
    finally:
        await conn.close()
        await store.close()
