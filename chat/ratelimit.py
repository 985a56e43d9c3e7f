"""Per-connection frame rate limits. Pure: the caller passes the time in."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

# A sustained flood is judged over this window: long enough that a burst of
# typing or a client catching up after a reconnect is never mistaken for abuse.
FLOOD_WINDOW_S = 10.0
# ... and a connection averaging this many times its allowed rate over the
# window, after being limited for the whole window, is closed.
FLOOD_FACTOR = 5


class Verdict(Enum):
    ALLOW = "allow"
    LIMIT = "limit"  # drop the frame, answer rate_limited
    CLOSE = "close"  # sustained flood: close the connection with 1008


@dataclass(slots=True)
class TokenBucket:
    """Allows ``rate`` frames a second on average and ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self) -> bool:
        return self.tokens >= self.burst - 1.0


@dataclass(slots=True)
class FrameLimiter:
    """The rate limit of one connection, with the flood rule on top of it.

    A frame over the rate is dropped. A connection that has been over the rate
    for :data:`FLOOD_WINDOW_S` and sent :data:`FLOOD_FACTOR` times the rate
    over that window is closed. ``rate`` 0 disables both.
    """

    rate: float
    burst: float
    bucket: TokenBucket = field(init=False)
    limited_since: float | None = field(default=None, init=False)
    # Frame counts per whole second of the window, oldest first.
    _window: list[tuple[int, int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.rate, self.burst)

    def check(self, now: float) -> Verdict:
        if self.rate <= 0:
            return Verdict.ALLOW
        self._count(now)
        if self.bucket.take(now):
            if self.limited_since is not None and self.bucket.full():
                self.limited_since = None  # the client calmed down
            return Verdict.ALLOW
        if self.limited_since is None:
            self.limited_since = now
        if now - self.limited_since >= FLOOD_WINDOW_S and self._sent_in_window() >= (
            FLOOD_FACTOR * self.rate * FLOOD_WINDOW_S
        ):
            return Verdict.CLOSE
        return Verdict.LIMIT

    def _count(self, now: float) -> None:
        second = int(now)
        horizon = second - int(FLOOD_WINDOW_S)
        while self._window and self._window[0][0] <= horizon:
            self._window.pop(0)
        if self._window and self._window[-1][0] == second:
            self._window[-1] = (second, self._window[-1][1] + 1)
        else:
            self._window.append((second, 1))

    def _sent_in_window(self) -> int:
        return sum(count for _, count in self._window)
