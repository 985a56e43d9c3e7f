"""Server frames: every frame the server sends, as a frozen dataclass. Pure, no I/O.

The client's frames are parsed into the dataclasses of :mod:`chat.core.protocol`;
these are the other direction. Each ``to_wire()`` returns the JSON object the
client receives, keys in the order docs/protocol.md shows them; an optional
``ref`` (the request's, echoed to its sender) comes last and only when set.
:func:`encode` turns a frame into its text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chat.core.errors import ErrorCode
from chat.core.model import (
    Member,
    Message,
    MyRoom,
    ReadState,
    RoomInfo,
    RoomKind,
    RoomSummary,
    SearchHit,
    Standing,
    Visibility,
)

Wire = dict[str, Any]


def _ref(frame: Wire, ref: str | None) -> Wire:
    if ref is not None:
        frame["ref"] = ref
    return frame


@dataclass(frozen=True, slots=True)
class Welcome:
    name: str
    session: str  # a guest's session token, to resume with ``?session=``; empty for accounts
    account: bool = False
    admin: bool = False
    rooms: tuple[MyRoom, ...] = ()  # an account's durable memberships

    def to_wire(self) -> Wire:
        return {
            "type": "welcome",
            "name": self.name,
            "session": self.session,
            "account": self.account,
            "admin": self.admin,
            "guest": not self.account,
            "rooms": [r.to_wire() for r in self.rooms],
        }


@dataclass(frozen=True, slots=True)
class Error:
    code: ErrorCode
    message: str
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "error", "code": self.code, "message": self.message}, self.ref)


@dataclass(frozen=True, slots=True)
class Joined:
    room: str
    members: list[str]
    last_seq: int
    history: list[Message]
    truncated: bool = False  # a resume missed more than fits: fetch the rest with ``history``
    ref: str | None = None
    info: RoomInfo | None = None  # None: a public room of that name
    role: Standing | None = None  # the joiner's standing; None for guests
    people: tuple[str, ...] = ()  # a DM's participants
    accounts: tuple[str, ...] = ()  # the members who are accounts; the others are guests
    state: ReadState | None = None  # an account's read marker and what is new since

    def to_wire(self) -> Wire:
        info = self.info
        frame: Wire = {
            "type": "joined",
            "room": self.room,
            "members": self.members,
            "last_seq": self.last_seq,
            "history": [m.to_public() for m in self.history],
            "title": info.title if info is not None else self.room,
            "visibility": info.visibility if info is not None else Visibility.PUBLIC,
            "kind": info.kind if info is not None else RoomKind.ROOM,
            "role": self.role,
        }
        if self.people:
            frame["people"] = list(self.people)
        if self.accounts:
            frame["accounts"] = list(self.accounts)
        if self.state is not None:
            frame.update(read=self.state.read, unread=self.state.unread, mentions=self.state.mentions)
        if self.truncated:
            frame["truncated"] = True
        return _ref(frame, self.ref)


@dataclass(frozen=True, slots=True)
class Left:
    room: str
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "left", "room": self.room}, self.ref)


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """A stored message; only the sender's own copy (``with_ref``) carries its ref."""

    message: Message
    with_ref: bool = False

    def to_wire(self) -> Wire:
        return self.message.to_wire(with_ref=self.with_ref)


@dataclass(frozen=True, slots=True)
class History:
    room: str
    messages: list[Message]
    ref: str | None = None

    def to_wire(self) -> Wire:
        messages = [m.to_public() for m in self.messages]
        return _ref({"type": "history", "room": self.room, "messages": messages}, self.ref)


@dataclass(frozen=True, slots=True)
class Rooms:
    rooms: list[RoomSummary]
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "rooms", "rooms": [r.to_wire() for r in self.rooms]}, self.ref)


@dataclass(frozen=True, slots=True)
class Pong:
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "pong"}, self.ref)


@dataclass(frozen=True, slots=True)
class Presence:
    room: str
    event: str  # "join" or "leave"
    name: str

    def to_wire(self) -> Wire:
        return {"type": "presence", "room": self.room, "event": self.event, "name": self.name}


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    name: str

    def to_wire(self) -> Wire:
        return {"type": "typing", "room": self.room, "name": self.name}


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages ``from_seq``..``to_seq`` of ``room`` were dropped for a slow member: fetch them."""

    room: str
    from_seq: int
    to_seq: int

    def to_wire(self) -> Wire:
        return {"type": "gap", "room": self.room, "from_seq": self.from_seq, "to_seq": self.to_seq}


@dataclass(frozen=True, slots=True)
class Created:
    """The answer to ``create`` and ``dm``: the room, with the creator's standing."""

    room: MyRoom
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "created", **self.room.to_wire()}, self.ref)


@dataclass(frozen=True, slots=True)
class Done:
    """The answer to ``invite``, ``remove``, ``ban``, ``unban`` and ``role``."""

    action: str
    room: str
    name: str
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "done", "action": self.action, "room": self.room, "name": self.name}, self.ref)


@dataclass(frozen=True, slots=True)
class Members:
    room: str
    members: list[Member]
    ref: str | None = None

    def to_wire(self) -> Wire:
        members = [{"name": m.name, "role": m.standing} for m in self.members]
        return _ref({"type": "members", "room": self.room, "members": members}, self.ref)


@dataclass(frozen=True, slots=True)
class Removed:
    """This connection is out of ``room``: nothing more from it follows."""

    room: str
    reason: str  # "removed", "banned" or "left"

    def to_wire(self) -> Wire:
        return {"type": "removed", "room": self.room, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Invited:
    """The account was added to a room (invited, a DM started, a room created): its lists update."""

    room: MyRoom

    def to_wire(self) -> Wire:
        return {"type": "invited", "room": self.room.to_wire()}


@dataclass(frozen=True, slots=True)
class RoleChanged:
    room: str
    name: str
    role: Standing

    def to_wire(self) -> Wire:
        return {"type": "role", "room": self.room, "name": self.name, "role": self.role}


@dataclass(frozen=True, slots=True)
class Read:
    """An account's read marker in a room moved: the reply to ``read``, and to its other connections."""

    room: str
    state: ReadState
    ref: str | None = None

    def to_wire(self) -> Wire:
        frame: Wire = {"type": "read", "room": self.room, "seq": self.state.read}
        frame.update(unread=self.state.unread, mentions=self.state.mentions)
        return _ref(frame, self.ref)


@dataclass(frozen=True, slots=True)
class SearchResults:
    results: list[SearchHit]
    ref: str | None = None

    def to_wire(self) -> Wire:
        return _ref({"type": "search", "results": [hit.to_wire() for hit in self.results]}, self.ref)


ServerFrame = (
    Welcome
    | Error
    | Joined
    | Left
    | MessageFrame
    | History
    | Rooms
    | Pong
    | Presence
    | Typing
    | Gap
    | Created
    | Done
    | Members
    | Removed
    | Invited
    | RoleChanged
    | Read
    | SearchResults
)


def encode(frame: ServerFrame | Wire) -> str:
    """A server frame's text. Compact separators: every byte is sent to every member."""
    wire = frame if isinstance(frame, dict) else frame.to_wire()
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
