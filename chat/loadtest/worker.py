"""One load-generating process's share of a run: its members, their sends, its ledger and figures.

The coordinator drives it in three steps, the same whether it runs in the
coordinator's own event loop or in a child process (:mod:`chat.loadtest.procs`):

1. :meth:`Worker.prepare`: connect and join every member on the ramp schedule;
2. :meth:`Worker.send`: send on the fixed schedule (and run the storm), from ``go_ns``;
3. :meth:`Worker.finish`: close every socket and hand back a :class:`WorkerResult`.

Meanwhile it reports a :class:`Tick` every second, on whole seconds after the
run's start ``t0_ns``, so that the ticks of all processes line up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chat.loadtest.accounting import Ledger
from chat.loadtest.client import Member, ResumeOutcome, Target
from chat.loadtest.counters import Counters
from chat.loadtest.options import LoadConfig
from chat.loadtest.schedule import NS_PER_S, members_of, send_times, storm_victims

# Handshakes in flight at once. The ramp paces connects; this bounds the burst
# when the server falls behind (or --ramp 0), so that connects time out for
# being slow rather than for waiting in our own queue.
MAX_CONNECTING = 1000


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    config: LoadConfig  # with its url resolved
    proc: int
    t0_ns: int  # the run's start: connect offsets and ticks count from it
    run: str  # tags this run's messages, to tell them from anyone else's


@dataclass(frozen=True, slots=True)
class Tick:
    """A second of one process's run; ``latency`` holds that second's deliveries (encoded HdrHistogram)."""

    proc: int
    index: int  # whole seconds after t0 at the tick's end
    open: int
    connected: int
    failed: int
    sent: int
    deliveries: int
    owed_received: int  # deliveries owed to their member (what a drain waits for)
    errors: int
    sent_by_room: dict[str, int]
    members_by_room: dict[str, int]
    sending_done: bool
    latency: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    proc: int
    attempted: int
    connected: int
    failed: int


@dataclass(slots=True)
class WorkerResult:
    proc: int
    ledger: Ledger
    latency: bytes  # every delivery's latency, encoded HdrHistogram
    send_lag: bytes  # how late each say left against its schedule, encoded HdrHistogram
    connect_ms: list[float]
    attempted: int = 0
    connected: int = 0
    failed: int = 0
    sent: int = 0
    skipped: int = 0
    send_errors: int = 0
    reactions_sent: int = 0
    reaction_errors: int = 0
    reaction_deliveries: int = 0
    deliveries: int = 0
    foreign: int = 0
    gaps: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    close_codes: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # this process's CPU time from the go to the end of the drain
    storm_dropped: list[str] = field(default_factory=list)
    storm_resumed: list[str] = field(default_factory=list)
    resync_ms: list[float] = field(default_factory=list)


def ssl_context_for(url: str, cafile: str | None) -> ssl.SSLContext | None:
    if urlsplit(url).scheme != "wss":
        return None
    return ssl.create_default_context(cafile=cafile)


class Worker:
    def __init__(self, spec: WorkerSpec, on_tick: Callable[[Tick], None]) -> None:
        config = spec.config
        assert config.url is not None
        self.spec = spec
        self.config = config
        self.on_tick = on_tick
        self.ledger = Ledger()
        self.counters = Counters()
        target = Target(config.url, ssl_context_for(config.url, config.cafile))
        plans = members_of(
            spec.proc,
            config.procs,
            config.clients,
            config.rooms,
            config.effective_senders,
            config.ramp,
            config.name_prefix,
            config.source_ips,
        )
        self.members = [
            Member(
                plan, target, self.ledger, self.counters, config.message_bytes, spec.run, config.reactions_per_message
            )
            for plan in plans
        ]
        self.storm: list[tuple[str, ResumeOutcome]] = []
        self._sending_done = False
        self._ticker: asyncio.Task[None] | None = None
        self._tick_index = 0
        self._cpu_at_go: float | None = None
        self.skipped = 0  # scheduled messages a late sender gave up

    # -- 1. connect ---------------------------------------------------------------

    async def prepare(self) -> Ready:
        self._ticker = asyncio.create_task(self._tick_every_second())
        gate = asyncio.Semaphore(MAX_CONNECTING)

        async def start(member: Member) -> None:
            async with gate:
                await member.start()

        tasks = []
        for member in self.members:
            delay_ns = self.spec.t0_ns + member.plan.connect_offset_ns - time.time_ns()
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / NS_PER_S)
            tasks.append(asyncio.create_task(start(member)))
        await asyncio.gather(*tasks)
        c = self.counters
        return Ready(self.spec.proc, c.attempted, c.connected, c.failed)

    # -- 2. send --------------------------------------------------------------------

    async def send(self, go_ns: int) -> None:
        """Send this process's share of the schedule from ``go_ns``; returns when it is all sent."""
        config = self.config
        self._cpu_at_go = time.process_time()
        jobs: list[Coroutine[Any, Any, None]] = []
        total, senders = config.total_messages, config.effective_senders
        # A sender further behind its schedule than the drain allows gives up
        # the rest: a run ends in bounded time even when we cannot keep up.
        deadline_ns = go_ns + int((config.duration + config.drain) * NS_PER_S)
        for member in self.members:
            if member.plan.sender is not None and member.membership is not None:
                times = send_times(member.plan.sender, senders, total, config.rate, go_ns)
                jobs.append(self._send(member, times, deadline_ns))
        if config.scenario == "storm":
            jobs.append(self._storm(go_ns + int(config.duration * NS_PER_S / 2)))
        if config.stalled and self.spec.proc == 0:  # the first process plays the stalled readers
            jobs.append(self._stall(config.stalled, go_ns + int(config.duration * NS_PER_S)))
        await asyncio.gather(*jobs)
        self._sending_done = True

    async def _send(self, member: Member, times: Iterable[tuple[int, int]], deadline_ns: int) -> None:
        skipped = await member.send_on_schedule(times, deadline_ns)
        self.skipped += skipped  # not `+= await`: that would read the total before the wait

    async def _storm(self, at_ns: int) -> None:
        delay_ns = at_ns - time.time_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / NS_PER_S)
        candidates = [m for m in self.members if m.plan.sender is None and m.membership is not None]
        by_name = {m.name: m for m in candidates}
        victims = [by_name[name] for name in storm_victims([m.name for m in candidates], self.config.storm_fraction)]
        outcomes = await asyncio.gather(*(m.drop_and_resume() for m in victims))
        self.storm = [(m.name, outcome) for m, outcome in zip(victims, outcomes, strict=True)]

    async def _stall(self, count: int, until_ns: int) -> None:
        """Stop reading on ``count`` non-sender members until ``until_ns``, then read on."""
        stalled = [m for m in self.members if m.plan.sender is None and m.membership is not None][:count]
        for member in stalled:
            member.pause_reading()
        delay_ns = until_ns - time.time_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / NS_PER_S)  # the stall is the measurement
        for member in stalled:
            member.resume_reading()

    # -- 3. finish ----------------------------------------------------------------------

    async def finish(self) -> WorkerResult:
        cpu = time.process_time() - self._cpu_at_go if self._cpu_at_go is not None else 0.0
        # All at once: each close sends a frame and waits (bounded) for the
        # server's answer, so the whole takes one close timeout at most.
        await asyncio.gather(*(m.close() for m in self.members))
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._tick(self._tick_index + 1)  # the last, partial second
        c = self.counters
        return WorkerResult(
            proc=self.spec.proc,
            ledger=self.ledger,
            latency=c.total.encode(),
            send_lag=c.send_lag.encode(),
            connect_ms=c.connect_ms,
            attempted=c.attempted,
            connected=c.connected,
            failed=c.failed,
            sent=c.sent,
            skipped=self.skipped,
            send_errors=c.send_errors,
            reactions_sent=c.reactions_sent,
            reaction_errors=c.reaction_errors,
            reaction_deliveries=c.reaction_deliveries,
            deliveries=c.deliveries,
            foreign=c.foreign,
            gaps=c.gaps,
            cpu_seconds=cpu,
            errors=dict(c.errors),
            close_codes=dict(c.close_codes),
            storm_dropped=[name for name, _ in self.storm],
            storm_resumed=[name for name, outcome in self.storm if outcome.resumed],
            resync_ms=[o.resync_ms for _, o in self.storm if o.resync_ms is not None],
        )

    # -- ticks ------------------------------------------------------------------------

    async def _tick_every_second(self) -> None:
        while True:
            index = max((time.time_ns() - self.spec.t0_ns) // NS_PER_S + 1, self._tick_index + 1)
            delay_ns = self.spec.t0_ns + index * NS_PER_S - time.time_ns()
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / NS_PER_S)
            self._tick(index)

    def _tick(self, index: int) -> None:
        self._tick_index = index
        c = self.counters
        owed = 0
        for member in self.members:
            if member.membership is not None:
                owed += member.membership.received
        self.on_tick(
            Tick(
                proc=self.spec.proc,
                index=index,
                open=c.open,
                connected=c.connected,
                failed=c.failed,
                sent=c.sent,
                deliveries=c.deliveries,
                owed_received=owed,
                errors=c.error_count,
                sent_by_room=dict(c.sent_by_room),
                members_by_room=dict(c.members_by_room),
                sending_done=self._sending_done,
                latency=c.rotate(),
            )
        )
