"""Values shared by the chat rules, the history store and the adapters."""

from __future__ import annotations

from dataclasses import dataclass
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

    def to_wire(self) -> dict[str, Any]:
        return {"room": self.room, "members": self.members, "last_seq": self.last_seq}
