"""History, fan-out and presence on Redis, for many processes on many machines.

:class:`RedisHistory` implements :class:`chat.backends.sqlite.HistoryStore` and
:class:`RedisBroker` implements :class:`chat.backends.memory.Broker`. Together they make
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

Reads, name claims and the like from many callers (a storm of joins) go
through :class:`Batch`: one pipeline per loop tick on one pooled connection, so
callers queue there instead of each waiting for a connection of its own.

Pub/sub loses what is published while a subscriber is disconnected, so each
process tracks the last seq it delivered per room (:class:`chat.core.sequencer.Sequencer`)
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
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.backends.base import Duplicate, StoreUnavailable, append_future
from chat.backends.redis import keys
from chat.core.idempotency import WINDOW_S
from chat.core.model import Message

log = logging.getLogger(__name__)

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
# One command for a pipeline: the script it runs (None for a plain command),
# and what puts it on the pipeline.
Op = tuple[AsyncScript | None, Callable[[Any], object]]


def script_op(script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Op:
    """A script call as a pipeline command: EVALSHA, loaded again if Redis lost it."""
    return script, lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args)


async def run_pipeline(client: Any, ops: Sequence[Op]) -> list[Any]:
    """Run ``ops`` in one pipeline: one round trip, results (or errors) in order.

    Scripts go as EVALSHA straight away: redis-py's own pipelined scripts ask
    SCRIPT EXISTS first, a second round trip per batch. A script Redis does not
    have (it restarted, or SCRIPT FLUSH) refuses every call of it without
    running any, so those calls are run again, in order, once it is loaded.
    """
    results: list[Any] = [None] * len(ops)
    todo = list(range(len(ops)))
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for i in todo:
                ops[i][1](pipe)
            out = await pipe.execute(raise_on_error=False)
        refused = []
        for i, result in zip(todo, out, strict=True):
            if isinstance(result, NoScriptError) and attempt == 0 and ops[i][0] is not None:
                refused.append(i)
            else:
                results[i] = result
        if not refused:
            break
        for script in {ops[i][0] for i in refused}:
            if script is not None:
                await client.script_load(script.script)
        todo = refused
    return results


async def run_scripts(client: Any, calls: list[ScriptCall]) -> list[Any]:
    """Run script calls in one pipeline (see :func:`run_pipeline`)."""
    return await run_pipeline(client, [script_op(*call) for call in calls])


# Connections per process. Commands of many callers share pipelines (Batch,
# the append and presence queues), so a process needs only a few at a time,
# whatever the number of sockets; pub/sub holds one more.
POOL_SIZE = 32
# How long a command waits for a free pooled connection before it fails. Each
# holder keeps its connection for one round trip, which fails after
# SOCKET_TIMEOUT_S if Redis stops answering: a wait this long means Redis is
# gone, never merely that the pool is busy.
POOL_WAIT_S = 60.0
# A connection not made, or a reply not read, within these has failed: Redis is
# not answering. They are timers on the event loop, so they also run while a
# saturated process is busy with other work (a storm of handshakes on a shared
# core can hold the loop for seconds): tighter ones turn a busy process into an
# apparent Redis outage, refusing joins and closing new sockets with 1013.
SOCKET_CONNECT_TIMEOUT_S = 10.0
SOCKET_TIMEOUT_S = 10.0
# Commands sent in one pipeline at most: bounds one round trip's work and the
# reply a process parses in one go. What is left goes in the next pipeline.
BATCH_MAX = 1000


def connect(url: str, *, pool_size: int = POOL_SIZE, pool_wait: float = POOL_WAIT_S) -> aioredis.Redis:
    """A client for ``url``. Commands are never retried by redis-py: a retried
    append could store a message twice; we answer ``unavailable`` instead and
    the client retries with its ref, which the append script makes safe.

    A command that finds every pooled connection busy waits for one (up to
    ``pool_wait``): redis-py's BlockingConnectionPool raises ConnectionError
    "No connection available." only once that wait is over.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_wait,
        decode_responses=True,
        socket_connect_timeout=SOCKET_CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return client


class Batch:
    """Commands of many callers, sent as one pipeline per loop tick on one pooled connection.

    For commands that are safe to repeat (reads, name claims, ephemeral
    publishes): a pipeline whose connection turns out dead is sent once more,
    as :func:`query` does. One pipeline is in flight at a time and what is
    queued meanwhile goes next, so under load the pipelines grow by themselves:
    a storm of joins costs a few round trips on one connection, and no caller
    ever waits for a pooled connection of its own.
    """

    def __init__(self, client: Any, limit: int = BATCH_MAX) -> None:
        self._r = client
        self._limit = limit
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._inflight: asyncio.Task[None] | None = None
        self._scheduled = False

    def add(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the future gets its reply, or StoreUnavailable if Redis failed it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((op, future))
        if not self._scheduled and self._inflight is None:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def command(self, add: Callable[[Any], object]) -> asyncio.Future[Any]:
        """Queue a plain command: ``add`` puts it on the pipeline (``lambda pipe: pipe.get(key)``)."""
        return self.add((None, add))

    def script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        return self.add(script_op(script, keys, args))

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight is not None or not self._queue:
            return
        batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
        self._inflight = asyncio.ensure_future(self._send(batch))
        self._inflight.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        self._flush()

    async def _send(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        live = [(op, future) for op, future in batch if not future.done()]  # callers that gave up are left out
        try:
            await self._answer(live)
        finally:
            # Whatever failed, or the loop closing under us: every caller gets an answer.
            for _, future in live:
                if not future.done():
                    future.set_exception(StoreUnavailable("redis: the command was not answered"))

    async def _answer(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        ops = [op for op, _ in batch]
        try:
            try:
                results = await run_pipeline(self._r, ops)
            except (RedisConnectionError, RedisTimeoutError):
                # A pooled connection that died with a restarted Redis, or a
                # reply late: these commands are safe to repeat, so once more.
                results = await run_pipeline(self._r, ops)
        except RAISES as exc:
            results = [exc] * len(ops)
        except Exception as exc:  # a bug must not end the batching for good: log it, fail this batch
            log.exception("a redis pipeline of %d commands failed", len(ops))
            results = [exc] * len(ops)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(StoreUnavailable(f"redis: {result}"))
            else:
                future.set_result(result)


T = TypeVar("T")


def then(source: asyncio.Future[Any], convert: Callable[[Any], T]) -> asyncio.Future[T]:
    """A future of ``convert(source's result)``, or of its exception: a Task's work without a Task."""
    out: asyncio.Future[T] = source.get_loop().create_future()

    def settle(done: asyncio.Future[Any]) -> None:
        if out.done():  # the reader gave up (cancelled)
            if not done.cancelled():
                done.exception()  # retrieved: nobody else will
            return
        if done.cancelled():
            out.cancel()
        elif (exc := done.exception()) is not None:
            out.set_exception(exc)
        else:
            try:
                out.set_result(convert(done.result()))
            except Exception as error:  # a malformed reply (or a bug) fails this read, never leaves it waiting
                log.exception("a redis reply could not be read")
                out.set_exception(error)

    source.add_done_callback(settle)
    return out


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
