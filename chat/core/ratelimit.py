"""Per-connection frame rate limits. Pure: the caller passes the time in.

A frame over the rate is never dropped: the limiter says how long to wait
before handling it, and the connection reads nothing else meanwhile, so its
frames are handled later, in order, and TCP pushes back on the sender. A
connection that stays behind the bucket for a sustained period is flooding,
and is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

# A frame that finds less than this many tokens in the bucket was already
# waiting in the socket when its turn came: its sender is behind the bucket
# (ahead of the rate). Half a token rather than one, so that a sender keeping
# to the rate, whose frames come a little early or late with network jitter
# (up to half a frame interval), is not counted as behind.
BEHIND_TOKENS = 0.5
# ... and it has caught up once a frame finds this many: the reader sat idle
# for two frame intervals, so the sender's backlog is gone. More than
# BEHIND_TOKENS so that a busy event loop, waking up to a frame interval late
# from a wait, does not make a flooder look calm and restart its window.
CAUGHT_UP_TOKENS = 2.0
# A connection behind the bucket this long without a break is flooding: it is
# closed with 1008. At the default 20 frames/s with a burst of 40, a client that
# sends 300 frames at once (a reconnect replaying a few hundred unsent messages)
# is behind for 13 s and stays open. Kept below the default ping interval
# (20 s, which Tornado also uses as the pong timeout): a pong waits in the
# socket behind the flood, so a longer window would be cut short by a ping
# timeout, and the flooder would reconnect without ever being told why.
FLOOD_WINDOW_S = 15.0


class Verdict(Enum):
    ALLOW = "allow"  # handle the frame now
    WAIT = "wait"  # handle it after FrameLimiter.wait seconds, reading nothing else meanwhile
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

    def refill(self, now: float) -> float:
        """Add what accrued since the last call; returns the tokens available now
        (negative while frames are owed from a reservation)."""
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self, now: float) -> bool:
        """One token now, or False (and nothing taken)."""
        if self.refill(now) >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def reserve(self, now: float) -> float:
        """One token, owed if need be: returns the seconds until it exists (0: now).

        The caller must take nothing more before then, or the debt grows.
        """
        self.refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0.0 else -self.tokens / self.rate


@dataclass(slots=True)
class FrameLimiter:
    """The rate limit of one connection, with the flood rule on top of it.

    :meth:`check` answers each frame in arrival order. A frame over the rate
    gets :attr:`Verdict.WAIT` and :attr:`wait` seconds: the caller handles it
    then and reads no other frame of the connection meanwhile. A connection
    whose frames have found the bucket empty (:data:`BEHIND_TOKENS`), and
    have not caught up since (:data:`CAUGHT_UP_TOKENS`), for ``window``
    seconds (:data:`FLOOD_WINDOW_S`) is closed. ``rate`` 0 disables both.
    """

    rate: float
    burst: float
    window: float = FLOOD_WINDOW_S
    bucket: TokenBucket = field(init=False)
    # Seconds to wait before handling the frame last answered WAIT.
    wait: float = field(default=0.0, init=False)
    # Since when every frame has found the bucket empty; None while keeping up.
    behind_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.rate, self.burst)

    def check(self, now: float) -> Verdict:
        if self.rate <= 0:
            return Verdict.ALLOW
        found = self.bucket.refill(now)
        if self.behind_since is None:
            if found < BEHIND_TOKENS:
                self.behind_since = now
        elif found >= CAUGHT_UP_TOKENS:
            self.behind_since = None  # the reader caught up with the sender
        elif now - self.behind_since >= self.window:
            return Verdict.CLOSE
        self.wait = self.bucket.reserve(now)
        return Verdict.WAIT if self.wait > 0.0 else Verdict.ALLOW
