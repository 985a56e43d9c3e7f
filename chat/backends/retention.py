"""Retention: with ``--retention-days N``, messages older than N days are deleted
in the background, once at start and then every hour, on either engine.

Without it nothing is ever deleted. The store's ``expire(cutoff_ms)`` deletes
in bounded chunks, one short transaction each, so a pass never holds a lock
for long; the rooms' counters are untouched, so a seq never goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from chat.backends.base import StoreUnavailable

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
# Rows per transaction: a few milliseconds of work, so writers wait at most that.
CHUNK = 1000
DAY_S = 86400.0


class Retention:
    """Calls ``expire(cutoff_ms)`` at :meth:`start` and every ``interval`` seconds after."""

    def __init__(
        self,
        days: float | None,
        expire: Callable[[int], Awaitable[int]],
        wall: Callable[[], float] = time.time,
        interval: float = INTERVAL_S,
    ) -> None:
        if days is not None and days <= 0:
            raise ValueError("retention days must be positive")
        self.days = days
        self._expire = expire
        self._wall = wall
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background passes (once; nothing without a retention period)."""
        if self.days is not None and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    def cutoff_ms(self) -> int:
        assert self.days is not None
        return int((self._wall() - self.days * DAY_S) * 1000)

    async def run_once(self) -> int:
        """One pass now: the number of messages deleted (0 without a retention period)."""
        if self.days is None:
            return 0
        return await self._expire(self.cutoff_ms())

    async def _loop(self) -> None:
        while True:
            try:
                deleted = await self.run_once()
                if deleted:
                    log.info("retention: deleted %d messages older than %g days", deleted, self.days)
            except StoreUnavailable as exc:
                log.warning("retention pass failed, next in %.0f s: %s", self._interval, exc)
            except Exception:  # a bug must not end the passes for good
                log.exception("retention pass failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
