"""The schema is versioned: old databases migrate forward intact, newer ones are refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from chat.backends.base import Duplicate, SchemaTooNew
from chat.backends.postgres import PostgresHistory
from chat.backends.schema import VERSION
from chat.backends.sqlite import SQLiteHistory
from tests.backends.data.make_v1 import plan

V1 = Path(__file__).parent / "data" / "chat-v1.sqlite3"


@pytest.mark.gen_test
async def test_a_database_of_the_released_schema_migrates_with_every_message_intact(tmp_path):
    path = tmp_path / "chat.sqlite3"
    shutil.copy(V1, path)
    store = SQLiteHistory(str(path))
    expected: dict[str, list[tuple[str, str, int, str, str | None]]] = {}
    for room, name, text, ts, session, ref in plan():
        expected.setdefault(room, []).append((name, text, ts, session, ref))
    assert await store.rooms() == {room: len(rows) for room, rows in expected.items()}
    for room, rows in expected.items():
        stored = await store.after(room, 0, 10_000)
        assert [m.seq for m in stored] == list(range(1, len(rows) + 1))
        assert [(m.name, m.text, m.ts, m.session, m.ref) for m in stored] == rows
        assert all(m.guest for m in stored)  # sent under nicknames, before accounts (version 3)
    # New messages continue each room's seq, and an old ref is still a duplicate (of its first message).
    assert (await store.append("busy", "bob", "next", 2_000_000_000_000, "s9", None)).seq == 301
    assert (await store.append("日本語", "bob", "次", 2_000_000_000_000, "s9", None)).seq == 2
    with pytest.raises(Duplicate) as raised:
        await store.append("lobby", "alice", "retry", 2_000_000_000_000, "sa", "r1")
    assert (raised.value.message.seq, raised.value.message.text) == (1, "hello")
    await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == VERSION
    reopened = SQLiteHistory(str(path))  # already current: opening again changes nothing
    assert await reopened.last_seq("busy") == 301
    await reopened.close()


def test_a_sqlite_database_newer_than_the_server_is_refused(tmp_path):
    path = tmp_path / "chat.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.close()
    with pytest.raises(SchemaTooNew, match=f"version {VERSION + 1}, newer than this server's {VERSION}"):
        SQLiteHistory(str(path))


@pytest.mark.gen_test
async def test_postgres_migrates_an_empty_database_and_restarts_on_it_unchanged(postgres, postgres_dsn):
    first = PostgresHistory(postgres_dsn)
    await first.recent_refs(0)
    assert (await first.append("lobby", "bob", "hi", 1, "s", "r")).seq == 1
    await first.close()
    database = postgres_dsn.rsplit("/", 1)[1]
    assert postgres.psql("SELECT version FROM schema_version", database) == str(VERSION)
    again = PostgresHistory(postgres_dsn)
    await again.recent_refs(0)
    assert (await again.append("lobby", "bob", "more", 2, "s", None)).seq == 2
    await again.close()
    assert postgres.psql("SELECT count(*) FROM schema_version", database) == "1"


@pytest.mark.gen_test
async def test_a_postgres_database_newer_than_the_server_is_refused(postgres, postgres_dsn):
    database = postgres_dsn.rsplit("/", 1)[1]
    postgres.psql(
        f"CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES ({VERSION + 1})",
        database,
    )
    store = PostgresHistory(postgres_dsn)
    with pytest.raises(SchemaTooNew):
        await store.recent_refs(0)
    await store.close()
