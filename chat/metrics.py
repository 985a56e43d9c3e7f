"""The server's own figures, for ``GET /metrics`` (Prometheus text format).

One registry per service, never prometheus_client's global one, so two apps in
one process (tests, a restart) never share or clash over counters.
"""

from __future__ import annotations

from collections.abc import Callable

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
)

# Fan-out of one message to a room: microseconds for small rooms, milliseconds
# for thousands of members.
_FANOUT_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25)
# A history write: tens of microseconds when the page cache takes it.
_WRITE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, connections: Callable[[], int], rooms: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        Gauge("chat_connections", "Open WebSocket connections", registry=r).set_function(connections)
        Gauge("chat_rooms", "Rooms with members", registry=r).set_function(rooms)
        self.messages = Counter("chat_messages", "Room messages stored and broadcast", registry=r)
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
        return generate_latest(self.registry)
