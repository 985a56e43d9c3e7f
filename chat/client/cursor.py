"""Where a reader stands in one room: which seq comes next, what waits, what to fetch.

Pure: no I/O, no clock, no event loop. A room's events (messages, and the
edits, deletions and reactions that change them: each takes the room's next
seq, so "message" below means any of them) carry consecutive seqs (1, 2,
3...). The cursor orders them by seq alone, whatever their kind. A reader
that wants each exactly once and in order feeds every message it receives
(live, in a ``joined``'s history, in a history page) to
:meth:`RoomCursor.accept`, and delivers what the answer releases. A message
past a hole is held; the caller fetches the hole with ``history`` after
:attr:`RoomCursor.fill_after` and hands each page to :meth:`RoomCursor.page`,
which releases what the hole held back. Seqs the store does not have (it never
stored them) are skipped rather than waited for forever, and reported.

:class:`chat.client.ChatClient` keeps one cursor per joined room, and the load
tester walks a gap with one (``chat.loadtest.client``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

# Whatever the caller delivers: a frame dict, a parsed message.
T = TypeVar("T")


class Verdict(enum.Enum):
    """What :meth:`RoomCursor.accept` decided about one message."""

    DELIVER = "deliver"  # the next seq: deliver it, and whatever it unblocked
    DUPLICATE = "duplicate"  # delivered (or held) already: drop it
    HELD = "held"  # past a hole: held until the hole is filled


@dataclass(frozen=True, slots=True)
class Accepted(Generic[T]):
    verdict: Verdict
    # Deliver these now, in this order (ascending seq): the message itself, then
    # any held messages it made consecutive. Empty unless DELIVER.
    released: tuple[T, ...] = ()
    # HELD: fetch history after this seq (the cursor's position) to fill the hole.
    fill_after: int | None = None


@dataclass(frozen=True, slots=True)
class Filled(Generic[T]):
    """What one history page changed."""

    # Deliver these now, in this order.
    released: tuple[T, ...]
    # Seq ranges (first, last) the store does not have: skipped, never delivered.
    skipped: tuple[tuple[int, int], ...]


class RoomCursor(Generic[T]):
    """One room's reading position: delivered up to :attr:`last`, known to exist
    up to :attr:`known`, and the messages held past a hole.

    ``T`` is whatever the caller delivers (a frame dict, a parsed message); the
    cursor only orders it by the seq given with it.
    """

    def __init__(self, last: int) -> None:
        """``last``: every message up to this seq was delivered, or predates the reader."""
        self._last = last
        self._known = last
        self._held: dict[int, T] = {}

    @property
    def last(self) -> int:
        """Every message up to this seq was delivered: a resuming join passes it as ``since``."""
        return self._last

    @property
    def known(self) -> int:
        """Messages up to this seq exist on the server."""
        return self._known

    @property
    def held(self) -> int:
        """How many messages wait for a hole to be filled."""
        return len(self._held)

    @property
    def fill_after(self) -> int | None:
        """The ``after`` of the next history page to fetch, or None when nothing is missing."""
        return self._last if self._last < self._known else None

    def accept(self, seq: int, item: T) -> Accepted[T]:
        """A message with ``seq`` arrived (live, or in a page): deliver, drop or hold it."""
        if seq <= self._last or seq in self._held:
            return Accepted(Verdict.DUPLICATE)
        if seq > self._last + 1:
            self._held[seq] = item
            self._known = max(self._known, seq - 1)
            return Accepted(Verdict.HELD, fill_after=self._last)
        self._last = seq
        self._known = max(self._known, seq)
        return Accepted(Verdict.DELIVER, (item, *self._drain()))

    def expect(self, upto: int) -> int | None:
        """Messages up to ``upto`` exist (a ``gap`` frame, a ``joined``'s ``last_seq``).

        Returns the ``after`` to fetch from when some of them are missing, else None."""
        self._known = max(self._known, upto)
        return self.fill_after

    def page(self, after: int, messages: Iterable[tuple[int, T]]) -> Filled[T]:
        """A history page: the store's messages after ``after`` (``(seq, item)``,
        ascending), as an answer to :attr:`fill_after`.

        The store returns what it has in seq order, so a seq missing below the
        page's highest one was never stored: it is skipped. An empty page means
        the store has nothing more: everything still missing is skipped."""
        released: list[T] = []
        top = after
        for seq, item in messages:
            top = max(top, seq)
            released.extend(self.accept(seq, item).released)
        if top == after:
            top = self._known
        skipped: list[tuple[int, int]] = []
        # Holes below ``top`` will never be filled: jump each one, releasing what it held.
        while self._last < top:
            first_held = min(self._held, default=top + 1)
            end = min(first_held, top + 1) - 1
            if end > self._last:
                skipped.append((self._last + 1, end))
                self._last = end
            released.extend(self._drain())
        return Filled(tuple(released), tuple(skipped))

    def _drain(self) -> list[T]:
        released: list[T] = []
        while (nxt := self._held.pop(self._last + 1, None)) is not None:
            self._last += 1
            released.append(nxt)
        return released
