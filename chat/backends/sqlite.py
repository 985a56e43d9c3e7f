"""The durable history in one SQLite file: the embedded default.

:class:`SQLiteHistory` implements :class:`chat.backends.base.HistoryStore`. The
future :meth:`HistoryStore.append` returns resolves once the
message is committed, so whatever the service broadcasts afterwards survives a
crash of the process. :meth:`SQLiteHistory.directory` gives the accounts,
rooms and memberships kept in the same file
(:class:`chat.backends.directory_sqlite.SQLiteDirectory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from chat.backends import events_sqlite as events
from chat.backends.base import Pending, StoreUnavailable, append_future, settle
from chat.backends.directory_sqlite import SQLiteDirectory
from chat.backends.events_sql import COLUMNS
from chat.backends.retention import CHUNK, Retention
from chat.backends.schema import migrate_sqlite
from chat.core.model import EventKind, Message, ReadState, SearchHit

log = logging.getLogger(__name__)
_T = TypeVar("_T")
# FTS5's secure-delete option exists from SQLite 3.42.
FTS5_SECURE_DELETE = sqlite3.sqlite_version_info >= (3, 42)


# A room's first message makes its row, if nothing did before (a public room titled by its name).
_BUMP = (
    "INSERT INTO rooms (room, last_seq, title, created) VALUES (?1, ?2, ?1, ?3)"
    " ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq"
)
_REF = "INSERT INTO refs (session, ref, room, seq, ts) VALUES (?, ?, ?, ?, ?)"
_ORIGINAL = (
    f"SELECT {', '.join('m.' + c.strip() for c in COLUMNS.split(','))} FROM refs r"
    " JOIN messages m ON m.room = r.room AND m.seq = r.seq WHERE r.session = ? AND r.ref = ?"
)
_row = events.row_message


class SQLiteHistory:
    """History in one SQLite file (``":memory:"`` keeps nothing).

    WAL mode with ``synchronous=NORMAL``: a commit reaches the operating system
    before it returns, so it survives ``kill -9`` of the server (not a power cut,
    which would cost an fsync per commit). The calls run on the event loop:
    each is a few tens of microseconds against the page cache.

    Group commit: the messages appended during one event-loop tick are written
    in one transaction right after it. That keeps the cost per message low
    under load, and it hands the service a whole batch of messages to publish
    at once, which the fan-out turns into one write per member.

    Seqs are handed out as the batch commits, from the ``rooms`` counters
    (:mod:`chat.backends.schema`): one process writes the file, so the
    counters it read at open stay right. A ref already in ``refs`` (a retry
    older than the service's idempotency window) is answered with
    :class:`Duplicate` and takes no seq.

    Opening migrates the file to the current schema, or raises
    :class:`chat.backends.base.SchemaTooNew`.
    """

    def __init__(self, path: str, retention_days: float | None = None, wall: Callable[[], float] = time.time) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        # A commit that finds the file locked by another process waits at most
        # this long (sqlite's busy timeout): the commit runs on the event loop,
        # so waiting longer would stall every socket; failing answers
        # ``unavailable`` and the client retries.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0.1)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # A deletion is real: the pages it frees are zeroed, not left holding
        # the text until they are reused (docs/operations.md).
        self._db.execute("PRAGMA secure_delete = ON")
        # A migration may wait longer for the lock than a commit: nothing is served yet.
        self._db.execute("PRAGMA busy_timeout = 10000")
        migrate_sqlite(self._db, path)
        if FTS5_SECURE_DELETE:
            # The search index drops a deleted message's words at once instead of
            # keeping them until its segments merge (docs/operations.md).
            self._db.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1)")
        self._db.execute("PRAGMA busy_timeout = 100")
        # The directory's references (memberships to accounts and rooms...) hold.
        self._db.execute("PRAGMA foreign_keys = ON")
        # The newest committed seq per room: the counters, not MAX(seq), which
        # retention may have lowered. A room made without a message yet has none.
        self._last: dict[str, int] = dict(
            self._db.execute("SELECT room, last_seq FROM rooms WHERE last_seq > 0").fetchall()
        )
        self._batch: list[Pending] = []
        self._closed = False
        self._on_commit: Callable[[list[Message]], None] | None = None
        self.retention = Retention(retention_days, self.expire, wall)

    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None:
        """Call ``on_commit`` with each committed batch, synchronously, as it commits
        (LocalBroker.deliver: one process needs no pub/sub).

        Synchronously, so that nothing can observe a message as committed
        (``last_seq``, a history read) before ``on_commit`` has broadcast it:
        a member joining in between would get it twice.
        """
        self._on_commit = on_commit

    def directory(self) -> SQLiteDirectory:
        """Accounts, rooms and memberships, in this file, on this connection."""
        return SQLiteDirectory(self._db)

    def append(
        self,
        room: str,
        name: str,
        text: str,
        ts: int,
        session: str,
        ref: str | None,
        *,
        guest: bool = False,
        kind: EventKind = EventKind.MESSAGE,
        target: int | None = None,
        emoji: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> asyncio.Future[Message]:
        future = append_future(self._closed)
        if self._closed:
            return future
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._commit)
        # seq 0 until the commit hands one out.
        event = Message(
            room, 0, name, text, ts, session, ref, guest, kind=kind, target=target, emoji=emoji, mentions=mentions
        )
        self._batch.append((event, future))
        return future

    def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            self._db.execute("BEGIN")
            stored, duplicates = self._store(batch)
            self._db.execute("COMMIT")
        except Exception as exc:  # every future of the batch must be settled, whatever failed
            if not isinstance(exc, sqlite3.Error):
                log.exception("committing %d messages failed", len(batch))
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            # Nothing of the batch is stored, and the counters in memory moved
            # only in _store's copy: the seqs are handed out again, no gap.
            error = StoreUnavailable(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for message, _ in stored:
            self._last[message.room] = message.seq
        settle(self._on_commit, stored, duplicates, log)

    def _store(self, batch: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """Write ``batch`` inside the open transaction: (stored, duplicates with their original)."""
        last: dict[str, int] = {}
        first_ts: dict[str, int] = {}
        stored: list[Pending] = []
        duplicates: list[Pending] = []
        claimed: dict[tuple[str, str], Message] = {}
        for m, future in batch:
            if m.ref is not None:
                key = (m.session, m.ref)
                original = claimed.get(key)
                if original is None:
                    found = self._db.execute(_ORIGINAL, key).fetchone()
                    original = _row(found) if found else None
                if original is not None:
                    duplicates.append((original, future))
                    continue
            seq = last.get(m.room, self._last.get(m.room, 0)) + 1
            last[m.room] = seq
            first_ts.setdefault(m.room, m.ts)
            # Each event with its side effects, in order: one sees those before it.
            message = events.store_event(self._db, replace(m, seq=seq))
            if m.ref is not None:
                claimed[(m.session, m.ref)] = message
            stored.append((message, future))
        self._db.executemany(_BUMP, [(room, seq, first_ts[room]) for room, seq in last.items()])
        self._db.executemany(_REF, [(m.session, m.ref, m.room, m.seq, m.ts) for m in claimed.values()])
        return stored, duplicates

    async def expire(self, cutoff_ms: int) -> int:
        """Delete messages (and their refs) older than ``cutoff_ms``, a chunk per transaction; returns how many."""
        deleted = 0
        while True:
            try:
                self._db.execute("BEGIN")
                n = events.expire_events(self._db, cutoff_ms, CHUNK)
                # The refs of exactly the messages gone, in the same transaction: a ref
                # without its message would make a retry of it fail the whole batch.
                self._db.execute(
                    "DELETE FROM refs WHERE ts < ? AND NOT EXISTS"
                    " (SELECT 1 FROM messages m WHERE m.room = refs.room AND m.seq = refs.seq)",
                    (cutoff_ms,),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc
            deleted += n
            if n < CHUNK:
                return deleted
            await asyncio.sleep(0)  # let the appends and reads of this tick run between chunks

    @property
    def reachable(self) -> bool:
        return True  # a file in this process; a failing write shows as an outage instead

    async def drain(self) -> None:
        if self._batch:
            await asyncio.gather(*(f for _, f in self._batch), return_exceptions=True)

    def _select(self, sql: str, args: tuple[object, ...], room: str | None = None) -> list[Message]:
        """The rows of ``sql``; of ``room``: with their reactions folded in."""
        try:
            rows = [_row(r) for r in self._db.execute(sql, args).fetchall()]
            return rows if room is None else events.fold_reactions(self._db, room, rows)
        except (sqlite3.Error, OverflowError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        bound = seq if seq is not None else self._last.get(room, 0) + 1
        rows = self._select(
            f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq < ? AND kind = 'message' ORDER BY seq DESC LIMIT ?",
            (room, bound, limit),
            room,
        )
        rows.reverse()
        return rows

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        return self._select(
            f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
            (room, seq, limit),
            room,
        )

    async def get(self, room: str, seq: int) -> Message | None:
        rows = self._select(f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq = ?", (room, seq), room)
        return rows[0] if rows else None

    def _call(self, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except (sqlite3.Error, OverflowError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def search(self, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]:
        return self._call(lambda: events.search(self._db, query, rooms, before, limit))

    async def set_read(self, account: int, room: str, seq: int) -> int:
        return self._call(lambda: events.set_read(self._db, account, room, seq, self._last.get(room, 0)))

    async def read_state(self, account: int, name: str, rooms: list[str]) -> dict[str, ReadState]:
        return self._call(lambda: events.read_state(self._db, account, name, rooms))

    async def last_seq(self, room: str) -> int:
        return self._last.get(room, 0)

    async def room_view(self, room: str, since: int | None, limit: int) -> tuple[int, list[Message]]:
        # No await yields in between: the counter and the rows are one snapshot.
        last = self._last.get(room, 0)
        if since is None:
            return last, await self.before(room, last + 1, limit)
        return last, await self.after(room, since, limit)

    async def rooms(self) -> dict[str, int]:
        return dict(self._last)

    async def recent_refs(self, since_ts: int) -> list[Message]:
        # The service calls this once as it starts: the retention passes start with it.
        self.retention.start()
        return self._select(
            f"SELECT {COLUMNS} FROM messages WHERE ref IS NOT NULL AND ts >= ? ORDER BY ts",
            (since_ts,),
        )

    async def close(self) -> None:
        # Refuse new messages first, then commit every batch already taken:
        # nothing appended before the close is left uncommitted, and nothing
        # can be scheduled against a closed database.
        self._closed = True
        await self.retention.close()
        while self._batch:
            await self.drain()
        try:
            self._db.close()
        except sqlite3.Error:
            log.exception("closing the history database %s", self._path)
