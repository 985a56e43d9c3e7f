"""Yesterday's data, today: a database of schema version 2 (rooms counters, refs,
messages sent under nicknames), written as the version 2 server wrote it, migrates
to version 3 on both engines with every message readable as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from chat.backends.base import Conflict, Duplicate
from chat.backends.postgres import PostgresHistory
from chat.backends.schema import POSTGRES_STEPS, POSTGRES_VERSION_TABLE, SQLITE_STEPS, VERSION, _statements
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Message, RoomInfo, RoomKind, Standing, Visibility
from tests.backends.data.make_v1 import plan

LATER = 2_000_000_000_000


def v2_messages() -> list[Message]:
    """The v1 fixture's plan as a version 2 server stored it: a ref seen before is
    a duplicate and takes no seq (so "again", the plan's retried ref, is not there)."""
    seqs: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    stored = []
    for room, name, text, ts, session, ref in plan():
        if ref is not None:
            if (session, ref) in seen:
                continue
            seen.add((session, ref))
        seqs[room] = seqs.get(room, 0) + 1
        stored.append(Message(room, seqs[room], name, text, ts, session, ref))
    return stored


def write_sqlite_v2(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for step in (1, 2):
        for statement in _statements(SQLITE_STEPS[step]):
            db.execute(statement)
    for m in v2_messages():  # SQLiteHistory._store of version 2, a message at a time
        db.execute(
            "INSERT INTO messages (room, seq, name, text, ts, session, ref) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref),
        )
        db.execute(
            "INSERT INTO rooms (room, last_seq) VALUES (?, ?)"
            " ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
            (m.room, m.seq),
        )
        if m.ref is not None:
            db.execute("INSERT INTO refs VALUES (?, ?, ?, ?, ?)", (m.session, m.ref, m.room, m.seq, m.ts))
    db.execute("PRAGMA user_version = 2")
    db.execute("COMMIT")
    db.close()


async def write_postgres_v2(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(POSTGRES_VERSION_TABLE)
        for step in (1, 2):
            await conn.execute(POSTGRES_STEPS[step])
        await conn.execute("INSERT INTO schema_version VALUES (2)")
        rows = plan()
        for start in range(0, len(rows), 50):  # the version 2 server's batches, through its chat_append
            columns = [list(c) for c in zip(*rows[start : start + 50], strict=True)]
            await conn.fetch("SELECT * FROM chat_append($1, $2, $3, $4, $5, $6)", *columns)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request) -> str:  # type: ignore[no-untyped-def]
    return str(request.param)


async def migrated(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteHistory | PostgresHistory:
    if engine == "sqlite":
        path = tmp_path / "chat.sqlite3"
        write_sqlite_v2(path)
        return SQLiteHistory(str(path))
    dsn: str = request.getfixturevalue("postgres_dsn")
    await write_postgres_v2(dsn)
    store = PostgresHistory(dsn)
    await store.recent_refs(0)  # connects and migrates
    return store


@pytest.mark.gen_test(timeout=60)
async def test_messages_sent_before_accounts_read_as_they_were_from_guests(engine, request, tmp_path):
    store = await migrated(engine, request, tmp_path)
    expected: dict[str, list[Message]] = {}
    for m in v2_messages():
        expected.setdefault(m.room, []).append(m)
    try:
        for room, messages in expected.items():
            got = await store.after(room, 0, 10_000)
            assert [(m.seq, m.name, m.text, m.ts, m.session, m.ref) for m in got] == [
                (m.seq, m.name, m.text, m.ts, m.session, m.ref) for m in messages
            ]
            assert all(m.guest for m in got)
        assert await store.rooms() == {room: len(messages) for room, messages in expected.items()}
        last, newest = await store.room_view("busy", None, 2)
        assert (last, [(m.seq, m.guest) for m in newest]) == (300, [(299, True), (300, True)])
        # A retried ref is still a duplicate of its original, and takes no seq.
        for room, session, ref, seq in (("lobby", "sa", "r1", 1), ("café", "sz", "r1", 1), ("busy", "s0", "big-0", 1)):
            with pytest.raises(Duplicate) as raised:
                await store.append(room, "x", "retried", LATER, session, ref)
            assert (raised.value.message.seq, raised.value.message.guest) == (seq, True)
        # New messages go on after each room's seq, marked as they are sent.
        assert await store.append("lobby", "alice", "by an account", LATER, "k", "r1") == Message(
            "lobby", 4, "alice", "by an account", LATER, "k", "r1", guest=False
        )
        assert (await store.append("busy", "nick", "by a guest", LATER, "g", None, guest=True)).seq == 301
        assert [(m.name, m.guest) for m in await store.after("busy", 299, 10)] == [
            ("user5", True),
            ("nick", True),
        ]
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_rooms_of_before_accounts_are_public_rooms_titled_by_their_names(engine, request, tmp_path):
    store = await migrated(engine, request, tmp_path)
    directory = store.directory()
    try:
        assert [(r.room, r.visibility, r.kind, r.title) for r in await directory.public_rooms()] == [
            (room, Visibility.PUBLIC, RoomKind.ROOM, room) for room in sorted({m.room for m in v2_messages()})
        ]
        lobby = await directory.room("lobby")
        assert lobby == RoomInfo("lobby", Visibility.PUBLIC, RoomKind.ROOM, "lobby", 1_700_000_000_000)
        with pytest.raises(Conflict):
            await directory.create_room(lobby, {})
        # The first account, and its durable place in an old room.
        alice = await directory.create_account("alice", "hash", LATER)
        assert alice.admin
        await directory.set_standing("lobby", alice.id, Standing.MEMBER, LATER)
        assert [r.info for r in await directory.account_rooms(alice.id)] == [lobby]
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_migrated_file_is_current_and_opens_again_unchanged(tmp_path):
    path = tmp_path / "chat.sqlite3"
    write_sqlite_v2(path)
    store = SQLiteHistory(str(path))
    await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == VERSION == 4
    again = SQLiteHistory(str(path))
    try:
        assert await again.last_seq("busy") == 300
        assert (await again.get("lobby", 1)).guest  # type: ignore[union-attr]
    finally:
        await again.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_version_2_server_still_running_on_postgres_stores_guest_messages(postgres_dsn):
    """A rolling upgrade: one server migrated the database, another of version 2
    still calls the chat_append it knows, and its sayers keep being served."""
    await write_postgres_v2(postgres_dsn)
    store = PostgresHistory(postgres_dsn)
    await store.recent_refs(0)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT pos, room, seq, name, text, ts, session, ref, fresh FROM chat_append($1, $2, $3, $4, $5, $6)",
            ["lobby", "lobby"],
            ["old", "old"],
            ["from v2", "retried"],
            [LATER, LATER],
            ["v2", "sa"],
            ["n1", "r1"],
        )
        assert [(r["pos"], r["seq"], r["text"], r["fresh"]) for r in rows] == [
            (1, 4, "from v2", True),
            (2, 1, "hello", False),  # a retried ref still answers with its original
        ]
        assert await store.get("lobby", 4) == Message("lobby", 4, "old", "from v2", LATER, "v2", "n1", guest=True)
    finally:
        await conn.close()
        await store.close()
