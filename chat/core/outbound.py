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
from chat.core.model import Message, RoomSummary

Wire = dict[str, Any]


def _ref(frame: Wire, ref: str | None) -> Wire:
    if ref is not None:
        frame["ref"] = ref
    return frame


@dataclass(frozen=True, slots=True)
class Welcome:
    name: str
    session: str  # the session token, to resume with ``?session=``

    def to_wire(self) -> Wire:
        return {"type": "welcome", "name": self.name, "session": self.session}


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

    def to_wire(self) -> Wire:
        frame: Wire = {
            "type": "joined",
            "room": self.room,
            "members": self.members,
            "last_seq": self.last_seq,
            "history": [m.to_public() for m in self.history],
        }
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


ServerFrame = Welcome | Error | Joined | Left | MessageFrame | History | Rooms | Pong | Presence | Typing | Gap


def encode(frame: ServerFrame | Wire) -> str:
    """A server frame's text. Compact separators: every byte is sent to every member."""
    wire = frame if isinstance(frame, dict) else frame.to_wire()
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
