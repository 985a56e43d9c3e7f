"""How commands travel to Redis: in pipelines, one round trip for many callers.

Shared by the store and the broker:

- :func:`run_pipeline` / :func:`run_scripts`: commands (script calls as
  EVALSHA) in one pipeline, with scripts Redis forgot loaded again and their
  refused calls run again, in order.
- :class:`Batch`: the commands of many callers (reads, name claims, typing),
  sent as one pipeline per loop tick on one pooled connection.
- :func:`query`: one command that is safe to repeat, tried again once on a
  dead pooled connection.
- :func:`then`: a future of a converted reply, without a Task.

Whatever Redis failed is raised (or set) as :class:`chat.backends.base.StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.backends.base import StoreUnavailable

log = logging.getLogger(__name__)

# What a lost or refused connection raises; the callers answer ``unavailable``.
RAISES = (RedisError, OSError)


# Commands sent in one pipeline at most: bounds one round trip's work and the
# reply a process parses in one go. What is left goes in the next pipeline.
BATCH_MAX = 1000


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


# A script call: the script, its KEYS (built by chat.backends.redis.keys), its ARGV.
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


def ignore(future: asyncio.Future[Any]) -> None:
    """A done callback for a command nobody waits for (a typing event, a logout):
    its failure is retrieved, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
