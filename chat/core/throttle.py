"""Sign-in throttling: growing waits after repeated failures. Pure; the clock is injected.

Failures are counted per key: the account's name key and the client's address
are two keys of one attempt. After :data:`FREE_FAILURES` failures in a row,
each further attempt must wait 1 s, 2 s, 4 s ... up to :data:`MAX_DELAY_S`
after the last failure; an attempt made while it must wait is refused and not
counted. A success clears the account's count (not the address's: signing in
to one's own account must not reset a guesser's count for others).

Memory stays bounded: an entry is forgotten :data:`FORGET_S` after its wait
has lapsed with no new failure (the count starts over), and beyond
:data:`MAX_ENTRIES` the least recently failed entries go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FREE_FAILURES = 5
MAX_DELAY_S = 15 * 60.0
FORGET_S = 15 * 60.0
MAX_ENTRIES = 100_000
# How often (clock seconds) the whole table is swept for forgotten entries.
SWEEP_S = 60.0


@dataclass(slots=True)
class _Entry:
    failures: int
    last: float  # clock seconds of the last failure

    def delay(self) -> float:
        if self.failures < FREE_FAILURES:
            return 0.0
        return min(2.0 ** (self.failures - FREE_FAILURES), MAX_DELAY_S)

    def ready_at(self) -> float:
        return self.last + self.delay()


def account_key(name_key: str) -> str:
    return "name:" + name_key


def address_key(address: str) -> str:
    return "addr:" + address


class Throttle:
    def __init__(self, clock: Callable[[], float], max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max_entries = max_entries
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds to wait before an attempt under these keys may be made; 0 when it may be made now."""
        now = self._clock()
        self._sweep(now)
        wait = 0.0
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                wait = max(wait, entry.ready_at() - now)
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            entry = self._entries.pop(key, None)
            if entry is None or self._lapsed(entry, now):
                entry = _Entry(0, now)
            entry.failures += 1
            entry.last = now
            self._entries[key] = entry  # most recent last: the oldest are evicted first
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)

    def _lapsed(self, entry: _Entry, now: float) -> bool:
        return now >= entry.ready_at() + FORGET_S

    def _sweep(self, now: float) -> None:
        if now - self._swept < SWEEP_S:
            return
        self._swept = now
        for key in [key for key, entry in self._entries.items() if self._lapsed(entry, now)]:
            del self._entries[key]
