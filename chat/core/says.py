"""Which ``say`` refs are being stored and which were stored: a retry never stores twice.

A client resends a ``say`` with the same ref when it did not see the
acknowledgement (a dropped connection, an ``unavailable``). :class:`SayLedger`
knows, per (session, ref), the store's future while the message is being
stored, who sent it (its acknowledgement carries the ref and goes to that
connection), and, for :data:`chat.core.idempotency.WINDOW_S` after, where it
was stored. Pure: the service asks it, and answers retries itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Generic, TypeVar

from chat.core.idempotency import IdempotencyWindow, Sent
from chat.core.model import Message

Sender = TypeVar("Sender")


def _sent(message: Message) -> Sent:
    return Sent(message.room, message.seq, message.ts / 1000)


class SayLedger(Generic[Sender]):
    """Says with a ref, from the append to the commit and for the window after it."""

    def __init__(self, window: IdempotencyWindow | None = None) -> None:
        self._window = window if window is not None else IdempotencyWindow()
        self._pending: dict[tuple[str, str], asyncio.Future[Message]] = {}
        self._senders: dict[tuple[str, str], Sender] = {}

    def restore(self, messages: Iterable[Message]) -> None:
        """Remember messages stored before this process started (the store's recent refs)."""
        for m in messages:
            if m.ref is not None:
                self._window.put(m.session, m.ref, _sent(m))

    def seen(self, session: str, ref: str, now: float) -> bool:
        """True when this ref is being stored or was stored within the window: the say is a retry."""
        return (session, ref) in self._pending or self._window.get(session, ref, now) is not None

    def storing(self, session: str, ref: str, future: asyncio.Future[Message], sender: Sender) -> None:
        """A say with a ref went to the store; ``future`` resolves at its commit."""
        self._pending[(session, ref)] = future
        self._senders[(session, ref)] = sender

    def pending(self, session: str, ref: str) -> asyncio.Future[Message] | None:
        """The store's future for a say with this ref still being stored, if any."""
        return self._pending.get((session, ref))

    def sent(self, session: str, ref: str, now: float) -> Sent | None:
        """Where the say with this ref was stored, within the window."""
        return self._window.get(session, ref, now)

    def committed(self, message: Message) -> Sender | None:
        """The store committed ``message``: remember it, and return who sent it (if it had a ref and is here)."""
        if message.ref is None:
            return None
        key = (message.session, message.ref)
        sender = self._senders.pop(key, None)
        self._pending.pop(key, None)
        self._window.put(message.session, message.ref, _sent(message))
        return sender

    def failed(self, session: str, ref: str) -> None:
        """The store did not take the say: a retry will be stored anew."""
        self._pending.pop((session, ref), None)
        self._senders.pop((session, ref), None)

    def duplicate(self, ref: str, original: Message) -> None:
        """The store recognised the say as a retry of ``original`` (sent through another process)."""
        self._window.put(original.session, ref, _sent(original))
