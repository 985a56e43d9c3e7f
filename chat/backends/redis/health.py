"""Whether a process's link to Redis is up, and one log line per outage.

The broker is healthy while its subscription is confirmed
(:mod:`chat.backends.redis.subscription`) and its heartbeat is answered
(:mod:`chat.backends.redis.presence`); either one failing starts an outage,
and both working again ends it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Health:
    """The two halves of the link, and when the current outage started."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.subscribed = False
        self.beating = False
        self.down_since: float | None = None
        # Called once each outage ends (the publisher sends what it kept meanwhile).
        self.on_back: Callable[[], None] | None = None

    @property
    def healthy(self) -> bool:
        return self.subscribed and self.beating

    def up(self, connected: bool) -> None:
        """Redis answered; ``connected`` if the subscription's connection is made."""
        if connected:
            self.subscribed = True
        if self.healthy and self.down_since is not None:
            log.warning("redis is back after %.1f s", self._clock() - self.down_since)
            self.down_since = None
            if self.on_back is not None:
                self.on_back()

    def lost(self, exc: BaseException) -> None:
        # Once per outage: a dead Redis must not also flood the log.
        if self.down_since is None:
            self.down_since = self._clock()
            log.error("redis unreachable, serving degraded and reconnecting: %s", exc)
