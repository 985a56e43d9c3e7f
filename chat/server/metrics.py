"""The server's own figures, for ``GET /metrics`` (Prometheus text format).

One process: one registry per service, never prometheus_client's global one,
so two apps in one process (tests, a restart) never share or clash over
counters, and the standard process and GC collectors describe the process.

Under ``server.py --workers N`` (a :class:`Cluster`), every worker writes its
figures to files in the supervisor's private ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode), and whichever worker answers
``/metrics`` reads all of them with a ``MultiProcessCollector``: counters and
histograms are sums over every worker that ever ran (a dead worker's counts
stay), gauges are ``livesum`` (the supervisor removes a dead worker's gauge
files with ``mark_process_dead``). The process collectors would describe only
the worker that answers, so :class:`TreeCollector` gives the ``process_*``
figures of the supervisor and every worker, from /proc.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from chat.server import proctree

# Fan-out of one message to a room: microseconds for small rooms, milliseconds
# for thousands of members.
_FANOUT_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25)
# A history write: tens of microseconds when the page cache takes it.
_WRITE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class Cluster:
    """A worker of ``server.py --workers``: where the workers' figures meet, and whose tree is the server."""

    directory: str
    supervisor_pid: int


class Metrics:
    def __init__(self, cluster: Cluster | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if cluster is None:
            self._scraped = r
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        else:
            _use_multiprocess_values(cluster.directory)
            # Only the collectors that cover every worker: the metrics below
            # live in self.registry too, but it is never rendered, or each
            # would be exported twice (once from this process, once merged).
            self._scraped = CollectorRegistry()
            MultiProcessCollector(self._scraped, path=cluster.directory)  # type: ignore[no-untyped-call]
            TreeCollector(cluster.supervisor_pid, registry=self._scraped)
            PlatformCollector(registry=self._scraped)
        # Set where connections and rooms come and go (a gauge's set_function
        # cannot be shared across processes); livesum adds the live workers'.
        self.connections = Gauge(
            "chat_connections", "Open WebSocket connections", multiprocess_mode="livesum", registry=r
        )
        self.rooms = Gauge(
            "chat_rooms",
            "Rooms with members (under --workers, summed over workers: a room with members on two counts twice)",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.messages = Counter(
            "chat_messages",
            "Room messages broadcast (under --workers, once by each worker with members in the room;"
            " chat_history_write_seconds_count counts each stored once)",
            registry=r,
        )
        self.deliveries = Counter("chat_deliveries", "Room messages written or queued to members", registry=r)
        self.gaps = Counter("chat_gaps", "Gap notices sent to slow consumers", registry=r)
        self.slow_closes = Counter(
            "chat_slow_consumer_closes", "Connections closed with 1013 for not reading", registry=r
        )
        self.fanout = Histogram(
            "chat_fanout_seconds",
            "Time to write or queue one message to every member (a batch's time shared by its messages)",
            buckets=_FANOUT_BUCKETS,
            registry=r,
        )
        self.history_write = Histogram(
            "chat_history_write_seconds", "Time to store one message", buckets=_WRITE_BUCKETS, registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self._scraped)


def _use_multiprocess_values(directory: str) -> None:
    """Make the metrics created from now on in this process write to ``directory``.

    prometheus_client picks file-backed values when it is first imported, if
    PROMETHEUS_MULTIPROC_DIR is set then. The supervisor imports it before it
    knows it will fork workers, so each worker switches here, before its first
    metric, to the class the library would have picked.
    """
    os.environ[MULTIPROC_ENV] = directory
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class TreeCollector(Collector):
    """The standard ``process_*`` figures, for a process and every process below it.

    CPU, resident and virtual memory and open files are sums over the tree;
    the start time is the root's; the open-files limit is this process's (the
    workers inherit the supervisor's). ``chat_processes`` counts the tree.
    """

    def __init__(self, root: int, registry: CollectorRegistry | None = None, proc: Path = proctree.PROC) -> None:
        self.root = root
        self.proc = proc
        self._boot_time = _boot_time(proc)
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        try:
            usage = proctree.tree_usage(self.root, self.proc)
        except ProcessLookupError:
            return []
        found: list[Metric] = [
            GaugeMetricFamily("chat_processes", "Server processes: the supervisor and its workers", usage.processes),
            CounterMetricFamily(
                "process_cpu_seconds", "Total user and system CPU time of every server process", usage.cpu_seconds
            ),
            GaugeMetricFamily(
                "process_resident_memory_bytes", "Resident memory of every server process, summed", usage.rss_bytes
            ),
            GaugeMetricFamily(
                "process_virtual_memory_bytes", "Virtual memory of every server process, summed", usage.vms_bytes
            ),
            GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the server's supervisor since unix epoch in seconds",
                self._boot_time + usage.start_ticks / proctree.TICKS_PER_SECOND,
            ),
            GaugeMetricFamily(
                "process_max_fds",
                "Open files allowed per server process",
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            ),
        ]
        if usage.open_fds is not None:
            found.append(
                GaugeMetricFamily("process_open_fds", "Open files of every server process, summed", usage.open_fds)
            )
        return found


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def mark_process_dead(pid: int, directory: str) -> None:
    """A worker exited: drop its live gauges (connections, rooms) from the sums."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
