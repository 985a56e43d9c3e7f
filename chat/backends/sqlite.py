"""The durable history in one SQLite file: the embedded default.

:class:`SQLiteHistory` implements :class:`chat.backends.base.HistoryStore`. The
future :meth:`HistoryStore.append` returns resolves once the
message is committed, so whatever the service broadcasts afterwards survives a
crash of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from chat.backends.base import StoreUnavailable, append_future
from chat.core.model import Message

log = logging.getLogger(__name__)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session TEXT NOT NULL,
    ref TEXT,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_refs ON messages (ts) WHERE ref IS NOT NULL;
"""

_COLUMNS = "room, seq, name, text, ts, session, ref"
_INSERT = f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"


def _row(row: tuple[str, int, str, str, int, str, str | None]) -> Message:
    return Message(*row)


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
    """

    def __init__(self, path: str) -> None:
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
        self._db.executescript(_SCHEMA)
        # The newest committed seq per room, and the newest handed out.
        self._last: dict[str, int] = dict(
            self._db.execute("SELECT room, MAX(seq) FROM messages GROUP BY room").fetchall()
        )
        self._next: dict[str, int] = dict(self._last)
        self._batch: list[tuple[Message, asyncio.Future[Message]]] = []
        self._closed = False
        self._on_commit: Callable[[list[Message]], None] | None = None

    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None:
        """Call ``on_commit`` with each committed batch, synchronously, as it commits
        (LocalBroker.deliver: one process needs no pub/sub).

        Synchronously, so that nothing can observe a message as committed
        (``last_seq``, a history read) before ``on_commit`` has broadcast it:
        a member joining in between would get it twice.
        """
        self._on_commit = on_commit

    def append(
        self, room: str, name: str, text: str, ts: int, session: str, ref: str | None
    ) -> asyncio.Future[Message]:
        future = append_future(self._closed)
        if self._closed:
            return future
        seq = self._next.get(room, 0) + 1
        self._next[room] = seq
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._commit)
        self._batch.append((Message(room, seq, name, text, ts, session, ref), future))
        return future

    def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        rows = [(m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref) for m, _ in batch]
        try:
            self._db.execute("BEGIN")
            self._db.executemany(_INSERT, rows)
            self._db.execute("COMMIT")
        except Exception as exc:  # every future of the batch must be settled, whatever failed
            if not isinstance(exc, sqlite3.Error):
                log.exception("committing %d messages failed", len(rows))
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            # Nothing of the batch is stored: hand its seqs out again, so a
            # failed write leaves no gap. The commit runs on the loop, so
            # nothing was appended meanwhile and the batch holds the newest seqs.
            self._next = dict(self._last)
            error = StoreUnavailable(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        messages = [m for m, _ in batch]
        for message in messages:
            self._last[message.room] = message.seq
        if self._on_commit is not None:
            try:
                self._on_commit(messages)
            except Exception:  # the listener's bug must not leave the batch's futures pending
                log.exception("the commit listener failed")
        for message, future in batch:
            if not future.done():
                future.set_result(message)

    async def drain(self) -> None:
        if self._batch:
            await asyncio.gather(*(f for _, f in self._batch), return_exceptions=True)

    def _select(self, sql: str, args: tuple[object, ...]) -> list[Message]:
        try:
            return [_row(r) for r in self._db.execute(sql, args).fetchall()]
        except (sqlite3.Error, OverflowError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        bound = seq if seq is not None else self._last.get(room, 0) + 1
        rows = self._select(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (room, bound, limit),
        )
        rows.reverse()
        return rows

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        return self._select(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
            (room, seq, limit),
        )

    async def get(self, room: str, seq: int) -> Message | None:
        rows = self._select(f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND seq = ?", (room, seq))
        return rows[0] if rows else None

    async def last_seq(self, room: str) -> int:
        return self._last.get(room, 0)

    async def rooms(self) -> dict[str, int]:
        return dict(self._last)

    async def recent_refs(self, since_ts: int) -> list[Message]:
        return self._select(
            f"SELECT {_COLUMNS} FROM messages WHERE ref IS NOT NULL AND ts >= ? ORDER BY ts",
            (since_ts,),
        )

    async def close(self) -> None:
        # Refuse new messages first, then commit every batch already taken:
        # nothing appended before the close is left uncommitted, and nothing
        # can be scheduled against a closed database.
        self._closed = True
        while self._batch:
            await self.drain()
        try:
            self._db.close()
        except sqlite3.Error:
            log.exception("closing the history database %s", self._path)
