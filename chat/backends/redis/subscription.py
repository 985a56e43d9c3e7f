"""Delivery on Redis: this process's own commits at once, the others' over pub/sub, gaps from the store.

:class:`Subscription` is the part of :class:`chat.backends.redis.broker.RedisBroker`
that gets messages, presence and typing events and logouts to this process.

- Messages this process committed are handed to :meth:`Subscription.local`
  inside the commit: its members get them at once, without a round trip to
  Redis, and a Redis outage does not delay them.
- Messages other processes committed arrive over one pub/sub connection that
  carries every room the process has members in, plus the ``ctl`` channel. A
  background task (:meth:`Subscription.read_forever`) reads it and reconnects
  with backoff when it drops.

Both go through one :class:`chat.core.sequencer.Sequencer` per process, which
passes each message on once, in seq order: a process's own messages coming
back over pub/sub are dropped as already seen, and a seq jump (a message lost
by pub/sub, or committed elsewhere and not heard of yet) holds the room while
the range is read from the SQL store, the one history. A room newly
subscribed, or subscribed again after the connection dropped, is filled from
the store the same way: docs/scaling.md, "Why nothing is lost or repeated
across processes".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import PubSub

from chat.backends.base import (
    HistoryStore,
    OnControl,
    OnEvent,
    OnLogout,
    OnMessages,
    StoreUnavailable,
    presence_frame,
)
from chat.backends.redis import keys
from chat.backends.redis.health import Health
from chat.backends.redis.pipeline import RAISES, Batch, ignore
from chat.backends.redis.publish import by_room, decode
from chat.core.model import Message
from chat.core.outbound import Typing
from chat.core.sequencer import Sequencer

# Access-control events on the ctl channel (Broker.control), beside 'logout '.
CONTROL_PREFIX = "ctl "

log = logging.getLogger(__name__)

# How long a room stays subscribed after its last local member left: rejoins
# are free, and a member who left while its message was being stored still
# gets the acknowledgement, which comes through the subscription.
UNSUBSCRIBE_GRACE_S = 10.0
# Longest wait for a subscription to be confirmed, or for messages already
# stored to come through it; past that the join answers ``unavailable``. A
# lost subscription fails these waits at once (and a silent one is taken for
# lost after 3 * PUBSUB_PING_S), so this bound is only a backstop: under a join
# storm the reader may be seconds behind, and a busy Redis must make a join
# wait, not fail.
SYNC_TIMEOUT_S = 60.0
# With nothing to read for this long, the subscription pings Redis; with no
# answer in three times that, the connection is taken for dead.
PUBSUB_PING_S = 5.0
# Reconnection backoff: fast for a blip, capped so a long outage costs little.
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
# A room whose fill failed is tried again after this.
RETRACK_S = 0.5
# A fill reads the store in pages of this many messages.
FILL_PAGE = 1000
# A join waits this long for messages committed elsewhere to come over pub/sub,
# then reads them from the store: a publish the other process skipped (Redis
# blinked) must not hold a join for SYNC_TIMEOUT_S.
CAUGHT_UP_FILL_S = 1.0


class Subscription:
    """The subscription of one process: which rooms it follows, up to which seq, and who waits."""

    def __init__(
        self, client: Any, store: HistoryStore, batch: Batch, health: Health, clock: Callable[[], float]
    ) -> None:
        self._r = client
        self._store = store
        self._batch = batch
        self._health = health
        self._clock = clock
        self._seq = Sequencer()
        self._on_messages: OnMessages | None = None
        self._on_event: OnEvent | None = None
        self._on_logout: OnLogout | None = None
        self._on_control: OnControl | None = None
        # Control events this process published: handled at once, so skipped when they come back.
        self.origin = uuid.uuid4().hex
        self._ps: PubSub | None = None
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._to_subscribe: list[str] = []  # channels for the next SUBSCRIBE, sent once per loop tick
        self._subscribed: set[str] = set()  # channels Redis confirmed on the current connection
        self._tracking: dict[str, asyncio.Task[None]] = {}
        self._unneeded: dict[str, float] = {}  # room -> when its last local member left
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._heard = 0.0
        self.first_try = asyncio.Event()  # set once subscribed, or once the first try failed
        self._was_up = False  # the current connection attempt got subscribed
        self._stopping = False  # the broker is closing: the reader ends at its next turn

    def listen(self, on_messages: OnMessages, on_event: OnEvent, on_logout: OnLogout) -> None:
        self._on_messages, self._on_event, self._on_logout = on_messages, on_event, on_logout

    def listen_control(self, on_control: OnControl) -> None:
        self._on_control = on_control

    def control(self, event: dict[str, Any]) -> None:
        """Handle ``event`` here now, and publish it for the other processes (lost if Redis is down)."""
        if self._on_control is not None:
            self._on_control(event)
        data = CONTROL_PREFIX + json.dumps({"origin": self.origin, "event": event}, separators=(",", ":"))
        sent = self._batch.command(lambda pipe: pipe.publish(keys.CTL, data))
        sent.add_done_callback(ignore)

    @property
    def connected(self) -> bool:
        """The subscription's connection is made (confirmed or about to be)."""
        return self._ps is not None

    def fills(self) -> list[asyncio.Task[None]]:
        """The rooms being (re)subscribed and filled now: what a shutdown cancels."""
        return list(self._tracking.values())

    async def close(self) -> None:
        if self._ps is not None:
            with contextlib.suppress(*RAISES):
                await self._ps.aclose()  # type: ignore[no-untyped-call]

    async def subscribe(self, room: str) -> None:
        self._unneeded.pop(room, None)
        if self._seq.flowing(room):
            return
        task = self._tracking.get(room)
        if task is None:
            task = self._track(room)
        try:
            await asyncio.wait_for(asyncio.shield(task), SYNC_TIMEOUT_S)
        except TimeoutError:
            raise StoreUnavailable("redis: the subscription did not start in time") from None

    def _track(self, room: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._sync(room))
        self._tracking[room] = task
        task.add_done_callback(lambda t: self._tracked(room, t))
        return task

    def _tracked(self, room: str, task: asyncio.Task[None]) -> None:
        if self._tracking.get(room) is task:
            del self._tracking[room]
        if task.cancelled() or room not in self._seq:
            return
        if task.exception() is not None:
            # The room stays held (nothing is lost); try again while the
            # subscription is up, or the next reconnect tracks it anyway.
            asyncio.get_running_loop().call_later(RETRACK_S, self._retrack, room)
        elif not self._seq.flowing(room) and room not in self._tracking:
            # Held again although the fill succeeded: a gap showed after the
            # fill resumed the room but before this callback ran (the offer saw
            # the fill still tracked and started none), or a held message lies
            # past one the fill did not have yet (the sequencer keeps it held).
            # Nothing else would ever fill it: the room would stay held, its
            # senders unacknowledged, for good. Fill it again now.
            self._track(room)

    def _retrack(self, room: str) -> None:
        # Without a subscription only a room that already flowed can be
        # filled (from the store): a first subscribe needs Redis.
        can_fill = self._ps is not None or self._seq.seen(room) is not None
        if can_fill and room in self._seq and not self._seq.flowing(room) and room not in self._tracking:
            self._track(room)

    async def _sync(self, room: str) -> None:
        """Subscribe ``room`` if it is not, and fill it from the store (see chat.core.sequencer).

        With the subscription down, a room that already flowed is still filled
        (a gap its own commits showed): its members get the other processes'
        messages from the store without waiting for Redis."""
        base = self._seq.hold(room)
        if self._ps is None and base is None:
            raise StoreUnavailable("redis: not connected")
        channel = keys.room_channel(room)
        try:
            if self._ps is not None and channel not in self._subscribed:
                confirmed = self._confirm.get(channel)
                if confirmed is None or confirmed.done():
                    confirmed = self._confirm[channel] = asyncio.get_running_loop().create_future()
                if not self._to_subscribe:
                    asyncio.get_running_loop().call_soon(self._send_subscribes)
                self._to_subscribe.append(channel)
                await confirmed
            # Read after the subscription is confirmed: whatever commits later
            # comes through it (or through local()), so nothing falls between.
            now = await self._store.last_seq(room)
            fill: list[Message] = []
            if base is not None:
                while base + len(fill) < now:
                    page = await self._store.after(room, base + len(fill), min(FILL_PAGE, now - base - len(fill)))
                    if not page:
                        break  # removed by the retention policy: what is gone is gone
                    fill.extend(page)
        except RAISES as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        self._deliver(room, self._seq.resume(room, now, fill))

    def _send_subscribes(self) -> None:
        """One SUBSCRIBE for every room that asked during this loop tick."""
        channels, self._to_subscribe = self._to_subscribe, []
        ps = self._ps
        if ps is None:
            self._subscribe_failed(channels, StoreUnavailable("redis: not connected"))
            return
        task = asyncio.ensure_future(ps.subscribe(*channels))
        task.add_done_callback(functools.partial(self._subscribe_sent, channels))

    def _subscribe_sent(self, channels: list[str], task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        # The connection broke (its reader fails every wait anyway), or a bug: fail these waits now.
        if not isinstance(exc, RAISES):
            log.error("subscribing %d rooms failed", len(channels), exc_info=exc)
        self._subscribe_failed(channels, StoreUnavailable(f"redis: {exc}"))

    def _subscribe_failed(self, channels: list[str], error: StoreUnavailable) -> None:
        for channel in channels:
            confirmed = self._confirm.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_exception(error)
                confirmed.exception()  # its join may have been cancelled meanwhile

    def unsubscribe(self, room: str) -> None:
        self._unneeded[room] = self._clock()

    async def caught_up(self, room: str, seq: int) -> None:
        seen = self._seq.seen(room)
        if seen is not None and seen >= seq:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(room, []).append((seq, waiter))
        try:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), CAUGHT_UP_FILL_S)
            except TimeoutError:
                # Not come over pub/sub (its publish may have been skipped): read it from the store.
                if room in self._seq and room not in self._tracking:
                    self._track(room)
                await asyncio.wait_for(waiter, SYNC_TIMEOUT_S)
        except TimeoutError:
            raise StoreUnavailable(f"redis: messages up to {seq} did not arrive in time") from None
        finally:
            waiting = self._waiters.get(room)
            if waiting is not None:
                waiting[:] = [(s, w) for s, w in waiting if w is not waiter]
                if not waiting:
                    del self._waiters[room]

    def local(self, messages: list[Message]) -> None:
        """A batch this process committed (the store's commit listener): pass it on now.

        A room no member here follows is passed on as is (its senders'
        acknowledgements are in it); a followed room goes through the
        sequencer, and a seq jump (another process committed in between and
        its message is not here yet) holds the room while the store fills it."""
        out: list[Message] = []
        for room, batch in by_room(messages).items():
            if room not in self._seq:
                out.extend(batch)
                continue
            passed = self._offer(room, batch)
            out.extend(passed)
            self._release(room)
        if out and self._on_messages is not None:
            self._on_messages(out)

    def _offer(self, room: str, batch: list[Message]) -> list[Message]:
        """What of ``batch`` (one room's, seq order) to pass on now; a gap starts a fill."""
        passed: list[Message] = []
        for message in batch:
            got = self._seq.offer(message)
            if got is None:  # a gap: the rest of the batch is held with it
                if room not in self._tracking:
                    self._track(room)
            else:
                passed.extend(got)
        return passed

    def _deliver(self, room: str, messages: list[Message]) -> None:
        if messages and self._on_messages is not None:
            self._on_messages(messages)
        self._release(room)

    def _release(self, room: str) -> None:
        """Wake the joins waiting for ``room`` up to what has been passed on."""
        waiting = self._waiters.get(room)
        if waiting:
            seen = self._seq.seen(room) or 0
            for seq, waiter in waiting:
                if seq <= seen and not waiter.done():
                    waiter.set_result(None)

    def stop(self) -> None:
        """The reader ends at its next turn, even if redis-py swallowed its cancellation mid-command."""
        self._stopping = True

    async def read_forever(self) -> None:
        """Read the subscription until :meth:`stop`, reconnecting with backoff when it drops."""
        backoff = BACKOFF_FIRST_S
        while not self._stopping:
            self._was_up = False
            try:
                await self._read()
            except RAISES as exc:
                self._health.lost(exc)
            except Exception as exc:  # a bug must not end delivery for good: log it, reconnect
                log.exception("the redis subscription failed")
                self._health.lost(exc)
            self.first_try.set()
            if self._stopping:
                return
            if self._was_up:
                backoff = BACKOFF_FIRST_S  # a new outage starts with a quick retry
            # Jittered, so a fleet of servers does not reconnect in lockstep.
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _read(self) -> None:
        if self._health.down_since is not None:
            # Idle pooled connections from before the outage are dead (Redis
            # may have restarted): the first publish after it should not be
            # the one to find out, and be kept back for nothing.
            await self._r.connection_pool.disconnect(inuse_connections=False)
        ps = self._r.pubsub()
        try:
            await ps.subscribe(keys.CTL)
            self._ps = ps
            self._heard = self._clock()
            # Every room tracked before the connection dropped is filled again.
            for room in self._seq.rooms():
                self._seq.hold(room)
                self._track(room)
            pinged = False
            while True:
                msg = await ps.get_message(timeout=PUBSUB_PING_S)
                if msg is None:
                    if self._clock() - self._heard > 3 * PUBSUB_PING_S:
                        raise ConnectionError("no answer to pings")
                    if not pinged:
                        await ps.ping()
                    pinged = True
                    continue
                pinged = False
                self._heard = self._clock()
                kind = msg["type"]
                if kind == "message":
                    try:
                        self._dispatch(msg["channel"], msg["data"])
                    except (ValueError, TypeError, KeyError):
                        # Not ours (someone else published on the channel): skip it.
                        log.warning("ignored a malformed message on %s: %.100r", msg["channel"], msg["data"])
                elif kind == "subscribe":
                    if msg["channel"] == keys.CTL:
                        self._was_up = True
                        self._health.up(connected=True)
                        self.first_try.set()
                    else:
                        self._subscribed.add(msg["channel"])
                    confirmed = self._confirm.get(msg["channel"])
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        finally:
            self._ps = None
            self._subscribed.clear()
            self._health.subscribed = False
            error = StoreUnavailable("redis: connection lost")
            for confirmed in self._confirm.values():
                if not confirmed.done():
                    confirmed.set_exception(error)
                    confirmed.exception()
            self._confirm.clear()
            # Joins waiting for messages to come through answer ``unavailable``
            # now, rather than after a timeout: their clients retry the join.
            for waiting in self._waiters.values():
                for _, waiter in waiting:
                    if not waiter.done():
                        waiter.set_exception(error)
                        waiter.exception()
            # The rooms keep flowing: this process's own commits still reach
            # its members at once (a gap they show is filled from the store),
            # and the reconnect fills what the others committed meanwhile.
            with contextlib.suppress(*RAISES):
                await ps.aclose()

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == keys.CTL:
            if data.startswith("logout ") and self._on_logout is not None:
                self._on_logout(data[7:])
            elif data.startswith(CONTROL_PREFIX) and self._on_control is not None:
                wrapped = json.loads(data[len(CONTROL_PREFIX) :])
                if wrapped["origin"] != self.origin:
                    self._on_control(wrapped["event"])
            return
        room = keys.channel_room(channel)
        kind, body = data[:1], data[1:]
        if kind == "m":
            self._deliver(room, self._offer(room, decode(room, body)))
        elif self._on_event is not None and room in self._seq:
            if kind == "p":
                event, name = json.loads(body)
                self._on_event(room, name, presence_frame(room, event, name))
            elif kind == "t":
                self._on_event(room, body, Typing(room, body).to_wire())

    def announce(self, room: str, name: str, frame: dict[str, Any]) -> None:
        if self._ps is None:
            return  # ephemeral: nothing to keep for later
        sent = self._batch.command(lambda pipe: pipe.publish(keys.room_channel(room), "t" + name))
        sent.add_done_callback(ignore)

    async def drop_unneeded(self, now: float) -> None:
        """Unsubscribe the rooms whose last local member left UNSUBSCRIBE_GRACE_S ago."""
        for room, since in list(self._unneeded.items()):
            if now - since >= UNSUBSCRIBE_GRACE_S:
                del self._unneeded[room]
                self._seq.forget(room)
                self._subscribed.discard(keys.room_channel(room))
                if self._ps is not None:
                    await self._ps.unsubscribe(keys.room_channel(room))
