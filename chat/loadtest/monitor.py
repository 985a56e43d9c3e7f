"""The coordinator's view of the workers' ticks: live totals, the timeline, and whether the drain is over."""

from __future__ import annotations

from collections import Counter, defaultdict

from chat.loadtest import stats
from chat.loadtest.worker import Tick


class Monitor:
    def __init__(self, procs: int) -> None:
        self.procs = procs
        self.latest: dict[int, Tick] = {}
        self._latency_by_index: defaultdict[int, list[bytes]] = defaultdict(list)
        self._rendered = 0

    def add(self, tick: Tick) -> None:
        self.latest[tick.proc] = tick
        self._latency_by_index[tick.index].append(tick.latency)

    def _sum(self, attribute: str) -> int:
        return sum(int(getattr(t, attribute)) for t in self.latest.values())

    @property
    def open(self) -> int:
        return self._sum("open")

    @property
    def sent(self) -> int:
        return self._sum("sent")

    @property
    def deliveries(self) -> int:
        return self._sum("deliveries")

    @property
    def errors(self) -> int:
        return self._sum("errors")

    def next_complete_second(self) -> int | None:
        """A second every process has now reported and that was not returned before, or None."""
        if len(self.latest) < self.procs:
            return None
        index = min(t.index for t in self.latest.values())
        if index <= self._rendered:
            return None
        self._rendered = index
        return index

    def percentiles(self, index: int) -> tuple[float | None, float | None]:
        """``(p50, p99)`` in ms of the deliveries in second ``index``."""
        return stats.quick_percentiles_ms(stats.merge(self._latency_by_index.get(index, [])))

    def all_delivered(self) -> bool:
        """Every process is done sending and the deliveries owed have all arrived.

        Without the merged ledger the owed total is bounded from above by
        "messages sent to a room times the members the room ever had", which is
        exact while members stay: the drain ends early only when nothing is
        missing, and otherwise runs its full time.
        """
        if len(self.latest) < self.procs or not all(t.sending_done for t in self.latest.values()):
            return False
        sent: Counter[str] = Counter()
        members: Counter[str] = Counter()
        for tick in self.latest.values():
            sent.update(tick.sent_by_room)
            members.update(tick.members_by_room)
        owed = sum(count * members[room] for room, count in sent.items())
        return self._sum("owed_received") >= owed

    def timeline(self, go_index: int) -> list[dict[str, float | int | None]]:
        """One entry per second after sending started: ``t`` (seconds since), p50, p99, deliveries."""
        entries: list[dict[str, float | int | None]] = []
        for index in sorted(self._latency_by_index):
            if index <= go_index:
                continue
            merged = stats.merge(self._latency_by_index[index])
            p50, p99 = stats.quick_percentiles_ms(merged)
            entries.append(
                {"t": index - go_index, "p50_ms": p50, "p99_ms": p99, "deliveries": merged.get_total_count()}
            )
        return entries
