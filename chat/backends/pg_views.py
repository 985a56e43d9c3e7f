"""Fresh joins' room views on a shared PostgreSQL, many in one statement.

A member joining a room afresh is sent the room's last seq and its newest
messages (chat.core.catchup). Under ``--workers`` each process reads that from
the database, and in a join storm one round trip per join was the largest
single cost of a join after the handshake itself (issue 9's profile: 12% of
the workers' CPU, and as much again in PostgreSQL's backends). Here the views
asked for while one statement is in flight go together in the next one, as
:class:`chat.backends.redis.pipeline.Batch` does for Redis: a lone join costs
one round trip as before, and under load the statements grow by themselves,
with no timer and no added wait.

Each statement reads every room it names in one snapshot, as the single
statement did: a room's counter and its messages up to that counter. A view
asked for after a statement was sent never rides on it, so it is never older
than the caller's subscription to the room (what catchup relies on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chat.backends.base import StoreUnavailable
from chat.backends.events_postgres import READ
from chat.backends.events_postgres import message as read_row
from chat.core.model import Message

log = logging.getLogger(__name__)

# Rooms read in one statement at most; what is left goes in the next.
VIEWS_MAX = 200

View = tuple[int, list[Message]]
Fetch = Callable[..., Awaitable[list[Any]]]

VIEWS_SQL = (
    "SELECT q.i, l.s AS last_seq, m.*"
    " FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS q(room, lim, i)"
    " CROSS JOIN LATERAL (SELECT COALESCE((SELECT last_seq FROM rooms WHERE room = q.room), 0) AS s) l"
    f" LEFT JOIN LATERAL (SELECT {READ} FROM messages m WHERE m.room = q.room AND m.seq <= l.s"
    " AND m.kind = 'message' ORDER BY m.seq DESC LIMIT q.lim) m ON true"
    " ORDER BY q.i, m.seq"
)


class RoomViews:
    """``read(room, limit)``: the room's last seq and its newest ``limit`` messages, read in batches."""

    def __init__(self, fetch: Fetch, most: int = VIEWS_MAX) -> None:
        self._fetch = fetch  # raises StoreUnavailable
        self._most = most
        self._queue: dict[tuple[str, int], list[asyncio.Future[View]]] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._scheduled = False
        self.statements = 0  # sent so far: what the tests count

    def read(self, room: str, limit: int) -> asyncio.Future[View]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[View] = loop.create_future()
        self._queue.setdefault((room, limit), []).append(future)
        if not self._scheduled and self._inflight is None:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight is not None or not self._queue:
            return
        keys = list(self._queue)[: self._most]
        batch = {key: self._queue.pop(key) for key in keys}
        self._inflight = asyncio.ensure_future(self._send(batch))
        self._inflight.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("reading room views failed", exc_info=exc)  # its callers were answered unavailable
        self._flush()

    async def _send(self, batch: dict[tuple[str, int], list[asyncio.Future[View]]]) -> None:
        keys = [key for key, waiting in batch.items() if any(not f.done() for f in waiting)]
        try:
            if keys:
                self.statements += 1
                rows = await self._fetch(VIEWS_SQL, [room for room, _ in keys], [limit for _, limit in keys])
                views: dict[int, View] = {}
                for row in rows:
                    last, messages = views.setdefault(int(row["i"]) - 1, (int(row["last_seq"]), []))
                    if row["seq"] is not None:
                        messages.append(read_row(row))
                for i, key in enumerate(keys):
                    last, messages = views.get(i, (0, []))
                    for future in batch[key]:
                        if not future.done():
                            future.set_result((last, list(messages)))
        except StoreUnavailable as exc:
            for waiting in batch.values():
                for future in waiting:
                    if not future.done():
                        future.set_exception(StoreUnavailable(str(exc)))
        finally:
            # Anything else (a bug, the loop closing under us): every caller still gets an answer.
            for waiting in batch.values():
                for future in waiting:
                    if not future.done():
                        future.set_exception(StoreUnavailable("postgresql: the room view was not read"))
