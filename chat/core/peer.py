"""One open connection, as the chat service sees it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from chat.core.frames import CONTROL, OutFrame
from chat.core.outbound import ServerFrame, encode
from chat.core.outbox import Outbox, Transport
from chat.core.policy import Actor
from chat.core.ratelimit import FrameLimiter


@dataclass(eq=False, slots=True)
class Peer:
    """One open connection of a named session."""

    conn: Transport
    outbox: Outbox
    name: str
    session: str
    limiter: FrameLimiter
    rooms: set[str] = field(default_factory=set)
    open: bool = True
    account: int | None = None  # None: a guest
    admin: bool = False
    # Names this connection in events that cross processes (a read marker goes
    # to the account's other connections, not back to the one that moved it).
    key: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def actor(self) -> Actor:
        """Who this connection is, as chat.core.policy asks."""
        return Actor(self.name, self.account, self.admin)

    def send(self, frame: ServerFrame, kind: int = CONTROL) -> None:
        self.outbox.push(OutFrame.of(encode(frame), kind))
