"""The history store on Redis: :class:`RedisHistory`, for many processes on many machines.

It implements :class:`chat.backends.base.HistoryStore`, beside
:class:`chat.backends.redis.broker.RedisBroker`; together they make every server
process that points at one Redis serve one chat. :func:`connect` makes the
client both share.

How a message travels (docs/scaling.md has the whole story):

1. The service appends it. Once per loop tick the store sends the tick's
   messages as one pipeline of ``append`` script calls, one round trip, and
   never more than one pipeline at a time, so a sender's messages keep their order.
2. The script (:data:`chat.backends.redis.scripts.APPEND`) runs atomically in
   Redis: it checks the ref against the idempotency key, INCRs the room's seq,
   XADDs the message to the room's stream under the ID ``<seq>-0`` (trimmed to
   ``history_max``) and PUBLISHes it on the room's channel. Seq order, storage
   and publication cannot disagree, and a retried ref never makes a second message.
3. Every process subscribed to the room's channel (those with members in it)
   gets it once and fans it out to its own sockets: the Redis cost is per
   message and per process, never per delivery. The sender's process gets it
   the same way, and the sender's acknowledgement goes out with it.

Reads (and the broker's claims and lookups) from many callers go through
:class:`chat.backends.redis.pipeline.Batch`: one pipeline per loop tick on one
pooled connection. The keys are listed in :mod:`chat.backends.redis.keys`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from chat.backends.base import Duplicate, StoreUnavailable, append_future
from chat.backends.redis import keys, scripts
from chat.backends.redis.connection import connect as connect
from chat.backends.redis.pipeline import RAISES, Batch, run_scripts, then
from chat.core.idempotency import WINDOW_S
from chat.core.model import Message

log = logging.getLogger(__name__)


def _message(room: str, entry: tuple[str, dict[str, str]]) -> Message:
    stream_id, f = entry
    return Message(room, int(stream_id.split("-", 1)[0]), f["n"], f["t"], int(f["ts"]), f["s"], f.get("r"))


class RedisHistory:
    """The history store on Redis streams: see the module docstring."""

    def __init__(self, client: aioredis.Redis, history_max: int = 10_000) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express.
        self._r: Any = client
        self._history_max = history_max
        self._append = client.register_script(scripts.APPEND)
        # Reads (and the broker's claims and lookups) of every caller, a pipeline per tick.
        self.batch = Batch(client)
        self._batch: list[tuple[Message, asyncio.Future[Message]]] = []
        self._inflight: asyncio.Task[None] | None = None
        self._closed = False

    def append(
        self, room: str, name: str, text: str, ts: int, session: str, ref: str | None
    ) -> asyncio.Future[Message]:
        future = append_future(self._closed)
        if self._closed:
            return future
        if not self._batch and self._inflight is None:
            asyncio.get_running_loop().call_soon(self._flush)
        # seq 0 until Redis hands one out.
        self._batch.append((Message(room, 0, name, text, ts, session, ref), future))
        return future

    def _flush(self) -> None:
        if self._batch and self._inflight is None:
            batch, self._batch = self._batch, []
            self._inflight = asyncio.ensure_future(self._commit(batch))
            self._inflight.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        # What was appended during the round trip goes as the next pipeline:
        # under load the batches grow by themselves.
        self._flush()

    async def _commit(self, batch: list[tuple[Message, asyncio.Future[Message]]]) -> None:
        try:
            await self._store(batch)
        except Exception:  # a bug must not stop the appends: log it; the batch is answered below
            log.exception("storing %d messages failed", len(batch))
        finally:
            # Every future of the batch is settled, whatever failed (a bug, a
            # cancellation), or its say would never get an answer. Whether the
            # pipeline ran is unknown: the sender retries with its ref.
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable("redis: the message may not have been stored"))

    async def _store(self, batch: list[tuple[Message, asyncio.Future[Message]]]) -> None:
        calls = [
            (
                self._append,
                [keys.seq(m.room), keys.log(m.room), keys.ROOMS, keys.ref(m.session, m.ref), keys.room_channel(m.room)],
                [
                    m.room,
                    m.name,
                    m.text,
                    m.ts,
                    m.session,
                    "1" if m.ref is not None else "0",
                    m.ref or "",
                    self._history_max,
                    int(WINDOW_S),
                ],
            )
            for m, _ in batch
        ]
        try:
            results = await run_scripts(self._r, calls)
        except RAISES as exc:
            # The pipeline may or may not have run: the sender hears
            # ``unavailable`` and retries with its ref, which the script dedupes.
            error = StoreUnavailable(f"redis: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (m, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(StoreUnavailable(f"redis: {result}"))
            elif int(result[0]) == 1:
                future.set_result(Message(m.room, int(result[1]), m.name, m.text, m.ts, m.session, m.ref))
            else:
                room, seq = str(result[1]).rsplit(" ", 1)
                try:
                    original = await self.get(room, int(seq))
                except StoreUnavailable as exc:
                    future.set_exception(exc)
                    continue
                if original is None:
                    future.set_exception(StoreUnavailable(f"the message for ref {m.ref!r} was trimmed"))
                else:
                    future.set_exception(Duplicate(original))

    async def drain(self) -> None:
        while self._batch or self._inflight is not None:
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
            else:
                self._flush()

    def _range(self, room: str, reverse: bool, low: str, high: str, count: int) -> asyncio.Future[list[Message]]:
        key = keys.log(room)
        if reverse:
            entries = self.batch.command(lambda pipe: pipe.xrevrange(key, high, low, count=count))
            return then(entries, lambda found: [_message(room, e) for e in reversed(found)])
        entries = self.batch.command(lambda pipe: pipe.xrange(key, low, high, count=count))
        return then(entries, lambda found: [_message(room, e) for e in found])

    # before, after and last_seq queue their command at the call, not at the
    # first await: reads asked for one after another go in one pipeline, in
    # the order asked, without a Task each (see ChatService._join).
    def before(self, room: str, seq: int | None, limit: int) -> asyncio.Future[list[Message]]:
        if seq is not None and seq <= 1:
            done: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
            done.set_result([])
            return done
        return self._range(room, True, "-", "+" if seq is None else f"{seq - 1}-0", limit)

    def after(self, room: str, seq: int, limit: int) -> asyncio.Future[list[Message]]:
        return self._range(room, False, f"{seq + 1}-0", "+", limit)

    async def get(self, room: str, seq: int) -> Message | None:
        if seq < 1:
            return None
        found = await self._range(room, False, f"{seq}-0", f"{seq}-0", 1)
        return found[0] if found else None

    def last_seq(self, room: str) -> asyncio.Future[int]:
        return then(self.batch.command(lambda pipe: pipe.get(keys.seq(room))), lambda seq: int(seq or 0))

    async def rooms(self) -> dict[str, int]:
        last: dict[str, str] = await self.batch.command(lambda pipe: pipe.hgetall(keys.ROOMS))
        return {room: int(seq) for room, seq in last.items()}

    async def recent_refs(self, since_ts: int) -> list[Message]:
        return []  # the append script checks refs in Redis itself, in every process

    async def close(self) -> None:
        self._closed = True
        await self.drain()
