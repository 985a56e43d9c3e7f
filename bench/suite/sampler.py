"""A thread that samples CPU and memory four times a second while a run goes: busiest seconds, others' work."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from contextlib import suppress

from .proc import cpu_seconds, descendants, machine_busy_seconds, tree_cpu_seconds, tree_status_bytes

# Samples of CPU and RSS during a run: fine enough to see a saturated second.
SAMPLE_INTERVAL_S = 0.25


@dataclasses.dataclass
class Sample:
    t: float
    server_cpu: float  # the server process and every process below it (workers)
    server_rss: int
    generator_cpu: dict[int, float]  # pid -> cpu seconds, for each load-generating process
    machine_cpu: float  # busy seconds of all CPUs together
    redis_cpu: float = 0.0  # the redis scenario's redis-server, when it is watched
    postgres_cpu: float = 0.0  # its PostgreSQL cluster (the postmaster and every process below it), likewise


class Sampler:
    """Samples the server's CPU and RSS and the load generator's CPU (and Redis's and PostgreSQL's) in a thread."""

    def __init__(
        self, server_pid: int, generator_pid: int, redis_pid: int | None = None, postgres_pid: int | None = None
    ) -> None:
        self.server_pid = server_pid
        self.generator_pid = generator_pid
        self.redis_pid = redis_pid
        self.postgres_pid = postgres_pid
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                generator: dict[int, float] = {}
                for pid in descendants(self.generator_pid):
                    with suppress(FileNotFoundError, ProcessLookupError):
                        generator[pid] = cpu_seconds(pid)
                self.samples.append(
                    Sample(
                        time.monotonic(),
                        tree_cpu_seconds(self.server_pid),
                        tree_status_bytes(self.server_pid, "VmRSS"),
                        generator,
                        machine_busy_seconds(),
                        cpu_seconds(self.redis_pid) if self.redis_pid is not None else 0.0,
                        tree_cpu_seconds(self.postgres_pid) if self.postgres_pid is not None else 0.0,
                    )
                )
            except (FileNotFoundError, ProcessLookupError):
                return  # the server is gone: the run will report it
            self._stop.wait(SAMPLE_INTERVAL_S)

    def busiest(self, pick: Callable[[Sample], float], window_s: float = 1.0) -> float:
        """The highest CPU use (cores) of ``pick`` over any window of about ``window_s``."""
        best = 0.0
        start = 0
        for sample in self.samples:
            while sample.t - self.samples[start].t > window_s:
                start += 1
            first = self.samples[max(0, start - 1)]
            span = sample.t - first.t
            if span >= window_s * 0.75:
                best = max(best, (pick(sample) - pick(first)) / span)
        return best

    def others(self) -> float:
        """Cores used on average by everything but the server, the load generator, and the Redis and PostgreSQL
        being watched (the harness included)."""
        if len(self.samples) < 2:
            return 0.0
        first, last = self.samples[0], self.samples[-1]
        pids = {pid for s in self.samples for pid in s.generator_cpu}
        generator = 0.0
        for pid in pids:
            seen = [s.generator_cpu[pid] for s in self.samples if pid in s.generator_cpu]
            generator += seen[-1] - seen[0]
        busy = (
            last.machine_cpu
            - first.machine_cpu
            - (last.server_cpu - first.server_cpu)
            - (last.redis_cpu - first.redis_cpu)
            - (last.postgres_cpu - first.postgres_cpu)
            - generator
        )
        return max(0.0, busy / (last.t - first.t))

    def busiest_generator(self) -> float:
        """The busiest second of the busiest load-generating process."""
        best = 0.0
        for pid in {pid for s in self.samples for pid in s.generator_cpu}:

            def of_pid(sample: Sample, pid: int = pid) -> float:
                return sample.generator_cpu.get(pid, 0.0)

            best = max(best, self.busiest(of_pid))
        return best
