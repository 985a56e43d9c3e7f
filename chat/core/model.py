"""Values shared by the chat rules, the history store and the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What one entry of a room's event log is. Every kind takes the room's next seq."""

    MESSAGE = "message"
    EDIT = "edit"
    DELETE = "delete"
    REACTION = "reaction"


# The reactions a message may get: a small fixed set, so every page can show
# them and nobody can flood a message with invented ones.
REACTIONS = ("👍", "👎", "😄", "🎉", "😕", "❤️", "🚀", "👀")


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of a room's event log. ``seq`` counts per room from 1 by exactly 1.

    ``kind`` MESSAGE is a message; EDIT, DELETE and REACTION are changes to the
    message whose seq is ``target``. A message read back "as it is now" carries
    its current text, ``edited`` (when last edited), ``deleted`` (a tombstone:
    its text is gone from the store) and ``reactions``."""

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
    kind: EventKind = EventKind.MESSAGE
    target: int | None = None  # EDIT, DELETE, REACTION: the message's seq
    emoji: str | None = None  # REACTION: one of REACTIONS
    on: bool | None = None  # REACTION: added (True) or taken back (False); the store decides (a toggle)
    edited: int | None = None  # MESSAGE as it is now: when it was last edited (ms)
    deleted: bool = False  # MESSAGE as it is now: deleted, its text removed
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()  # MESSAGE as it is now: (emoji, names), REACTIONS order
    mentions: tuple[str, ...] = ()  # MESSAGE: the room members it names with @name

    def to_wire(self, *, with_ref: bool = False) -> dict[str, Any]:
        """The event's frame (``message``, ``edit``, ``delete`` or ``reaction``);
        only the sender's own copy carries its ``ref``."""
        kind = self.kind
        frame: dict[str, Any] = {"type": str(kind), "room": self.room, "seq": self.seq}
        if kind is EventKind.MESSAGE:
            frame.update(name=self.name, text=self.text, ts=self.ts)
            if self.guest:
                frame["guest"] = True
            if self.mentions:
                frame["mentions"] = list(self.mentions)
            if self.edited is not None:
                frame["edited"] = self.edited
            if self.deleted:
                frame["deleted"] = True
            if self.reactions:
                frame["reactions"] = {emoji: list(names) for emoji, names in self.reactions}
        else:
            frame["target"] = self.target
            if kind is EventKind.EDIT:
                frame["text"] = self.text
            elif kind is EventKind.REACTION:
                frame.update(emoji=self.emoji, on=self.on)
            frame.update(name=self.name, ts=self.ts)
            if self.guest:
                frame["guest"] = True
        if with_ref and self.ref is not None:
            frame["ref"] = self.ref
        return frame

    def to_public(self) -> dict[str, Any]:
        """The event as it appears in ``history`` and ``joined`` lists."""
        return self.to_wire(with_ref=False)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: a message as it is now, with a snippet whose matches are marked."""

    room: str
    seq: int
    name: str
    ts: int
    snippet: str  # the matched words between "[" and "]" (plain text: the page marks them up safely)
    guest: bool = False

    def to_wire(self) -> dict[str, Any]:
        hit: dict[str, Any] = {"room": self.room, "seq": self.seq, "name": self.name, "ts": self.ts}
        if self.guest:
            hit["guest"] = True
        hit["snippet"] = self.snippet
        return hit


@dataclass(frozen=True, slots=True)
class ReadState:
    """An account's reading position in one room, as the server counts it."""

    read: int  # the last seq the account has read (0: none)
    unread: int  # messages after it, not its own and not deleted
    mentions: int  # of those, the ones that name it


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
    state: ReadState | None = None  # where the account stopped reading, and what is new since

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
        if self.state is not None:
            frame.update(read=self.state.read, unread=self.state.unread, mentions=self.state.mentions)
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
