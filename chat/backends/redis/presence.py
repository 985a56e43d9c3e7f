"""Presence on Redis: who is in which room, across every process, and reaping dead processes.

:class:`Presence` is the part of :class:`chat.backends.redis.broker.RedisBroker`
that keeps, for this process, the ``room<TAB>name`` pairs its members are in
(``here:{proc}``), and per room how many processes have each name
(``who:{room}``): a name joins when its count goes from 0 to 1 anywhere and
leaves when it drops back. Each process beats a heartbeat (``alive:{proc}``);
one that stops is reaped by the others, its members leaving with presence
events, and one that finds it was reaped while alive puts its members back
(:meth:`Presence.reconcile`). docs/scaling.md, "Presence and names across
processes", has the whole story; the scripts are in
:mod:`chat.backends.redis.scripts`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import Any

from chat.backends.base import StoreUnavailable
from chat.backends.redis import keys, scripts
from chat.backends.redis.pipeline import RAISES, Batch, ScriptCall, query, run_scripts, then

log = logging.getLogger(__name__)

# A process that stops refreshing its heartbeat for this long is dead and its
# members leave; every process looks for dead ones each PRESENCE_TTL_S / 3, so
# members of a killed process leave within 4/3 of this (20 s < 30 s).
PRESENCE_TTL_S = 15.0
# Presence changes sent in one pipeline at most (bounds one round trip's work).
OPS_PER_PIPELINE = 500


def process_id() -> str:
    """A name for this process, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def reap_call(proc: str) -> tuple[list[str], list[str]]:
    """The keys and arguments of the reap script for ``proc``."""
    return [keys.alive(proc), keys.here(proc), keys.PROCS, keys.ACTIVE], [proc, keys.WHO, keys.ROOM_CHANNEL]


class Presence:
    """This process's members in Redis, its heartbeat, and the reaping of dead processes."""

    def __init__(self, client: Any, batch: Batch, proc: str, ttl: float) -> None:
        self._r = client
        self._batch = batch  # member lists share the broker's pipelines
        self.proc = proc
        self._ttl = ttl
        self._here: set[tuple[str, str]] = set()  # (room, name) present through this process
        self._ops: asyncio.Queue[tuple[str, tuple[str, str], asyncio.Future[None] | None]] = asyncio.Queue()
        # Redis's view of this process may differ from ours (a change failed,
        # or it was reaped while alive): the housekeeping reconciles it.
        self.dirty = False
        self._script = client.register_script(scripts.PRESENCE)
        self._reap = client.register_script(scripts.REAP)
        self._heartbeat = client.register_script(scripts.HEARTBEAT)

    async def enter(self, room: str, name: str) -> None:
        self._here.add((room, name))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.put_nowait(("enter", (room, name), done))
        await done

    def exit(self, room: str, name: str) -> None:
        self._here.discard((room, name))
        self._ops.put_nowait(("exit", (room, name), None))

    async def run_ops(self) -> None:
        """Send the queued changes until :meth:`stop`; what was queued before it is sent first."""
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
            calls = [self._call(op, room, name) for op, (room, name), _ in ops]
            try:
                results = await run_scripts(self._r, calls) if calls else []
            except RAISES as exc:
                results = [exc] * len(calls)
            except Exception as exc:  # a bug must not end presence for good, nor leave joins waiting
                log.exception("%d presence changes failed", len(calls))
                results = [exc] * len(calls)
            for (_, _, done), result in zip(ops, results, strict=True):
                if isinstance(result, Exception):
                    self.dirty = True  # the heartbeat reconciles it
                    if done is not None and not done.done():
                        done.set_exception(StoreUnavailable(f"redis: {result}"))
                elif done is not None and not done.done():
                    done.set_result(None)
            if stop:
                return

    def _call(self, op: str, room: str, name: str) -> ScriptCall:
        here = [keys.here(self.proc), keys.who(room), keys.ACTIVE, keys.room_channel(room)]
        return self._script, here, [op, room, name]

    def members(self, room: str) -> asyncio.Future[list[str]]:
        # Queued at the call, to share a pipeline with the join's other reads: see read_room.
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

    def stop(self) -> None:
        """End :meth:`run_ops` once what is queued now has been sent."""
        self._ops.put_nowait(("stop", ("", ""), None))

    async def heartbeat(self) -> None:
        """Refresh this process's heartbeat; if it had been reaped, it is :attr:`dirty`."""
        known = await self._heartbeat(keys=[keys.alive(self.proc), keys.PROCS], args=[self.proc, int(self._ttl * 1000)])
        if not int(known):
            self.dirty = True

    async def reap_dead(self) -> None:
        """Reap every process whose heartbeat expired: its members leave."""
        procs = sorted(await self._r.smembers(keys.PROCS))
        async with self._r.pipeline(transaction=False) as pipe:
            for proc in procs:
                pipe.exists(keys.alive(proc))
            alive = await pipe.execute()
        for proc, up in zip(procs, alive, strict=True):
            if not up and await self._reap(*reap_call(proc)):
                log.warning("server process %s stopped beating: its members left", proc)

    async def leave(self) -> None:
        """Reap this process at once (it is shutting down) rather than when its heartbeat expires."""
        await self._r.delete(keys.alive(self.proc))
        await self._reap(*reap_call(self.proc))

    async def reconcile(self) -> None:
        """Make Redis's view of this process's presence match ours (after an outage or a reap)."""
        self.dirty = False
        try:
            entries = await self._r.smembers(keys.here(self.proc))
            theirs = {_entry(e) for e in entries}
            calls = [self._call("exit", room, name) for room, name in theirs - self._here]
            calls += [self._call("enter", room, name) for room, name in self._here - theirs]
            for result in await run_scripts(self._r, calls):
                if isinstance(result, Exception):
                    raise result
        except BaseException:
            self.dirty = True  # not done: the next round tries again
            raise


def _entry(entry: str) -> tuple[str, str]:
    room, name = entry.split("\t", 1)
    return room, name
