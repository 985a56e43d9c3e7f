"""The durable history store: every room message, with its per-room seq.

:class:`HistoryStore` is the seam; :class:`SQLiteHistory` is the embedded
default. A message is committed before :meth:`HistoryStore.append` returns, so
whatever the service broadcasts afterwards survives a crash of the process.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Protocol

from chat.model import Message

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The store could not take or give a message (disk full, file unwritable...)."""


class HistoryStore(Protocol):
    async def append(self, room: str, name: str, text: str, ts: int, session: str, ref: str | None) -> Message:
        """Store a message under the room's next seq. Raises :class:`StoreUnavailable`."""
        ...

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        """Up to ``limit`` messages with seq < ``seq`` (the newest if None), ascending."""
        ...

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        """Up to ``limit`` messages with seq > ``seq``, the oldest first, ascending."""
        ...

    async def get(self, room: str, seq: int) -> Message | None: ...

    def last_seq(self, room: str) -> int:
        """The room's newest seq, 0 when it has none. Answers from memory."""
        ...

    def rooms(self) -> dict[str, int]:
        """Every room with history, with its last seq."""
        ...

    async def recent_refs(self, since_ts: int) -> list[Message]:
        """Messages sent with a ref at or after ``since_ts``, to rebuild the idempotency window."""
        ...

    async def close(self) -> None: ...


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


def _row(row: tuple[str, int, str, str, int, str, str | None]) -> Message:
    return Message(*row)


class SQLiteHistory:
    """History in one SQLite file (``":memory:"`` keeps nothing).

    WAL mode with ``synchronous=NORMAL``: a commit reaches the operating system
    before it returns, so it survives ``kill -9`` of the server (not a power cut,
    which would cost an fsync per commit). The calls run on the event loop:
    each is a few tens of microseconds against the page cache.
    """

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._last: dict[str, int] = dict(
            self._db.execute("SELECT room, MAX(seq) FROM messages GROUP BY room").fetchall()
        )

    async def append(self, room: str, name: str, text: str, ts: int, session: str, ref: str | None) -> Message:
        seq = self._last.get(room, 0) + 1
        try:
            self._db.execute(
                f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (room, seq, name, text, ts, session, ref),
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc
        # Only a committed message moves the seq on: a failed write leaves no gap.
        self._last[room] = seq
        return Message(room, seq, name, text, ts, session, ref)

    def _select(self, sql: str, args: tuple[object, ...]) -> list[Message]:
        try:
            return [_row(r) for r in self._db.execute(sql, args).fetchall()]
        except sqlite3.Error as exc:
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

    def last_seq(self, room: str) -> int:
        return self._last.get(room, 0)

    def rooms(self) -> dict[str, int]:
        return dict(self._last)

    async def recent_refs(self, since_ts: int) -> list[Message]:
        return self._select(
            f"SELECT {_COLUMNS} FROM messages WHERE ref IS NOT NULL AND ts >= ? ORDER BY ts",
            (since_ts,),
        )

    async def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            log.exception("closing the history database %s", self._path)
