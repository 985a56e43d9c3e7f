"""The broker on Redis: :class:`RedisBroker`, made of four parts, one file each.

It implements :class:`chat.backends.base.Broker` beside a SQL history store
(SQLite for one process, PostgreSQL for many), whose commits it is handed
(:meth:`RedisBroker.deliver`, the store's commit listener), and hands each job
to a part:

- :class:`~chat.backends.redis.subscription.Subscription`: this process's own
  commits to its members at once, the other processes' over one pub/sub
  connection, and filling from the store what pub/sub lost (subscribe,
  unsubscribe, caught_up, announce, logouts).
- :class:`~chat.backends.redis.publish.Publisher`: this process's commits to
  the others, over pub/sub, fire and forget.
- :class:`~chat.backends.redis.presence.Presence`: who is in which room across
  processes, the heartbeat, reaping dead processes (enter, exit, members,
  member_counts).
- :class:`~chat.backends.redis.claims.Claims`: names held by a session across
  processes (claim, release, logout).

What is left here is the lifecycle: starting and stopping the background
tasks, the heartbeat that runs alone, and the housekeeping that runs beside
it. Keys are in :mod:`chat.backends.redis.keys`; docs/scaling.md has the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from chat.backends.base import HistoryStore, OnControl, OnEvent, OnLogout, OnMessages
from chat.backends.redis.claims import Claims
from chat.backends.redis.health import Health
from chat.backends.redis.pipeline import RAISES, Batch
from chat.backends.redis.presence import PRESENCE_TTL_S, Presence, process_id
from chat.backends.redis.publish import Publisher
from chat.backends.redis.subscription import SYNC_TIMEOUT_S, Subscription
from chat.core.model import Message

log = logging.getLogger(__name__)

# Longest wait for background tasks to end when the server shuts down.
CLOSE_WAIT_S = 2.0


class RedisBroker:
    """Fan-out over pub/sub, presence in hashes, names held in keys: see the module docstring.

    Three background tasks run beside the parts: the subscription's reader,
    the heartbeat, and the housekeeping (putting presence back, refreshing
    names, reaping dead processes, unsubscribing rooms nobody here needs).
    A fourth sends the presence changes, in order.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        store: HistoryStore,
        *,
        presence_ttl: float = PRESENCE_TTL_S,
        proc: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express.
        self._r: Any = client
        self._ttl = presence_ttl
        self.proc = proc or process_id()
        self._clock = clock
        self._health = Health(clock)
        # Member lists, claims and typing share pipelines: one per loop tick.
        self._batch = Batch(client)
        self._subscription = Subscription(client, store, self._batch, self._health, clock)
        self._publisher = Publisher(client, self._health)
        self._health.on_back = self._publisher.back
        self._presence = Presence(client, self._batch, self.proc, presence_ttl)
        self._claims = Claims(client, self._batch)
        self._tasks: list[asyncio.Task[None]] = []  # the subscription reader, the heartbeat, the housekeeping
        self._ops_task: asyncio.Task[None] | None = None  # sends the presence changes
        store.listen(self.deliver)

    # -- lifecycle -------------------------------------------------------------

    def listen(self, on_messages: OnMessages, on_event: OnEvent, on_logout: OnLogout) -> None:
        self._subscription.listen(on_messages, on_event, on_logout)

    @property
    def healthy(self) -> bool:
        return self._health.healthy

    async def start(self) -> None:
        """Start the background tasks; with Redis down the server starts degraded and keeps trying."""
        with contextlib.suppress(*RAISES):
            await self._beat()
        self._tasks = [
            asyncio.ensure_future(self._subscription.read_forever()),
            asyncio.ensure_future(self._keep_alive()),
            asyncio.ensure_future(self._keep_tidy()),
        ]
        self._ops_task = asyncio.ensure_future(self._presence.run_ops())
        # Serve once subscribed, or once the first try failed (degraded).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscription.first_try.wait(), SYNC_TIMEOUT_S)

    async def close(self) -> None:
        # The presence queue ends itself after what is queued; the others are
        # cancelled. Waits are bounded: redis-py can swallow a cancellation
        # that lands mid-command, and a shutdown must not hang on it.
        self._presence.stop()
        self._subscription.stop()
        others = [*self._tasks, *self._subscription.fills()]
        for task in others:
            task.cancel()
        published = asyncio.ensure_future(self._publisher.close())  # what the last commits published
        waits = [*others, published, *([self._ops_task] if self._ops_task is not None else [])]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_WAIT_S)
        self._tasks, self._ops_task = [], None
        # Leave at once rather than when the heartbeat expires.
        with contextlib.suppress(*RAISES):
            await self._presence.leave()
        await self._subscription.close()
        # A task that swallowed its cancellation meets its connection closed now, and ends.
        stubborn = [task for task in waits if not task.done()]
        for task in stubborn:
            task.cancel()
        if stubborn:
            await asyncio.wait(stubborn, timeout=CLOSE_WAIT_S)
        await self._r.aclose()

    # -- fan-out (chat.backends.redis.subscription, chat.backends.redis.publish) -

    def deliver(self, messages: list[Message]) -> None:
        """The store's commit listener: synchronous, as each batch commits, in seq order.

        This process's members get the batch now; the other processes get it
        over pub/sub, or from the store if Redis is down (nothing waits on it)."""
        self._subscription.local(messages)
        self._publisher.publish(messages)

    async def subscribe(self, room: str) -> None:
        await self._subscription.subscribe(room)

    def unsubscribe(self, room: str) -> None:
        self._subscription.unsubscribe(room)

    async def caught_up(self, room: str, seq: int) -> None:
        await self._subscription.caught_up(room, seq)

    def announce(self, room: str, name: str, frame: dict[str, Any]) -> None:
        self._subscription.announce(room, name, frame)

    # -- presence (chat.backends.redis.presence) -------------------------------

    async def enter(self, room: str, name: str) -> None:
        await self._presence.enter(room, name)

    def exit(self, room: str, name: str) -> None:
        self._presence.exit(room, name)

    def members(self, room: str) -> asyncio.Future[list[str]]:
        # Queued at the call, to share a pipeline with other reads: see read_room.
        return self._presence.members(room)

    async def member_counts(self) -> dict[str, int]:
        return await self._presence.member_counts()

    # -- names (chat.backends.redis.claims) ------------------------------------

    async def claim(self, name: str, session: str) -> bool:
        return await self._claims.claim(name, session)

    def release(self, name: str, session: str) -> None:
        self._claims.release(name, session)

    def logout(self, name: str, session: str) -> None:
        self._claims.logout(name, session)

    def listen_control(self, on_control: OnControl) -> None:
        self._subscription.listen_control(on_control)

    def control(self, event: dict[str, Any]) -> None:
        self._subscription.control(event)

    # -- heartbeat and housekeeping --------------------------------------------

    async def _keep_alive(self) -> None:
        # The heartbeat runs alone: nothing slow (reaping a process of 16,000
        # members, putting them back after a reap, refreshing thousands of
        # names) may delay it past the TTL under load, or the other processes
        # reap this live one, its members leave and come back, and the presence
        # storm that follows makes the next heartbeat later still.
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._heartbeat_once()
            except RAISES as exc:
                self._health.beating = False
                self._health.lost(exc)
            except Exception:  # a bug must not stop the heartbeat: others would reap a live process
                log.exception("the redis heartbeat failed")

    async def _keep_tidy(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._tidy()
            except RAISES as exc:
                if self._health.down_since is None:  # an outage is the heartbeat's to report, once
                    log.warning("redis housekeeping failed, trying again: %s", exc)
            except Exception:  # a bug must not stop reaping dead processes for good
                log.exception("redis housekeeping failed")

    async def _beat(self) -> None:
        """The heartbeat, then the housekeeping (see :meth:`_tidy`)."""
        await self._heartbeat_once()
        await self._tidy()

    async def _heartbeat_once(self) -> None:
        """Refresh this process's heartbeat; if it had been reaped, its presence is put back by :meth:`_tidy`."""
        await self._presence.heartbeat()
        self._health.beating = True
        self._health.up(self._subscription.connected)

    async def _tidy(self) -> None:
        """Put presence back after an outage or a reap, refresh names, reap dead processes, drop unneeded rooms."""
        if self._presence.dirty:
            await self._presence.reconcile()
        now = self._clock()
        await self._claims.refresh(now)
        await self._presence.reap_dead()
        await self._subscription.drop_unneeded(now)
