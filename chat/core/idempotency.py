"""The window in which a repeated ``say`` ref returns the original message."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# Long enough for any reconnect-and-retry a client does; the store keeps refs
# too, so the window is rebuilt from history after a restart.
WINDOW_S = 600.0
# Bounds memory under a flood of unique refs (about 100 bytes an entry).
MAX_ENTRIES = 1_000_000


@dataclass(frozen=True, slots=True)
class Sent:
    room: str
    seq: int
    at: float  # wall-clock seconds


class IdempotencyWindow:
    """Maps (session, ref) to the message it created, for :data:`WINDOW_S`."""

    def __init__(self, window_s: float = WINDOW_S, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str], Sent] = OrderedDict()
        self._window_s = window_s
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session: str, ref: str, now: float) -> Sent | None:
        self._expire(now)
        return self._entries.get((session, ref))

    def put(self, session: str, ref: str, sent: Sent) -> None:
        key = (session, ref)
        self._entries.pop(key, None)
        self._entries[key] = sent
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Entries are kept in insertion order, which is time order.
        while self._entries:
            key, sent = next(iter(self._entries.items()))
            if now - sent.at < self._window_s:
                break
            del self._entries[key]
