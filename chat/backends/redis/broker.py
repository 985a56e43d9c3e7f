"""The broker on Redis: fan-out over pub/sub, presence across processes.

Implements :class:`chat.backends.memory.Broker` beside :class:`chat.backends.redis.store.RedisHistory`;
the key layout and the path of a message are in chat/backends/redis/store.py and docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from chat.backends.base import OnEvent, OnLogout, OnMessages, StoreUnavailable, presence_frame
from chat.backends.redis import keys, scripts
from chat.backends.redis.pipeline import RAISES, ScriptCall, query, run_scripts, then
from chat.backends.redis.store import RedisHistory
from chat.core.model import Message
from chat.core.names import RESERVATION_S
from chat.core.sequencer import Sequencer

log = logging.getLogger(__name__)

# A process that stops refreshing its heartbeat for this long is dead and its
# members leave; every process looks for dead ones each PRESENCE_TTL_S / 3, so
# members of a killed process leave within 4/3 of this (20 s < 30 s).
PRESENCE_TTL_S = 15.0
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
# A room whose fill failed while the subscription stayed up is tried again after this.
RETRACK_S = 0.5
# Presence changes sent in one pipeline at most (bounds one round trip's work).
OPS_PER_PIPELINE = 500
# Longest wait for background tasks to end when the server shuts down.
CLOSE_WAIT_S = 2.0
# A fill after a reconnect reads the stream in pages of this many messages.
FILL_PAGE = 1000
# Names refreshed per script call: a process holding 16,000 names refreshes
# them in 32 calls rather than 16,000, which would hold its event loop for
# half a second while it builds and parses them.
REFRESH_NAMES_PER_CALL = 500


def reap_call(proc: str) -> tuple[list[str], list[str]]:
    """The keys and arguments of the reap script for ``proc``."""
    return [keys.alive(proc), keys.here(proc), keys.PROCS, keys.ACTIVE], [proc, keys.WHO, keys.ROOM_CHANNEL]


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RedisBroker:
    """Fan-out over pub/sub, presence in hashes: see the module docstring.

    One subscription connection per process carries every room it has members
    in. A background task reads it, reconnects with backoff when it drops,
    and then fills each room from its stream; another keeps the heartbeat,
    reaps dead processes and unsubscribes rooms nobody here needs.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        history: RedisHistory,
        *,
        presence_ttl: float = PRESENCE_TTL_S,
        proc: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express.
        self._r: Any = client
        self._history = history
        # Claims, member lists and typing share the store's pipelines: one per loop tick.
        self._batch = history.batch
        self._ttl = presence_ttl
        self.proc = proc or process_id()
        self._clock = clock
        self._seq = Sequencer()
        self._on_messages: OnMessages | None = None
        self._on_event: OnEvent | None = None
        self._on_logout: OnLogout | None = None
        self._ps: PubSub | None = None
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._to_subscribe: list[str] = []  # channels for the next SUBSCRIBE, sent once per loop tick
        self._tracking: dict[str, asyncio.Task[None]] = {}
        self._unneeded: dict[str, float] = {}  # room -> when its last local member left
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._here: set[tuple[str, str]] = set()  # (room, name) present through this process
        self._names: dict[tuple[str, str], int] = {}  # (name, session) -> local connections
        self._ops: asyncio.Queue[tuple[str, tuple[str, str], asyncio.Future[None] | None]] = asyncio.Queue()
        self._presence_dirty = False
        self._names_refreshed = 0.0
        self._tasks: list[asyncio.Task[None]] = []  # the subscription reader, the heartbeat, the housekeeping
        self._presence: asyncio.Task[None] | None = None  # runs the presence queue
        self._subscribed = False
        self._beating = False
        self._down_since: float | None = None
        self._heard = 0.0
        self._first_try = asyncio.Event()
        self._was_up = False  # the current connection attempt got subscribed
        self._presence_script = client.register_script(scripts.PRESENCE)
        self._reap = client.register_script(scripts.REAP)
        self._heartbeat = client.register_script(scripts.HEARTBEAT)
        self._claim = client.register_script(scripts.CLAIM)
        self._refresh = client.register_script(scripts.REFRESH)
        self._drop = client.register_script(scripts.DROP)

    # -- lifecycle -------------------------------------------------------------

    def listen(self, on_messages: OnMessages, on_event: OnEvent, on_logout: OnLogout) -> None:
        self._on_messages, self._on_event, self._on_logout = on_messages, on_event, on_logout

    @property
    def healthy(self) -> bool:
        return self._subscribed and self._beating

    async def start(self) -> None:
        """Start the background tasks; with Redis down the server starts degraded and keeps trying."""
        with contextlib.suppress(*RAISES):
            await self._beat()
        self._tasks = [
            asyncio.ensure_future(self._read_forever()),
            asyncio.ensure_future(self._keep_alive()),
            asyncio.ensure_future(self._keep_tidy()),
        ]
        self._presence = asyncio.ensure_future(self._run_ops())
        # Serve once subscribed, or once the first try failed (degraded).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_try.wait(), SYNC_TIMEOUT_S)

    async def close(self) -> None:
        # The presence queue ends itself after what is queued; the others are
        # cancelled. Waits are bounded: redis-py can swallow a cancellation
        # that lands mid-command, and a shutdown must not hang on it.
        self._ops.put_nowait(("stop", ("", ""), None))
        others = [*self._tasks, *self._tracking.values()]
        for task in others:
            task.cancel()
        waits = [*others, *([self._presence] if self._presence is not None else [])]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_WAIT_S)
        self._tasks, self._presence = [], None
        # Leave at once rather than when the heartbeat expires.
        with contextlib.suppress(*RAISES):
            await self._r.delete(keys.alive(self.proc))
            await self._reap(*reap_call(self.proc))
        if self._ps is not None:
            with contextlib.suppress(*RAISES):
                await self._ps.aclose()  # type: ignore[no-untyped-call]
        await self._r.aclose()

    # -- fan-out ---------------------------------------------------------------

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
        if not task.cancelled() and task.exception() is not None and room in self._seq:
            # The room stays held (nothing is lost); try again while the
            # subscription is up, or the next reconnect tracks it anyway.
            asyncio.get_running_loop().call_later(RETRACK_S, self._retrack, room)

    def _retrack(self, room: str) -> None:
        if self._ps is not None and room in self._seq and not self._seq.flowing(room) and room not in self._tracking:
            self._track(room)

    async def _sync(self, room: str) -> None:
        """(Re)subscribe ``room`` and fill it from the stream (see chat.core.sequencer)."""
        base = self._seq.hold(room)
        ps = self._ps
        if ps is None:
            raise StoreUnavailable("redis: not connected")
        channel = keys.room_channel(room)
        confirmed = self._confirm.get(channel)
        if confirmed is None or confirmed.done():
            confirmed = self._confirm[channel] = asyncio.get_running_loop().create_future()
        if not self._to_subscribe:
            asyncio.get_running_loop().call_soon(self._send_subscribes)
        self._to_subscribe.append(channel)
        try:
            await confirmed
            now = await self._history.last_seq(room)
            fill: list[Message] = []
            if base is not None:
                while base + len(fill) < now:
                    page = await self._history.after(room, base + len(fill), min(FILL_PAGE, now - base - len(fill)))
                    if not page:
                        break  # trimmed: what is gone is gone
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
            await asyncio.wait_for(waiter, SYNC_TIMEOUT_S)
        except TimeoutError:
            raise StoreUnavailable(f"redis: messages up to {seq} did not arrive in time") from None
        finally:
            waiting = self._waiters.get(room)
            if waiting is not None:
                waiting[:] = [(s, w) for s, w in waiting if w is not waiter]
                if not waiting:
                    del self._waiters[room]

    def _deliver(self, room: str, messages: list[Message]) -> None:
        if messages and self._on_messages is not None:
            self._on_messages(messages)
        waiting = self._waiters.get(room)
        if waiting:
            seen = self._seq.seen(room) or 0
            for seq, waiter in waiting:
                if seq <= seen and not waiter.done():
                    waiter.set_result(None)

    async def _read_forever(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            self._was_up = False
            try:
                await self._read()
            except RAISES as exc:
                self._lost(exc)
            except Exception as exc:  # a bug must not end delivery for good: log it, reconnect
                log.exception("the redis subscription failed")
                self._lost(exc)
            self._first_try.set()
            if self._was_up:
                backoff = BACKOFF_FIRST_S  # a new outage starts with a quick retry
            # Jittered, so a fleet of servers does not reconnect in lockstep.
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _read(self) -> None:
        if self._down_since is not None:
            # Idle pooled connections from before the outage are dead (Redis
            # may have restarted); an append must not be the one to find out,
            # since it cannot be retried blindly.
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
                        self._up()
                        self._first_try.set()
                    confirmed = self._confirm.get(msg["channel"])
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        finally:
            self._ps = None
            self._subscribed = False
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
            for room in self._seq.rooms():
                self._seq.hold(room)
            with contextlib.suppress(*RAISES):
                await ps.aclose()

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == keys.CTL:
            if data.startswith("logout ") and self._on_logout is not None:
                self._on_logout(data[7:])
            return
        room = keys.channel_room(channel)
        kind, body = data[:1], data[1:]
        if kind == "m":
            seq, name, text, ts, session, ref = json.loads(body)
            message = Message(room, int(seq), name, text, int(ts), session, None if ref is False else ref)
            out = self._seq.offer(message)
            if out is None:  # a gap: fill it from the stream
                if room not in self._tracking:
                    self._track(room)
            else:
                self._deliver(room, out)
        elif self._on_event is not None and room in self._seq:
            if kind == "p":
                event, name = json.loads(body)
                self._on_event(room, name, presence_frame(room, event, name))
            elif kind == "t":
                self._on_event(room, body, {"type": "typing", "room": room, "name": body})

    # -- presence and names ----------------------------------------------------

    async def enter(self, room: str, name: str) -> None:
        self._here.add((room, name))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.put_nowait(("enter", (room, name), done))
        await done

    def exit(self, room: str, name: str) -> None:
        self._here.discard((room, name))
        self._ops.put_nowait(("exit", (room, name), None))

    async def _run_ops(self) -> None:
        # One queue, one worker: a leave and a rejoin reach Redis in the order
        # they happened, whatever connection of the pool they take. What
        # queued up meanwhile goes as one pipeline: a burst of joins costs a
        # round trip, not one each.
        while True:
            ops = [await self._ops.get()]
            while not self._ops.empty() and len(ops) < OPS_PER_PIPELINE:
                ops.append(self._ops.get_nowait())
            stop = any(op == "stop" for op, _, _ in ops)
            ops = [o for o in ops if o[0] != "stop"]
            calls = [self._presence_call(op, room, name) for op, (room, name), _ in ops]
            try:
                results = await run_scripts(self._r, calls) if calls else []
            except RAISES as exc:
                results = [exc] * len(calls)
            except Exception as exc:  # a bug must not end presence for good, nor leave joins waiting
                log.exception("%d presence changes failed", len(calls))
                results = [exc] * len(calls)
            for (_, _, done), result in zip(ops, results, strict=True):
                if isinstance(result, Exception):
                    self._presence_dirty = True  # the heartbeat reconciles it
                    if done is not None and not done.done():
                        done.set_exception(StoreUnavailable(f"redis: {result}"))
                elif done is not None and not done.done():
                    done.set_result(None)
            if stop:
                return

    def _presence_call(self, op: str, room: str, name: str) -> ScriptCall:
        here = [keys.here(self.proc), keys.who(room), keys.ACTIVE, keys.room_channel(room)]
        return self._presence_script, here, [op, room, name]

    def announce(self, room: str, name: str, frame: dict[str, Any]) -> None:
        if self._ps is None:
            return  # ephemeral: nothing to keep for later
        sent = self._batch.command(lambda pipe: pipe.publish(keys.room_channel(room), "t" + name))
        sent.add_done_callback(_ignore)

    def members(self, room: str) -> asyncio.Future[list[str]]:
        # Queued at the call, like RedisHistory.last_seq: see ChatService._join.
        names = self._batch.command(lambda pipe: pipe.hkeys(keys.who(room)))
        return then(names, lambda found: sorted(found, key=str.casefold))

    async def member_counts(self) -> dict[str, int]:
        rooms = sorted(await query(lambda: self._r.smembers(keys.ACTIVE)))

        async def count() -> list[int]:
            async with self._r.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.hlen(keys.who(room))
                return list(await pipe.execute())

        counts = await query(count)
        return {room: int(n) for room, n in zip(rooms, counts, strict=True) if int(n)}

    async def claim(self, name: str, session: str) -> bool:
        # Repeating a claim only refreshes it.
        ok = bool(await self._batch.script(self._claim, [keys.name(name)], [session, int(RESERVATION_S)]))
        if ok:
            key = (name, session)
            self._names[key] = self._names.get(key, 0) + 1
        return ok

    def release(self, name: str, session: str) -> None:
        key = (name, session)
        left = self._names.get(key, 0) - 1
        if left > 0:
            self._names[key] = left
        else:
            # No longer refreshed: the hold expires after the reservation.
            self._names.pop(key, None)

    def logout(self, name: str, session: str) -> None:
        self._names.pop((name, session), None)
        dropped = self._batch.script(self._drop, [keys.name(name), keys.CTL], [session])
        dropped.add_done_callback(_ignore)

    # -- heartbeat -------------------------------------------------------------

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
                self._beating = False
                self._lost(exc)
            except Exception:  # a bug must not stop the heartbeat: others would reap a live process
                log.exception("the redis heartbeat failed")

    async def _keep_tidy(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._tidy()
            except RAISES as exc:
                if self._down_since is None:  # an outage is the heartbeat's to report, once
                    log.warning("redis housekeeping failed, trying again: %s", exc)
            except Exception:  # a bug must not stop reaping dead processes for good
                log.exception("redis housekeeping failed")

    async def _beat(self) -> None:
        """The heartbeat, then the housekeeping (see :meth:`_tidy`)."""
        await self._heartbeat_once()
        await self._tidy()

    async def _heartbeat_once(self) -> None:
        """Refresh this process's heartbeat; if it had been reaped, its presence is put back by :meth:`_tidy`."""
        known = await self._heartbeat(keys=[keys.alive(self.proc), keys.PROCS], args=[self.proc, int(self._ttl * 1000)])
        if not int(known):
            self._presence_dirty = True
        self._beating = True
        self._up()

    async def _tidy(self) -> None:
        """Put presence back after an outage or a reap, refresh names, reap dead processes, drop unneeded rooms."""
        if self._presence_dirty:
            await self._reconcile()
        now = self._clock()
        if self._names and now - self._names_refreshed >= RESERVATION_S / 3:
            # A hold lasts RESERVATION_S; refreshed at a third of that, it
            # outlives two missed refreshes and still lapses within the
            # reservation once no connection uses the name.
            self._names_refreshed = now
            held = list(self._names)
            calls: list[ScriptCall] = []
            for start in range(0, len(held), REFRESH_NAMES_PER_CALL):
                chunk = held[start : start + REFRESH_NAMES_PER_CALL]
                names = [keys.name(n) for n, _ in chunk]
                calls.append((self._refresh, names, [int(RESERVATION_S), *(session for _, session in chunk)]))
            await run_scripts(self._r, calls)
        procs = sorted(await self._r.smembers(keys.PROCS))
        async with self._r.pipeline(transaction=False) as pipe:
            for proc in procs:
                pipe.exists(keys.alive(proc))
            alive = await pipe.execute()
        for proc, up in zip(procs, alive, strict=True):
            if not up and await self._reap(*reap_call(proc)):
                log.warning("server process %s stopped beating: its members left", proc)
        for room, since in list(self._unneeded.items()):
            if now - since >= UNSUBSCRIBE_GRACE_S:
                del self._unneeded[room]
                self._seq.forget(room)
                if self._ps is not None:
                    await self._ps.unsubscribe(keys.room_channel(room))

    async def _reconcile(self) -> None:
        """Make Redis's view of this process's presence match ours (after an outage or a reap)."""
        self._presence_dirty = False
        try:
            entries = await self._r.smembers(keys.here(self.proc))
            theirs = {_entry(e) for e in entries}
            calls = [self._presence_call("exit", room, name) for room, name in theirs - self._here]
            calls += [self._presence_call("enter", room, name) for room, name in self._here - theirs]
            for result in await run_scripts(self._r, calls):
                if isinstance(result, Exception):
                    raise result
        except BaseException:
            self._presence_dirty = True  # not done: the next round tries again
            raise

    def _up(self) -> None:
        if self._ps is not None:
            self._subscribed = True
        if self.healthy and self._down_since is not None:
            log.warning("redis is back after %.1f s", self._clock() - self._down_since)
            self._down_since = None

    def _lost(self, exc: BaseException) -> None:
        # Once per outage: a dead Redis must not also flood the log.
        if self._down_since is None:
            self._down_since = self._clock()
            log.error("redis unreachable, serving degraded and reconnecting: %s", exc)


def _entry(entry: str) -> tuple[str, str]:
    room, name = entry.split("\t", 1)
    return room, name


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
