"""The coordinator: start the server if asked, drive the workers through a run, collect what they saw.

Phases: connect (every worker connects and joins its members on the ramp
schedule), then send from one start time shared by all workers (chat, storm)
or hold (idle), then drain until every owed delivery has arrived or
``--drain`` is up, then close. The server's figures are read around the
measured phase: before sending and after the drain (chat, storm), or before
connecting and once all sockets are up (idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from chat.loadtest.metrics import ServerProbe, ServerSnapshot, metrics_url_for
from chat.loadtest.monitor import Monitor
from chat.loadtest.options import LoadConfig
from chat.loadtest.procs import RemoteWorker
from chat.loadtest.progress import Progress, format_line
from chat.loadtest.schedule import NS_PER_S
from chat.loadtest.spawn import SpawnedServer
from chat.loadtest.worker import Ready, Tick, Worker, WorkerResult, WorkerSpec, ssl_context_for

# Sending starts on a whole second of the tick grid at least this far ahead,
# so that every worker process has the start time before it comes.
GO_LEAD_NS = 300_000_000


class WorkerHandle(Protocol):
    async def prepare(self) -> Ready: ...
    async def send(self, go_ns: int) -> None: ...
    async def finish(self) -> WorkerResult: ...


@dataclass(slots=True)
class RunData:
    """Everything a run measured, for :mod:`chat.loadtest.report`."""

    config: LoadConfig
    results: list[WorkerResult]
    monitor: Monitor
    go_index: int  # whole seconds from the start to the go (timeline origin)
    measured_s: float  # the sending window (chat, storm) or the hold (idle)
    server_before: ServerSnapshot = field(default_factory=ServerSnapshot)
    server_after: ServerSnapshot = field(default_factory=ServerSnapshot)
    metrics_note: str | None = None


class Coordinator:
    def __init__(self, config: LoadConfig, stderr: TextIO = sys.stderr) -> None:
        self.config = config
        self.progress = Progress(stderr, quiet=config.quiet)
        self.monitor = Monitor(config.procs)
        self.phase = "connecting"
        self.t0_ns = 0
        # Tags this run's messages: short, as every byte of it goes to every member.
        self.run_id = secrets.token_hex(3)
        self._drained = asyncio.Event()

    async def run(self) -> RunData:
        """The whole run; a server spawned for it is stopped however the run ends."""
        server: SpawnedServer | None = None
        config = self.config
        if config.spawn_server:
            server = await SpawnedServer(config.server_args).start()
            config = dataclasses.replace(config, url=server.url, server_pid=server.pid)
            self.config = config
        try:
            return await self._run(config)
        finally:
            self.progress.done()
            if server is not None:
                await server.stop()

    async def _run(self, config: LoadConfig) -> RunData:
        assert config.url is not None
        probe = ServerProbe(
            config.metrics_url or metrics_url_for(config.url),
            config.server_pid,
            ssl_context_for(config.url, config.cafile),
        )
        self.t0_ns = time.time_ns()
        workers: list[WorkerHandle] = []
        for proc in range(config.procs):
            spec = WorkerSpec(config, proc, self.t0_ns, self.run_id)
            workers.append(Worker(spec, self._on_tick) if config.procs == 1 else RemoteWorker(spec, self._on_tick))
        try:
            return await self._drive(config, workers, probe)
        except BaseException:
            for worker in workers:
                if isinstance(worker, RemoteWorker):
                    await worker.kill()
            raise

    async def _drive(self, config: LoadConfig, workers: list[WorkerHandle], probe: ServerProbe) -> RunData:
        idle = config.scenario == "idle"
        before = await probe.snapshot() if idle else ServerSnapshot()
        await asyncio.gather(*(w.prepare() for w in workers))
        if idle:
            after = await probe.snapshot()
            go_index = self._grid_second_ahead()
            self.phase = "holding"
            started = time.perf_counter()
            await asyncio.sleep(config.duration)  # holding the sockets open is the measurement
            measured = time.perf_counter() - started
        else:
            before = await probe.snapshot()
            go_index = self._grid_second_ahead()
            go_ns = self.t0_ns + go_index * NS_PER_S
            self.phase = "sending"
            await asyncio.gather(*(w.send(go_ns) for w in workers))
            measured = (time.time_ns() - go_ns) / NS_PER_S
            self.phase = "draining"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), config.drain)
            after = await probe.snapshot()
        self.phase = "closing"
        results = list(await asyncio.gather(*(w.finish() for w in workers)))
        return RunData(config, results, self.monitor, go_index, measured, before, after, probe.metrics_note)

    def _grid_second_ahead(self) -> int:
        """The first whole second after the start that is at least GO_LEAD_NS away."""
        return -(-(time.time_ns() + GO_LEAD_NS - self.t0_ns) // NS_PER_S)

    def _on_tick(self, tick: Tick) -> None:
        monitor = self.monitor
        monitor.add(tick)
        if self.phase == "draining" and monitor.all_delivered():
            self._drained.set()
        index = monitor.next_complete_second()
        if index is not None and not self.config.quiet:
            p50, p99 = monitor.percentiles(index)
            line = format_line(
                float(index), self.phase, monitor.open, monitor.sent, monitor.deliveries, monitor.errors, p50, p99
            )
            self.progress.show(line)
