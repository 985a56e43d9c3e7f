"""Presence held back and sent together, so a busy room's presence costs O(n), not O(n x churn).

Every join or leave of a room goes to each of its other members: a join storm
into a room of n members costs n²/2 presence frames, and in a large room the
people coming and going dominate what its members receive (issue 9: 50,000
sockets into rooms of 100 spent more of the load generator's CPU on presence
than on anything else). Slack and Discord do not send presence for large
rooms at all; we still do, but at a bounded rate:

- a room of fewer than :data:`SMALL` members gets every change at once, as before;
- a larger room of ``n`` gets a change at once when it has had none for
  ``window(n) = n / FRAMES_PER_S`` seconds (at most :data:`MAX_WINDOW_S`);
  changes within that window wait for its end and go as one frame;
- a change that undoes a waiting one (a leave after a join, a join after a
  leave: a reload) cancels it: the members were never told, nothing changed;
- anything else sent to the room (a message, an edit, typing) first sends what
  waits, so presence is delayed but never reordered with the room's events.

So each member of a room gets at most ``FRAMES_PER_S / n`` presence frames a
second, and the room's presence costs at most about :data:`FRAMES_PER_S`
frames a second per process however many join. ``n`` is the room's member
count everywhere, as this process last heard it (a join reads the member list;
each change moves it by one): it only sets the window.

Pure: the caller passes a clock, a timer and what to do with the changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

SMALL = 10  # rooms below this many members get every change at once
FRAMES_PER_S = 20.0  # a larger room's window is n / this
MAX_WINDOW_S = 5.0


def window(members: int) -> float:
    """How long a room of ``members`` waits after sending presence before sending it again."""
    if members < SMALL:
        return 0.0
    return min(MAX_WINDOW_S, members / FRAMES_PER_S)


@dataclass(frozen=True, slots=True)
class Change:
    """One name joining (``joined``) or leaving a room; ``account``: the name is an account's."""

    name: str
    joined: bool
    account: bool

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"event": "join" if self.joined else "leave", "name": self.name}
        if self.account:
            wire["account"] = True
        return wire


class Timer(Protocol):
    def cancel(self) -> None: ...


# schedule(at, callback): call ``callback`` when the clock reaches ``at``.
Schedule = Callable[[float, Callable[[], None]], Timer]
# deliver(room, changes): send these changes, in order, to the room's members.
Deliver = Callable[[str, list[Change]], None]


@dataclass(slots=True)
class _Room:
    members: int = 0
    quiet_from: float = 0.0  # when the room may send presence at once again
    waiting: dict[str, Change] = field(default_factory=dict)  # insertion-ordered
    timer: Timer | None = None


class PresenceDigest:
    """Per room: send presence at once or hold it to the end of the room's window (see the module)."""

    def __init__(self, clock: Callable[[], float], schedule: Schedule, deliver: Deliver) -> None:
        self._clock = clock
        self._schedule = schedule
        self._deliver = deliver
        self._rooms: dict[str, _Room] = {}

    def counted(self, room: str, members: int) -> None:
        """The room's member count, read afresh (a join read its member list)."""
        self._rooms.setdefault(room, _Room()).members = members

    def change(self, room: str, change: Change) -> None:
        """A name joined or left ``room``: send it now or hold it."""
        r = self._rooms.setdefault(room, _Room())
        r.members = max(0, r.members + (1 if change.joined else -1))
        now = self._clock()
        if not r.waiting and now >= r.quiet_from:
            r.quiet_from = now + window(r.members)
            self._deliver(room, [change])
            return
        held = r.waiting.pop(change.name, None)
        if held is None or held.joined == change.joined:
            r.waiting[change.name] = change
        # else: it undoes the held change, and the members were never told of either
        if r.waiting and r.timer is None:
            r.timer = self._schedule(r.quiet_from, lambda: self._due(room))

    def flush(self, room: str) -> None:
        """Send what waits for ``room`` now: something else is about to go to its members."""
        r = self._rooms.get(room)
        if r is not None and r.waiting:
            self._send(room, r)

    def forget(self, room: str) -> None:
        """This process has nobody in ``room`` any more."""
        r = self._rooms.pop(room, None)
        if r is not None and r.timer is not None:
            r.timer.cancel()

    def close(self) -> None:
        for room in list(self._rooms):
            self.forget(room)

    def waiting(self, room: str) -> list[Change]:
        r = self._rooms.get(room)
        return list(r.waiting.values()) if r is not None else []

    def _due(self, room: str) -> None:
        r = self._rooms.get(room)
        if r is None:
            return
        r.timer = None
        if r.waiting:
            self._send(room, r)

    def _send(self, room: str, r: _Room) -> None:
        if r.timer is not None:
            r.timer.cancel()
            r.timer = None
        changes = list(r.waiting.values())
        r.waiting.clear()
        r.quiet_from = self._clock() + window(r.members)
        self._deliver(room, changes)
