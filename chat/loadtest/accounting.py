"""The delivery ledger: which member had to get which message, and what it got.

Pure: no I/O, no clock, no event loop. The load tester feeds it events with
their wall-clock times (``time.time_ns()``, shared by every load-generating
process), and merges the ledgers of several processes at the end.

The rule it checks: a message sent to room R at time T must reach, exactly once
and in seq order, every member of R at T, that is every client whose ``joined``
for R had arrived before T and that had not left R by T. A member that joined
later may see the message (in ``joined``'s history or as a buffered live
message) but is not owed it: such deliveries count as ``extra``, not as errors.

Recording a delivery is O(1): a membership tracks the next seq it expects and
the seqs it skipped (holes). A seq below the next one fills a hole (out of
order, or late when fetched with ``history`` after a gap) or is a duplicate.
What every member was owed is computed once, at the end, from the sorted send
times of each room.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

# A seq that jumps further than this ahead of the next expected one is not
# tracked hole by hole: it would cost memory per skipped seq, and a jump this
# large means foreign traffic or a broken server, reported as ``seq_jumps``.
MAX_TRACKED_HOLES = 1_000_000


@dataclass(slots=True)
class Membership:
    """One client's stay in one room. The client keeps it and calls it for every message."""

    client: str
    room: str
    joined_ns: int
    left_ns: int | None = None
    next_seq: int = 0  # 0: unknown until the first message (a server that sent no last_seq)
    received: int = 0  # unique deliveries of messages sent while a member
    late: int = 0  # ... of which fetched with history after a gap or a truncated resume
    extra: int = 0  # deliveries of messages sent before joining or after leaving
    duplicated: int = 0
    out_of_order: int = 0
    gaps: int = 0  # gap notices from the server
    seq_jumps: int = 0
    holes: set[int] = field(default_factory=set)

    def deliver(self, seq: int, sent_ns: int) -> None:
        """A live ``message`` frame with ``seq``, sent at ``sent_ns``."""
        nxt = self.next_seq
        if seq == nxt or nxt == 0:
            self.next_seq = seq + 1
        elif seq > nxt:
            self._skip(nxt, seq)
            self.next_seq = seq + 1
        elif seq in self.holes:
            self.holes.discard(seq)
            self.out_of_order += 1
        else:
            self.duplicated += 1
            return
        self._count(sent_ns)

    def fill(self, seq: int, sent_ns: int) -> None:
        """A message fetched with ``history`` to fill a gap: it may follow later seqs, in order."""
        if seq >= self.next_seq or self.next_seq == 0:
            self.deliver(seq, sent_ns)
        elif seq in self.holes:
            self.holes.discard(seq)
            self.late += 1
            self._count(sent_ns)
        else:
            self.duplicated += 1

    def gap(self, from_seq: int, to_seq: int) -> None:
        """The server dropped ``from_seq..to_seq`` for this member (slow consumer); fetch them with :meth:`fill`."""
        self.gaps += 1
        self.missing(from_seq, to_seq)

    def missing(self, from_seq: int, to_seq: int) -> None:
        """``from_seq..to_seq`` will not come live (a gap, a truncated resume): they are owed by :meth:`fill`."""
        if self.next_seq == 0:
            self.next_seq = from_seq
        if to_seq >= self.next_seq:
            self._skip(max(from_seq, self.next_seq), to_seq + 1)
            self.next_seq = to_seq + 1

    @property
    def last_seq(self) -> int:
        """The newest seq seen in order: what a resuming join passes as ``since``."""
        return max(self.next_seq - 1, 0)

    def _skip(self, start: int, stop: int) -> None:
        if stop - start > MAX_TRACKED_HOLES:
            self.seq_jumps += 1
        else:
            self.holes.update(range(start, stop))

    def _count(self, sent_ns: int) -> None:
        if sent_ns >= self.joined_ns and (self.left_ns is None or sent_ns < self.left_ns):
            self.received += 1
        else:
            self.extra += 1


