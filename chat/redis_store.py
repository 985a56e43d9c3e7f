"""History, fan-out and presence on Redis, for many processes on many machines.

:class:`RedisHistory` implements :class:`chat.history.HistoryStore` and
:class:`RedisBroker` implements :class:`chat.broker.Broker`. Together they make
every server process that points at one Redis serve one chat.

How a message travels (docs/scaling.md has the whole story):

1. The service appends it. Once per loop tick the store sends the tick's
   messages as one pipeline of ``append`` script calls, one round trip, and
   never more than one pipeline at a time, so a sender's messages keep their order.
2. The script runs atomically in Redis: it checks the ref against the
   idempotency key, INCRs the room's seq, XADDs the message to the room's
   stream under the ID ``<seq>-0`` (trimmed to ``history_max``) and PUBLISHes
   it on the room's channel. Seq order, storage and publication cannot
   disagree, and a retried ref never makes a second message.
3. Every process subscribed to the room's channel (those with members in it)
   gets it once and fans it out to its own sockets: the Redis cost is per
   message and per process, never per delivery. The sender's process gets it
   the same way, and the sender's acknowledgement goes out with it.

Pub/sub loses what is published while a subscriber is disconnected, so each
process tracks the last seq it delivered per room (:class:`chat.sequencer.Sequencer`)
and reads what it missed from the stream after a reconnect or a gap.

Keys (all under ``chat:``; pick another DB number for another chat):

====================  =====================================================
``seq:{room}``        the room's last seq (INCR)
``log:{room}``        the room's history, a stream with IDs ``<seq>-0``
``rooms``             hash: room -> last seq
``ref:{session}:{ref}``  ``room seq`` of the message a ref made (expires)
``room:{room}``       pub/sub channel: messages, presence, typing
``ctl``               pub/sub channel: logouts
``procs``             set of live server processes
``alive:{proc}``      a process's heartbeat (expires)
``here:{proc}``       set of ``room<TAB>name`` a process has members for
``who:{room}``        hash: name -> number of processes where it is present
``active``            set of rooms with anyone present
``name:{key}``        the session holding a name (expires)
====================  =====================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from chat.history import Duplicate, StoreUnavailable, append_future
from chat.idempotency import WINDOW_S
from chat.model import Message

P = "chat:"
CTL = P + "ctl"
ROOM_CHANNEL = P + "room:"

# What a lost or refused connection raises; the callers answer ``unavailable``.
RAISES = (RedisError, OSError)

_APPEND = """
-- KEYS: seq, log, rooms, ref, channel
-- ARGV: room, name, text, ts, session, has_ref, ref, maxlen, ref_ttl
if ARGV[6] == '1' then
  local prev = redis.call('GET', KEYS[4])
  if prev then return {0, prev} end
end
local seq = redis.call('INCR', KEYS[1])
local id = seq .. '-0'
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], id,
             'n', ARGV[2], 't', ARGV[3], 'ts', ARGV[4], 's', ARGV[5], 'r', ARGV[7])
  redis.call('SET', KEYS[4], ARGV[1] .. ' ' .. seq, 'EX', ARGV[9])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], id,
             'n', ARGV[2], 't', ARGV[3], 'ts', ARGV[4], 's', ARGV[5])
end
redis.call('HSET', KEYS[3], ARGV[1], seq)
local ref = false
if ARGV[6] == '1' then ref = ARGV[7] end
redis.call('PUBLISH', KEYS[5], 'm' .. cjson.encode({seq, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ref}))
return {1, seq}
"""


async def query(command: Callable[[], Awaitable[Any]]) -> Any:
    """Run a command that is safe to repeat (a read, a refresh); StoreUnavailable if Redis fails.

    It runs once more when its pooled connection turns out to be dead, which
    is what the first command on each connection meets after Redis restarted.
    """
    try:
        return await command()
    except RedisConnectionError:
        pass
    except RAISES as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc
    try:
        return await command()
    except RAISES as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc


ScriptCall = tuple[AsyncScript, list[str], list[Any]]


async def run_scripts(client: Any, calls: list[ScriptCall]) -> list[Any]:
    """Run script calls in one pipeline: one round trip, results (or errors) in order.

    EVALSHA straight away: redis-py's own pipelined scripts ask SCRIPT EXISTS
    first, a second round trip per batch. A script Redis does not have (it
    restarted, or SCRIPT FLUSH) refuses every call of it without running any,
    so those calls are run again, in order, once the script is loaded.
    """
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for i in todo:
                script, keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            out = await pipe.execute(raise_on_error=False)
        refused = []
        for i, result in zip(todo, out, strict=True):
            if isinstance(result, NoScriptError) and attempt == 0:
                refused.append(i)
            else:
                results[i] = result
        if not refused:
            break
        for script in {calls[i][0] for i in refused}:
            await client.script_load(script.script)
        todo = refused
    return results


# Connections per process: commands wait for a free one rather than fail.
# A burst of joins needs a few; pub/sub holds one.
POOL_SIZE = 32


def connect(url: str) -> aioredis.Redis:
    """A client for ``url``. Commands are never retried by redis-py: a retried
    append could store a message twice; we answer ``unavailable`` instead and
    the client retries with its ref, which the append script makes safe."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=5.0,  # waiting for a free connection; then ``unavailable``
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        retry=Retry(NoBackoff(), 0),
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return client


def _message(room: str, entry: tuple[str, dict[str, str]]) -> Message:
    stream_id, f = entry
    return Message(room, int(stream_id.split("-", 1)[0]), f["n"], f["t"], int(f["ts"]), f["s"], f.get("r"))


class RedisHistory:
    """The history store on Redis streams: see the module docstring."""

    def __init__(self, client: aioredis.Redis, history_max: int = 10_000) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express.
        self._r: Any = client
        self._history_max = history_max
        self._append = client.register_script(_APPEND)
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
        calls = [
            (
                self._append,
                [P + "seq:" + m.room, P + "log:" + m.room, P + "rooms", _ref_key(m), ROOM_CHANNEL + m.room],
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

    async def _range(self, room: str, reverse: bool, low: str, high: str, count: int) -> list[Message]:
        key = P + "log:" + room
        if reverse:
            entries = await query(lambda: self._r.xrevrange(key, high, low, count=count))
            entries.reverse()
        else:
            entries = await query(lambda: self._r.xrange(key, low, high, count=count))
        return [_message(room, e) for e in entries]

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        if seq is not None and seq <= 1:
            return []
        return await self._range(room, True, "-", "+" if seq is None else f"{seq - 1}-0", limit)

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        return await self._range(room, False, f"{seq + 1}-0", "+", limit)

    async def get(self, room: str, seq: int) -> Message | None:
        if seq < 1:
            return None
        found = await self._range(room, False, f"{seq}-0", f"{seq}-0", 1)
        return found[0] if found else None

    async def last_seq(self, room: str) -> int:
        return int(await query(lambda: self._r.get(P + "seq:" + room)) or 0)

    async def rooms(self) -> dict[str, int]:
        return {room: int(seq) for room, seq in (await query(lambda: self._r.hgetall(P + "rooms"))).items()}

    async def recent_refs(self, since_ts: int) -> list[Message]:
        return []  # the append script checks refs in Redis itself, in every process

    async def close(self) -> None:
        self._closed = True
        await self.drain()


def _ref_key(m: Message) -> str:
    return f"{P}ref:{m.session}:{m.ref}" if m.ref is not None else P + "ref:-"
