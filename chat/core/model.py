"""Values shared by the chat rules, the history store and the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One stored room message. ``seq`` counts per room from 1 by exactly 1."""

    room: str
    seq: int
    name: str
    text: str
    ts: int  # milliseconds since the epoch, set by the server
    session: str = ""  # the sending session's id, kept for idempotent retries
    ref: str | None = None  # the sender's ref, echoed only to the sender
    # Sent by a guest (or, before accounts existed, by a nickname): anyone could
    # have picked that name, so every reader is shown it was not an account.
    guest: bool = False

    def to_wire(self, *, with_ref: bool = False) -> dict[str, Any]:
        """The ``message`` frame; only the sender's own copy carries its ``ref``."""
        frame: dict[str, Any] = {
            "type": "message",
            "room": self.room,
            "seq": self.seq,
            "name": self.name,
            "text": self.text,
            "ts": self.ts,
        }
        if self.guest:
            frame["guest"] = True
        if with_ref and self.ref is not None:
            frame["ref"] = self.ref
        return frame

    def to_public(self) -> dict[str, Any]:
        """The message as it appears in ``history`` and ``joined`` lists."""
        return self.to_wire(with_ref=False)


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: str
    members: int
    last_seq: int
    title: str = ""  # empty: the room's name (a public room)
    visibility: str = "public"
    kind: str = "room"
    role: str | None = None  # the caller's standing, in its own rooms
    people: tuple[str, ...] = ()  # a DM's participants

    def to_wire(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "room": self.room,
            "title": self.title or self.room,
            "visibility": self.visibility,
            "kind": self.kind,
            "members": self.members,
            "last_seq": self.last_seq,
        }
        if self.role is not None:
            frame["role"] = self.role
        if self.people:
            frame["people"] = list(self.people)
        return frame


class Standing(StrEnum):
    """An account's place in one room. ``BANNED`` is not a membership: it only keeps the account out."""

    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"
    BANNED = "banned"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class RoomKind(StrEnum):
    ROOM = "room"
    DM = "dm"  # a private room of 2 to 8 accounts, fixed at its start


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    admin: bool = False
    disabled: bool = False
    created: int = 0  # ms since the epoch


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room's durable description. ``room`` is its id on the wire: a public room's
    name, or a server-made id for private rooms and DMs (see chat.core.validation)."""

    room: str
    visibility: Visibility
    kind: RoomKind = RoomKind.ROOM
    title: str = ""  # what people see: the name asked for at ``create``; empty for DMs
    created: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    """One row of a room's member list: an account and its standing there."""

    account: int
    name: str
    standing: Standing


@dataclass(frozen=True, slots=True)
class MyRoom:
    """One of an account's rooms, as ``welcome`` lists it."""

    info: RoomInfo
    standing: Standing
    people: list[str] = field(default_factory=list)  # a DM's participants, by name

    def to_wire(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "room": self.info.room,
            "title": self.info.title,
            "visibility": self.info.visibility,
            "kind": self.info.kind,
            "role": self.standing,
        }
        if self.info.kind is RoomKind.DM:
            frame["people"] = self.people
        return frame


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token for scripts, as its owner sees it: never the secret, which is shown once."""

    id: int
    account: int
    label: str
    created: int
    last_used: int | None = None
    revoked: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "created": self.created,
            "last_used": self.last_used,
            "revoked": self.revoked,
        }
