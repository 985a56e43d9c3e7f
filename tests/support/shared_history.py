"""One history shared by several "processes" of a test, each with its own store view.

The Redis broker's tests need what PostgreSQL gives many processes: one
history, seqs assigned at commit, and a commit listener per process that hears
only that process's commits. :class:`SharedLog` is the database and
:class:`LogStore` one process's connection to it: group commit per loop tick,
like the SQL stores, in memory, so the broker's tests run without PostgreSQL
(the cluster tests run the real thing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chat.backends.base import Pending, StoreUnavailable, append_future, settle
from chat.core.model import Message

log = logging.getLogger(__name__)


class SharedLog:
    def __init__(self) -> None:
        self.rooms: dict[str, list[Message]] = {}
        self.refs: dict[tuple[str, str], Message] = {}
        self.down = False  # set to make every store view fail, as a database outage does


class LogStore:
    """One process's view of a :class:`SharedLog`: a HistoryStore with ``listen``."""

    def __init__(self, log: SharedLog) -> None:
        self._log = log
        self._batch: list[tuple[Message, asyncio.Future[Message]]] = []
        self._on_commit: Callable[[list[Message]], None] | None = None
        self._closed = False

    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None:
        self._on_commit = on_commit

    def append(
        self, room: str, name: str, text: str, ts: int, session: str, ref: str | None, *, guest: bool = False
    ) -> asyncio.Future[Message]:
        future = append_future(self._closed)
        if self._closed:
            return future
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._commit)
        self._batch.append((Message(room, 0, name, text, ts, session, ref, guest), future))
        return future

    def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if self._log.down:
            for _, future in batch:
                future.set_exception(StoreUnavailable("the database is down"))
            return
        stored: list[Pending] = []
        duplicates: list[Pending] = []
        for m, future in batch:
            original = self._log.refs.get((m.session, m.ref)) if m.ref is not None else None
            if original is not None:
                duplicates.append((original, future))
                continue
            messages = self._log.rooms.setdefault(m.room, [])
            message = Message(m.room, len(messages) + 1, m.name, m.text, m.ts, m.session, m.ref, m.guest)
            messages.append(message)
            if m.ref is not None:
                self._log.refs[(m.session, m.ref)] = message
            stored.append((message, future))
        settle(self._on_commit, stored, duplicates, log)

    def _read(self, room: str) -> list[Message]:
        if self._log.down:
            raise StoreUnavailable("the database is down")
        return self._log.rooms.get(room, [])

    @property
    def reachable(self) -> bool:
        return True  # an outage here shows as failing calls (``down``), as a pool that once connected

    async def drain(self) -> None:
        if self._batch:
            await asyncio.gather(*(f for _, f in self._batch), return_exceptions=True)

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        messages = self._read(room)
        end = len(messages) if seq is None else max(0, min(seq - 1, len(messages)))
        return messages[max(0, end - limit) : end]

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        return self._read(room)[seq : seq + limit]

    async def get(self, room: str, seq: int) -> Message | None:
        messages = self._read(room)
        return messages[seq - 1] if 1 <= seq <= len(messages) else None

    async def last_seq(self, room: str) -> int:
        return len(self._read(room))

    async def room_view(self, room: str, since: int | None, limit: int) -> tuple[int, list[Message]]:
        messages = self._read(room)
        if since is None:
            return len(messages), messages[-limit:]
        return len(messages), messages[since : since + limit]

    async def rooms(self) -> dict[str, int]:
        return {room: len(messages) for room, messages in self._log.rooms.items()}

    async def recent_refs(self, since_ts: int) -> list[Message]:
        return [m for m in self._log.refs.values() if m.ts >= since_ts]

    async def close(self) -> None:
        self._closed = True
        while self._batch:
            await self.drain()
