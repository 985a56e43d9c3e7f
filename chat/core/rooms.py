"""The in-memory room registry: who is in which room, and presence by name.

Pure and generic over the member type, so the service can keep any connection
object here. A member first joins *syncing*: messages published while its
history is being read are buffered, then :meth:`RoomRegistry.go_live` hands
them back so none falls between the history read and the live stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from chat.core.model import Message

M = TypeVar("M", bound=Hashable)


@dataclass(slots=True)
class Room(Generic[M]):
    name: str
    live: dict[M, None] = field(default_factory=dict)  # insertion-ordered set
    syncing: dict[M, list[Message]] = field(default_factory=dict)
    names: Counter[str] = field(default_factory=Counter)  # connections per member name

    def __len__(self) -> int:
        return len(self.live) + len(self.syncing)


class RoomRegistry(Generic[M]):
    def __init__(self) -> None:
        self._rooms: dict[str, Room[M]] = {}

    def __contains__(self, room: str) -> bool:
        return room in self._rooms

    def __len__(self) -> int:
        return len(self._rooms)

    def room(self, name: str) -> Room[M] | None:
        return self._rooms.get(name)

    def active(self) -> list[Room[M]]:
        return list(self._rooms.values())

    def is_member(self, room: str, member: M) -> bool:
        r = self._rooms.get(room)
        return r is not None and (member in r.live or member in r.syncing)

    def join(self, room: str, member: M, name: str) -> bool:
        """Add ``member`` (syncing). True when it is the first connection of ``name`` here."""
        r = self._rooms.get(room)
        if r is None:
            r = self._rooms[room] = Room(room)
        r.syncing[member] = []
        r.names[name] += 1
        return r.names[name] == 1

    def go_live(self, room: str, member: M) -> list[Message]:
        """Make a syncing member live; returns what was published meanwhile."""
        r = self._rooms[room]
        buffered = r.syncing.pop(member, [])
        r.live[member] = None
        return buffered

    def leave(self, room: str, member: M, name: str) -> bool:
        """Remove ``member``. True when it was the last connection of ``name`` here."""
        r = self._rooms.get(room)
        if r is None or (member not in r.live and member not in r.syncing):
            return False
        r.live.pop(member, None)
        r.syncing.pop(member, None)
        r.names[name] -= 1
        last = r.names[name] <= 0
        if last:
            del r.names[name]
        if not r.names:
            del self._rooms[room]
        return last

    def buffer(self, room: str, message: Message) -> None:
        """Hold ``message`` for every syncing member of ``room``."""
        r = self._rooms.get(room)
        if r is not None:
            for pending in r.syncing.values():
                pending.append(message)

    def member_names(self, room: str) -> list[str]:
        r = self._rooms.get(room)
        return sorted(r.names, key=str.casefold) if r is not None else []

    def member_count(self, room: str) -> int:
        """Distinct names in ``room``: two tabs of one person count once."""
        r = self._rooms.get(room)
        return len(r.names) if r is not None else 0
