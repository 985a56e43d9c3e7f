"""Copy a history kept in Redis streams into the SQL store: the move off Redis history.

Servers before issue 11 kept each room's history in Redis (``RedisHistory``,
now retired): a stream per room with IDs ``<seq>-0`` and fields ``n`` (name),
``t`` (text), ``ts``, ``s`` (session) and ``r`` (ref, when the say had one); a
counter per room, INCRed for each message; and a hash of every room's last
seq. The key builders are :func:`chat.backends.redis.keys.retired_log` and
friends. Run::

    python -m chat.backends.redis.export --redis redis://HOST:PORT/DB --db postgresql://USER@HOST/DB

``--db`` takes a PostgreSQL URL or a SQLite file, the same schema either way
(:mod:`chat.backends.schema`; an older database is migrated first). Every kept
message is copied with its seq, name, text, ts, session and ref; each ref gets
its ``refs`` row, so a client retrying a say it sent before the move gets the
original back; each room's ``rooms.last_seq`` is raised to the old counter,
which may be past the last kept message (the streams were trimmed, and a
seq is never handed out twice).

One transaction: a refused import leaves the database as it was. Running it
again changes nothing; a room that already holds a different message at a seq
the stream has is refused, naming the room and the seq (another chat's
history, or new servers that wrote to this database first). Redis is only read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chat.backends.base import SchemaTooNew
from chat.backends.factory import is_postgres
from chat.backends.redis import keys
from chat.backends.schema import migrate_sqlite
from chat.core.model import Message

# Stream entries read (and rows written) per round trip.
CHUNK = 1000


class Conflict(Exception):
    """The SQL store already has a different message at a seq the stream holds."""


@dataclass
class Summary:
    rooms: int = 0
    copied: int = 0  # messages written now
    present: int = 0  # messages the store already had, identical
    refs: int = 0  # refs rows written now

    def __str__(self) -> str:
        return (
            f"{self.rooms} rooms, {self.copied + self.present} messages:"
            f" {self.copied} copied, {self.present} already there; {self.refs} refs copied"
        )


def _same(a: Message, b: Message) -> bool:
    return (a.name, a.text, a.ts, a.session, a.ref) == (b.name, b.text, b.ts, b.session, b.ref)


def _entry(room: str, entry: tuple[str, dict[str, str]]) -> Message:
    stream_id, f = entry
    return Message(room, int(stream_id.split("-", 1)[0]), f["n"], f["t"], int(f["ts"]), f["s"], f.get("r"))


class Target(Protocol):
    """The SQL store's side, inside the import's one transaction."""

    async def existing(self, room: str, low: int, high: int) -> list[Message]: ...
    async def insert(self, messages: list[Message]) -> int:
        """Store ``messages`` and claim their refs (a ref already claimed stays
        with its first message); returns how many refs rows were written."""
        ...

    async def raise_last_seq(self, room: str, seq: int) -> None: ...


class SQLiteTarget:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def existing(self, room: str, low: int, high: int) -> list[Message]:
        rows = self._db.execute(
            "SELECT room, seq, name, text, ts, session, ref FROM messages WHERE room = ? AND seq BETWEEN ? AND ?",
            (room, low, high),
        )
        return [Message(*row) for row in rows]

    async def insert(self, messages: list[Message]) -> int:
        self._db.executemany(
            "INSERT INTO messages (room, seq, name, text, ts, session, ref) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref) for m in messages],
        )
        # Imported messages are searchable too (schema version 4: PostgreSQL's
        # search vector is generated; SQLite's FTS5 index is written here).
        keys = [(m.room, m.seq) for m in messages]
        self._db.executemany("INSERT INTO search_docs (room, seq) VALUES (?, ?)", keys)
        self._db.executemany(
            "INSERT INTO messages_fts (rowid, text) SELECT d.doc, m.text FROM search_docs d"
            " JOIN messages m ON m.room = d.room AND m.seq = d.seq WHERE d.room = ? AND d.seq = ?",
            keys,
        )
        before = self._db.total_changes
        self._db.executemany(
            "INSERT OR IGNORE INTO refs (session, ref, room, seq, ts) VALUES (?, ?, ?, ?, ?)",
            [(m.session, m.ref, m.room, m.seq, m.ts) for m in messages if m.ref is not None],
        )
        return self._db.total_changes - before

    async def raise_last_seq(self, room: str, seq: int) -> None:
        self._db.execute(
            # A new row is a public room titled by its name (schema version 3).
            "INSERT INTO rooms (room, last_seq, title) VALUES (?1, ?2, ?1)"
            " ON CONFLICT (room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            (room, seq),
        )


class PostgresTarget:
    def __init__(self, conn: Any) -> None:  # an asyncpg.Connection, in a transaction
        self._conn = conn

    async def existing(self, room: str, low: int, high: int) -> list[Message]:
        rows = await self._conn.fetch(
            "SELECT room, seq, name, text, ts, session, ref FROM messages WHERE room = $1 AND seq BETWEEN $2 AND $3",
            room,
            low,
            high,
        )
        return [Message(r["room"], r["seq"], r["name"], r["text"], r["ts"], r["session"], r["ref"]) for r in rows]

    async def insert(self, messages: list[Message]) -> int:
        columns = [[getattr(m, c) for m in messages] for c in ("room", "seq", "name", "text", "ts", "session", "ref")]
        await self._conn.execute(
            "INSERT INTO messages (room, seq, name, text, ts, session, ref)"
            " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[],"
            " $5::bigint[], $6::text[], $7::text[])",
            *columns,
        )
        with_ref = [m for m in messages if m.ref is not None]
        if not with_ref:
            return 0
        written = await self._conn.fetch(
            "INSERT INTO refs (session, ref, room, seq, ts)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])"
            " ON CONFLICT DO NOTHING RETURNING 1",
            *([getattr(m, c) for m in with_ref] for c in ("session", "ref", "room", "seq", "ts")),
        )
        return len(written)

    async def raise_last_seq(self, room: str, seq: int) -> None:
        await self._conn.execute(
            "INSERT INTO rooms AS r (room, last_seq, title) VALUES ($1, $2, $1)"
            " ON CONFLICT (room) DO UPDATE SET last_seq = greatest(r.last_seq, excluded.last_seq)",
            room,
            seq,
        )


async def stream_rooms(r: Any) -> list[str]:
    """Every room the old servers knew: in the rooms hash, or with a counter or a stream."""
    rooms: set[str] = set(await r.hkeys(keys.RETIRED_ROOMS))
    for prefix in (keys.RETIRED_SEQ, keys.RETIRED_LOG):
        async for key in r.scan_iter(match=prefix + "*", count=CHUNK):
            rooms.add(key[len(prefix) :])
    return sorted(rooms)


async def copy_room(r: Any, target: Target, room: str, summary: Summary) -> None:
    counter = int(await r.get(keys.retired_seq(room)) or 0)
    listed = int(await r.hget(keys.RETIRED_ROOMS, room) or 0)
    last = max(counter, listed)
    low = "-"
    while True:
        entries = await r.xrange(keys.retired_log(room), low, "+", count=CHUNK)
        if not entries:
            break
        messages = [_entry(room, e) for e in entries]
        have = {m.seq: m for m in await target.existing(room, messages[0].seq, messages[-1].seq)}
        for m in messages:
            if m.seq in have and not _same(m, have[m.seq]):
                raise Conflict(
                    f"room {room!r} already has a different message at seq {m.seq}"
                    f" ({have[m.seq].name}: {have[m.seq].text[:40]!r}; the stream has {m.name}: {m.text[:40]!r}):"
                    " nothing was imported. Import into an empty database, before new servers write to it."
                )
        new = [m for m in messages if m.seq not in have]
        if new:
            summary.refs += await target.insert(new)
        summary.copied += len(new)
        summary.present += len(messages) - len(new)
        last = max(last, messages[-1].seq)
        low = f"{messages[-1].seq + 1}-0"
    await target.raise_last_seq(room, last)
    summary.rooms += 1


async def copy_all(r: Any, target: Target) -> Summary:
    summary = Summary()
    for room in await stream_rooms(r):
        await copy_room(r, target, room, summary)
    return summary


async def export_to_sqlite(r: Any, path: str) -> Summary:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        migrate_sqlite(db, path)
        db.execute("BEGIN IMMEDIATE")
        try:
            summary = await copy_all(r, SQLiteTarget(db))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return summary
    finally:
        db.close()


async def export_to_postgres(r: Any, dsn: str) -> Summary:
    import asyncpg  # type: ignore[import-untyped]  # no stubs, no py.typed

    from chat.backends.postgres import migrate_postgres

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await migrate_postgres(pool)
        async with pool.acquire() as conn, conn.transaction():
            return await copy_all(r, PostgresTarget(conn))
    finally:
        await pool.close()


async def export(redis_url: str, db: str) -> Summary:
    """Copy every room's stream at ``redis_url`` into the SQL store ``db``. Raises :class:`Conflict`."""
    r: Any = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        if is_postgres(db):
            return await export_to_postgres(r, db)
        return await export_to_sqlite(r, db)
    finally:
        await r.aclose()


def _failures() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, RedisError, sqlite3.Error, SchemaTooNew]
    with contextlib.suppress(ImportError):
        import asyncpg

        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chat.backends.redis.export",
        description="Copy the history that servers before the SQL store kept in Redis streams"
        " into the --db store, with every seq and ref. Safe to run again; Redis is only read.",
    )
    parser.add_argument("--redis", required=True, help="the old servers' Redis: redis://HOST:PORT/DB")
    parser.add_argument("--db", required=True, help="postgresql://USER@HOST:PORT/DB, or a SQLite file")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(export(args.redis, args.db))
    except Conflict as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except _failures() as exc:  # unreachable, refused, too new: said plainly; a bug keeps its traceback
        print(f"failed, nothing was imported: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"imported: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
