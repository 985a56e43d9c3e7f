"""What the service counts, as an interface: the core never imports a metrics library.

:class:`chat.server.metrics.Metrics` implements :class:`ServiceMeters` with
prometheus_client; :class:`NullMeters` counts nothing, for a service built
without one (tests, embedding).
"""

from __future__ import annotations

from typing import Protocol


class Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Level(Protocol):
    def set(self, value: float) -> None: ...


class Spread(Protocol):
    def observe(self, amount: float) -> None: ...


class ServiceMeters(Protocol):
    # Read-only members, so an implementation may hold more specific types
    # (prometheus_client's Gauge, Counter, Histogram).
    @property
    def connections(self) -> Level: ...
    @property
    def rooms(self) -> Level: ...
    @property
    def messages(self) -> Count: ...
    @property
    def deliveries(self) -> Count: ...
    @property
    def gaps(self) -> Count: ...
    @property
    def slow_closes(self) -> Count: ...
    @property
    def fanout(self) -> Spread: ...
    @property
    def history_write(self) -> Spread: ...


class _Nothing:
    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class NullMeters:
    """Counts nothing."""

    def __init__(self) -> None:
        nothing = _Nothing()
        self.connections: Level = nothing
        self.rooms: Level = nothing
        self.messages: Count = nothing
        self.deliveries: Count = nothing
        self.gaps: Count = nothing
        self.slow_closes: Count = nothing
        self.fanout: Spread = nothing
        self.history_write: Spread = nothing