@dataclass(slots=True)
class Tally:
    """Deliveries owed and made, for a membership, a room or the whole run."""

    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    late: int = 0
    extra: int = 0
    gaps: int = 0

    def add(self, other: Tally) -> None:
        self.expected += other.expected
        self.received += other.received
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.out_of_order += other.out_of_order
        self.late += other.late
        self.extra += other.extra
        self.gaps += other.gaps

    @property
    def clean(self) -> bool:
        """Every owed delivery made, once, in order."""
        return self.lost == 0 and self.duplicated == 0 and self.out_of_order == 0


@dataclass(slots=True)
class RoomSends:
    sent_ns: list[int] = field(default_factory=list)
    failed_ns: list[int] = field(default_factory=list)  # refused by the server: never broadcast


@dataclass(slots=True)
class Summary:
    rooms: dict[str, Tally]
    total: Tally
    by_client: dict[str, Tally]


class Ledger:
    """Sends and memberships of one load-generating process; :meth:`merge` joins processes."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomSends] = {}
        self.memberships: list[Membership] = []

    def join(self, client: str, room: str, at_ns: int, last_seq: int | None = None) -> Membership:
        """``client``'s ``joined`` for ``room`` arrived at ``at_ns``; live messages follow ``last_seq``."""
        membership = Membership(client, room, at_ns, next_seq=last_seq + 1 if last_seq is not None else 0)
        self.memberships.append(membership)
        self.rooms.setdefault(room, RoomSends())
        return membership

    @staticmethod
    def leave(membership: Membership, at_ns: int) -> None:
        """The member is gone (left, or its socket closed for good): nothing sent from ``at_ns`` on is owed."""
        if membership.left_ns is None:
            membership.left_ns = at_ns

    def sent(self, room: str, at_ns: int) -> None:
        """A message was written to the server at ``at_ns`` (the time it carries in its text)."""
        sends = self.rooms.get(room)
        if sends is None:
            sends = self.rooms[room] = RoomSends()
        sends.sent_ns.append(at_ns)

    def failed(self, room: str, at_ns: int) -> None:
        """The server refused the message sent at ``at_ns`` (an error frame): nobody is owed it."""
        self.rooms.setdefault(room, RoomSends()).failed_ns.append(at_ns)

    @property
    def messages_sent(self) -> int:
        return sum(len(s.sent_ns) for s in self.rooms.values())

    def merge(self, other: Ledger) -> None:
        for room, sends in other.rooms.items():
            mine = self.rooms.setdefault(room, RoomSends())
            mine.sent_ns.extend(sends.sent_ns)
            mine.failed_ns.extend(sends.failed_ns)
        self.memberships.extend(other.memberships)

    def summary(self) -> Summary:
        """What each member was owed and got; per room and in total."""
        for sends in self.rooms.values():
            sends.sent_ns.sort()
            sends.failed_ns.sort()
        rooms = {room: Tally() for room in self.rooms}
        by_client: dict[str, Tally] = {}
        total = Tally()
        for m in self.memberships:
            tally = self._owed(m)
            rooms[m.room].add(tally)
            by_client.setdefault(m.client, Tally()).add(tally)
            total.add(tally)
        return Summary(rooms, total, by_client)

    def _owed(self, m: Membership) -> Tally:
        sends = self.rooms[m.room]
        expected = _count_between(sends.sent_ns, m.joined_ns, m.left_ns) - _count_between(
            sends.failed_ns, m.joined_ns, m.left_ns
        )
        return Tally(
            expected=expected,
            received=m.received,
            lost=max(expected - m.received, 0),
            duplicated=m.duplicated,
            out_of_order=m.out_of_order,
            late=m.late,
            extra=m.extra,
            gaps=m.gaps,
        )


def _count_between(times: list[int], start: int, stop: int | None) -> int:
    """How many of the sorted ``times`` fall in ``[start, stop)``."""
    end = len(times) if stop is None else bisect_left(times, stop)
    return max(end - bisect_left(times, start), 0)
