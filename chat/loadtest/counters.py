"""The live figures of one load-generating process, written by its members on the hot path."""

from __future__ import annotations

from collections import Counter

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from chat.loadtest import stats


class Counters:
    """Plain attributes, so that a delivery costs a few attribute updates and no call."""

    def __init__(self) -> None:
        # Latencies since the last tick; :meth:`rotate` folds them into ``total``.
        self.interval = stats.BucketCounts()
        self.total: HdrHistogram = stats.new_histogram()
        # How late each say left against its schedule: the load generator's own
        # health. Latency is measured from the schedule either way, but a lag
        # that grows means this process, not the server, is the bottleneck.
        self.send_lag: HdrHistogram = stats.new_histogram()
        self.attempted = 0
        self.connected = 0  # connects that got as far as joined
        self.failed = 0
        self.open = 0  # sockets open now
        self.connect_ms: list[float] = []
        self.sent = 0
        self.send_errors = 0
        self.reactions_sent = 0  # --reactions-per-message: reactions written (also counted in sent_by_room)
        self.reaction_errors = 0  # ... refused by the server
        self.reaction_deliveries = 0  # reaction frames of this run received (also in deliveries)
        self.deliveries = 0  # every message (or reaction) frame received, owed or not
        self.foreign = 0  # message frames not written by a load tester
        self.gaps = 0
        self.sent_by_room: Counter[str] = Counter()  # every event sent: says and reactions
        self.members_by_room: Counter[str] = Counter()  # memberships ever started
        self.errors: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def rotate(self) -> bytes:
        """Close the current interval: add it to the total and return it encoded."""
        finished = self.interval.take()
        self.total.add(finished)
        return stats.encode(finished)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())
