"""Bookkeeping of a history store outage: what to log, and whether /healthz says degraded.

Pure: the service tells :class:`StoreOutage` when the store refused a message
and when a commit went through; the outage decides what is worth a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("chat.core.service")  # the lines read as the service's, as they always did

# While the store keeps failing, remind the log this often (not once per message).
OUTAGE_LOG_EVERY_S = 10.0
# /healthz says ``degraded`` for this long after the store last refused a
# message: a quiet chat sends nothing that would show the store works again.
DEGRADED_AFTER_REFUSAL_S = 10.0


class StoreOutage:
    """Counts refusals from the first one until a commit succeeds again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None  # when the store started refusing
        self._logged = 0.0
        self._refused = 0
        self._last_refused = 0.0

    @property
    def active(self) -> bool:
        """True from the first refusal until :meth:`recovered`."""
        return self._since is not None

    @property
    def refused_count(self) -> int:
        """Messages refused in the current outage (0 when there is none)."""
        return self._refused

    def refused(self, exc: BaseException) -> None:
        """The store refused a message: log the first refusal of an outage, then a reminder now and then.

        A full disk under load must not also fill the log with a line per refused message."""
        now = self._clock()
        self._refused += 1
        self._last_refused = now
        if self._since is None:
            self._since = self._logged = now
            log.error("history store unavailable: %s", exc)
        elif now - self._logged >= OUTAGE_LOG_EVERY_S:
            self._logged = now
            log.error("history store still unavailable (%d messages refused so far): %s", self._refused, exc)

    def recovered(self) -> None:
        """A commit went through: the outage, if any, is over."""
        if self._since is None:
            return
        log.warning(
            "history store works again after %.1f s; %d messages were refused",
            self._clock() - self._since,
            self._refused,
        )
        self._since = None
        self._refused = 0

    def degraded(self) -> bool:
        """True during an outage while the last refusal is recent (see DEGRADED_AFTER_REFUSAL_S)."""
        return self._since is not None and self._clock() - self._last_refused < DEGRADED_AFTER_REFUSAL_S
