"""Per-room ordering of messages that arrive from a backplane. Pure: no I/O.

Redis pub/sub delivers each room's messages in seq order, but only while the
subscription is up, and only from the moment it is confirmed. The history
stream has every message. A :class:`Sequencer` joins the two: it hands each
message on exactly once, in seq order, and says when the subscription alone
cannot be trusted (a gap, a fresh subscription, a reconnect) so the caller
reads the missing range from the stream.

The protocol for one room:

1. :meth:`Sequencer.hold` when the subscription is (re)made: messages offered
   from now on are held, not passed on.
2. The caller reads the room's current seq ``now`` from the store, and the
   messages after the last one passed on (``base``) up to ``now``.
3. :meth:`Sequencer.resume` with them: it passes on the filled range, then the
   held messages newer than ``now`` as long as their seqs follow on, and the
   room flows again. A held message past a missing seq stops it there: the
   room stays held (:meth:`Sequencer.flowing` is False) and the caller fills
   again from what was passed on.

Step 2 happens after the subscription is confirmed, so what commits later is
offered; but not necessarily in seq order, nor at all: publishing is fire and
forget (a process killed between its commit and its publish never sends it),
and a process's own commit reaches it through its commit listener, which can
run after a later seq from another process came over pub/sub. So held
messages prove nothing about the seqs between ``now`` and them, and are only
passed on gap-free; the next fill reads a ``now`` at least as new as every
held message (each was committed before it was offered), so one more fill
always ends the hold. What arrives twice is dropped by seq.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.core.model import Message


@dataclass(slots=True)
class _Room:
    seen: int | None  # the last seq passed on; None before the first resume
    held: list[Message] | None = field(default_factory=list)  # None while flowing


class Sequencer:
    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    def __contains__(self, room: str) -> bool:
        return room in self._rooms

    def seen(self, room: str) -> int | None:
        """The last seq passed on for ``room``, None if none yet (or not tracked)."""
        r = self._rooms.get(room)
        return r.seen if r is not None else None

    def flowing(self, room: str) -> bool:
        r = self._rooms.get(room)
        return r is not None and r.held is None

    def hold(self, room: str) -> int | None:
        """Hold ``room``'s messages until :meth:`resume`; returns the fill's base (None: none needed)."""
        r = self._rooms.get(room)
        if r is None:
            r = self._rooms[room] = _Room(None)
        elif r.held is None:
            r.held = []
        return r.seen

    def resume(self, room: str, now: int, fill: list[Message]) -> list[Message]:
        """What to pass on, in order. ``fill`` covers (base, now] as far as the store has it.

        The room flows again unless a held message lies past a seq neither the
        fill nor the held messages have: then it stays held, and the caller
        fills again (see the module docstring)."""
        r = self._rooms.get(room)
        if r is None:
            return []
        out: list[Message] = []
        seen = r.seen if r.seen is not None else now
        for m in fill:
            if m.seq > seen:
                out.append(m)
                seen = m.seq
        # A fill that came back short (retention removed the start of the
        # range) must not hold up what follows ``now``: what is gone is gone.
        seen = max(seen, now)
        held = sorted(r.held or [], key=lambda m: m.seq)
        r.held = None
        for i, m in enumerate(held):
            if m.seq > seen + 1:
                r.held = held[i:]  # wait for the next fill
                break
            if m.seq > seen:
                out.append(m)
                seen = m.seq
        r.seen = seen
        return out

    def offer(self, message: Message) -> list[Message] | None:
        """A message from the subscription: what to pass on now (often just it),
        or None when a gap shows that messages were lost: hold and fill the room."""
        r = self._rooms.get(message.room)
        if r is None:
            return []  # not subscribed (any more)
        if r.held is not None:
            r.held.append(message)
            return []
        assert r.seen is not None
        if message.seq <= r.seen:
            return []  # already passed on (it came with a fill)
        if message.seq > r.seen + 1:
            r.held = [message]
            return None
        r.seen = message.seq
        return [message]

    def forget(self, room: str) -> None:
        self._rooms.pop(room, None)

    def rooms(self) -> list[str]:
        return list(self._rooms)
