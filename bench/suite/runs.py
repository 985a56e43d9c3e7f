"""One run of the load tester against one server: what it was asked to do (Load) and what it measured (Run)."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any


@dataclasses.dataclass
class Load:
    key: str  # file-name friendly: "burst", "load-40k", "idle-10k", "hold-19000"
    options: list[str]  # load-tester options, without the URL, --json, --server-pid and -q
    timeout_s: float  # the whole load-tester process is killed after this long


@dataclasses.dataclass
class Run:
    server: str
    load: str
    command: list[str]
    server_command: list[str]
    report: dict[str, Any] | None = None
    error: str | None = None
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    server_rss_before: int = 0
    server_rss_after: int = 0
    server_rss_peak: int = 0
    server_fds_before: int = 0
    server_busiest: float = 0.0  # cores, busiest second
    server_exit: int | None = None
    generator_cpu_s: float = 0.0
    generator_busiest: float = 0.0  # cores, busiest second of the busiest generating process
    others_cores: float = 0.0  # cores used meanwhile by every other process on the machine
    waited_s: float = 0.0  # waited beforehand for other work on the machine to calm down
    # The redis scenario: the offered deliveries/s, redis-server's CPU around the whole load-tester run
    # and its busiest second (cores), and the server log's warnings and errors ("2x ERROR logger: text").
    offered_per_s: int | None = None
    redis_cpu_s: float = 0.0
    redis_busiest: float = 0.0
    # The redis scenario's PostgreSQL cluster (every process of it), likewise: CPU seconds and busiest second.
    postgres_cpu_s: float = 0.0
    postgres_busiest: float = 0.0
    log_notes: list[str] = dataclasses.field(default_factory=list)

    def get(self, *path: str) -> Any:
        """A value of the load tester's report, or None."""
        node: Any = self.report
        for key in path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    @property
    def received(self) -> int:
        return int(self.get("deliveries", "received") or 0)

    @property
    def cpu_us_per_delivery(self) -> float | None:
        """The harness's figure: server CPU around the whole load-tester run, per delivery received."""
        return self.server_cpu_s * 1e6 / self.received if self.received else None

    @property
    def window_us_per_delivery(self) -> float | None:
        """The load tester's figure: server CPU from the start of sending to the end of the drain."""
        value = self.get("server", "cpu_us_per_delivery")
        return float(value) if value is not None else None

    @property
    def sockets_held(self) -> int:
        return int(self.get("connect", "connected") or 0)

    @property
    def fully_connected(self) -> bool:
        attempted = self.get("connect", "attempted")
        return self.error is None and bool(attempted) and self.sockets_held == attempted

    def timeline(self) -> list[tuple[int, int]]:
        """``(second since sending started, deliveries in that second)`` from the load tester's report."""
        entries = self.get("timeline")
        if not isinstance(entries, list):
            return []
        return [(int(e["t"]), int(e["deliveries"] or 0)) for e in entries if isinstance(e, dict) and "t" in e]

    @property
    def burst_per_s(self) -> float | None:
        """Deliveries received over the seconds from the start of sending to the last delivery."""
        seconds = [t for t, n in self.timeline() if n]
        return self.received / max(seconds) if seconds else None

    @property
    def sustained_per_s(self) -> float | None:
        """The median second's deliveries while sending (the first second, still filling up, left out).

        The load tester's deliveries.per_second divides by the sending window alone, which
        overstates a server that is still delivering during the drain.
        """
        duration = float(self.get("config", "duration") or 0)
        per_second = [n for t, n in self.timeline() if 2 <= t <= duration]
        return statistics.median(per_second) if per_second else None

    @property
    def connect_cpu_ms(self) -> float | None:
        """An idle run's server CPU from before connecting until every socket was up, per socket."""
        cpu = self.get("server", "cpu_seconds")
        return float(cpu) * 1000 / self.sockets_held if cpu is not None and self.sockets_held else None

    @property
    def idle_bytes_per_socket(self) -> float | None:
        """The harness's own figure: peak RSS over the fresh server's RSS, per socket held."""
        held = self.sockets_held
        return (self.server_rss_peak - self.server_rss_before) / held if held else None
