"""The move off Redis history: streams written as the retired append script wrote
them are copied into the SQL store (PostgreSQL and SQLite) with every seq and ref."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from chat.backends.base import Duplicate, HistoryStore
from chat.backends.postgres import PostgresHistory
from chat.backends.redis import keys
from chat.backends.redis.export import CHUNK, Conflict, Summary, export, main
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Message, RoomInfo

# lobby: more than a chunk, its head trimmed away (seqs 1-3 gone). dev: the
# counter past its last kept message. Every third message has a ref.
LOBBY = range(4, CHUNK + 504)
DEV = range(1, 4)
COUNTERS = {"lobby": LOBBY[-1], "dev": 5}


def message(room: str, seq: int) -> Message:
    ref = f"r{seq}" if seq % 3 == 0 else None
    # Sent under a nickname, before accounts: stored as a guest's (messages.guest's default).
    text = f"{room} message {seq} ✓"
    return Message(room, seq, f"user{seq % 7}", text, 1_700_000_000_000 + seq, f"s{seq % 5}", ref, guest=True)


EXPECTED = {"lobby": [message("lobby", s) for s in LOBBY], "dev": [message("dev", s) for s in DEV]}
REFS = [(m.session, m.ref, m.room, m.seq, m.ts) for room in sorted(EXPECTED) for m in EXPECTED[room] if m.ref]


def write_streams(url: str) -> None:
    """The keys as the retired append script left them: XADD under ``<seq>-0``, the INCR counter, the rooms hash."""
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        pipe = r.pipeline(transaction=False)
        for room, messages in EXPECTED.items():
            for m in messages:
                fields: dict[Any, Any] = {"n": m.name, "t": m.text, "ts": str(m.ts), "s": m.session}
                if m.ref is not None:
                    fields["r"] = m.ref
                    pipe.set(f"{keys.P}ref:{m.session}:{m.ref}", f"{room} {m.seq}", ex=600)
                pipe.xadd(keys.retired_log(room), fields, id=f"{m.seq}-0")
            pipe.set(keys.retired_seq(room), COUNTERS[room])
            pipe.hset(keys.RETIRED_ROOMS, room, COUNTERS[room])
        pipe.execute()
    finally:
        r.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return dsn
    return str(tmp_path / "chat.sqlite3")


def open_store(db: str) -> HistoryStore:
    return PostgresHistory(db) if db.startswith("postgresql://") else SQLiteHistory(db)


async def with_store(db: str, use: Callable[[HistoryStore], Any]) -> Any:
    store = open_store(db)
    try:
        await store.recent_refs(0)  # connects (and, on PostgreSQL, migrates)
        result = use(store)
        return await result if asyncio.iscoroutine(result) else result
    finally:
        await store.close()


async def everything(store: HistoryStore) -> dict[str, Any]:
    return {
        "rooms": await store.rooms(),
        "messages": {room: await store.after(room, 0, 10 * CHUNK) for room in EXPECTED},
    }


def test_every_message_seq_and_ref_is_copied_and_a_second_run_changes_nothing(redis_url: str, db: str) -> None:
    write_streams(redis_url)
    total = len(LOBBY) + len(DEV)
    assert asyncio.run(export(redis_url, db)) == Summary(rooms=2, copied=total, present=0, refs=len(REFS))
    before = asyncio.run(with_store(db, everything))
    assert before == {"rooms": COUNTERS, "messages": EXPECTED}

    assert asyncio.run(export(redis_url, db)) == Summary(rooms=2, copied=0, present=total, refs=0)
    assert asyncio.run(with_store(db, everything)) == before
    # The rooms of that time were all public, titled by their names.
    assert [(r.room, r.visibility, r.title) for r in asyncio.run(with_store(db, public_rooms))] == [
        ("dev", "public", "dev"),
        ("lobby", "public", "lobby"),
    ]


async def public_rooms(store: HistoryStore) -> list[RoomInfo]:
    assert isinstance(store, SQLiteHistory | PostgresHistory)
    return await store.directory().public_rooms()


def test_after_the_import_retried_refs_are_duplicates_and_seqs_continue(redis_url: str, db: str) -> None:
    write_streams(redis_url)
    asyncio.run(export(redis_url, db))

    async def use(store: HistoryStore) -> None:
        original = message("lobby", 3 * 100)
        retried = store.append("lobby", original.name, "retried", 1, original.session, original.ref)
        with pytest.raises(Duplicate) as dup:
            await retried
        assert dup.value.message == original
        # A new say continues each room after the old counter, never reusing a seq.
        fresh = [await store.append(room, "eve", "after the move", 2, "s-new", None) for room in ("lobby", "dev")]
        assert [(m.room, m.seq) for m in fresh] == [("lobby", COUNTERS["lobby"] + 1), ("dev", COUNTERS["dev"] + 1)]
        # The imported messages are in the search index (schema version 4).
        hits = await store.search("message 2", ["dev", "lobby"], None, 5)
        assert [(h.room, h.seq) for h in hits] == [("dev", 2)]

    asyncio.run(with_store(db, use))


def test_a_room_with_other_messages_at_those_seqs_is_refused_and_nothing_is_imported(
    redis_url: str, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_streams(redis_url)

    async def other_chat(store: HistoryStore) -> None:
        for i in range(2):  # dev 1 and 2, not the stream's
            await store.append("dev", "mallory", f"another chat {i}", 5, "s-other", None)

    asyncio.run(with_store(db, other_chat))
    with pytest.raises(Conflict, match="room 'dev' already has a different message at seq 1"):
        asyncio.run(export(redis_url, db))
    found = asyncio.run(with_store(db, everything))
    assert found["rooms"] == {"dev": 2}  # lobby, which has no conflict, was not imported either
    assert main(["--redis", redis_url, "--db", db]) == 1
    assert "refused: room 'dev'" in capsys.readouterr().err


def test_the_command_prints_a_summary(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_streams(redis_url)
    path = tmp_path / "chat.sqlite3"
    assert main(["--redis", redis_url, "--db", str(path)]) == 0
    out = capsys.readouterr().out
    total, refs = len(LOBBY) + len(DEV), len(REFS)
    assert out == f"imported: 2 rooms, {total} messages: {total} copied, 0 already there; {refs} refs copied\n"
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT session, ref, room, seq, ts FROM refs ORDER BY room, seq").fetchall() == REFS
    finally:
        db.close()


def test_a_database_newer_than_the_command_is_refused_plainly(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_streams(redis_url)
    path = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    assert main(["--redis", redis_url, "--db", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("failed, nothing was imported: SchemaTooNew: ")
    assert "version 99" in err
