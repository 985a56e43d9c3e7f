"""The broker of one process: everything is a function call, presence is a dict.

:class:`LocalBroker` is the embedded default; its interface is
:class:`chat.backends.base.Broker`.
"""

from __future__ import annotations

from typing import Any

from chat.backends.base import OnControl, OnEvent, OnLogout, OnMessages, presence_frame
from chat.core.model import Message


class LocalBroker:
    """One process: the history store's commit listener delivers, presence is a dict."""

    def __init__(self) -> None:
        self._on_messages: OnMessages | None = None
        self._on_event: OnEvent | None = None
        self._on_control: OnControl | None = None
        self._present: dict[str, set[str]] = {}  # room -> names

    def listen(self, on_messages: OnMessages, on_event: OnEvent, on_logout: OnLogout) -> None:
        # Logout has nothing to reach beyond this process.
        self._on_messages = on_messages
        self._on_event = on_event

    def deliver(self, messages: list[Message]) -> None:
        """The store's commit listener (see SQLiteHistory.listen): synchronous, in seq order."""
        if self._on_messages is not None:
            self._on_messages(messages)

    @property
    def healthy(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._present.clear()

    async def subscribe(self, room: str) -> None:
        pass  # every commit in this process is delivered

    def unsubscribe(self, room: str) -> None:
        pass

    async def caught_up(self, room: str, seq: int) -> None:
        pass  # delivery happens inside the commit, so nothing is ever in flight

    async def enter(self, room: str, name: str) -> None:
        names = self._present.setdefault(room, set())
        if name not in names:
            names.add(name)
            self._event(room, name, presence_frame(room, "join", name))

    def exit(self, room: str, name: str) -> None:
        names = self._present.get(room)
        if names is None or name not in names:
            return
        names.discard(name)
        if not names:
            del self._present[room]
        self._event(room, name, presence_frame(room, "leave", name))

    def announce(self, room: str, name: str, frame: dict[str, Any]) -> None:
        self._event(room, name, frame)

    def _event(self, room: str, name: str, frame: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(room, name, frame)

    async def members(self, room: str) -> list[str]:
        return sorted(self._present.get(room, ()), key=str.casefold)

    async def member_counts(self) -> dict[str, int]:
        return {room: len(names) for room, names in self._present.items()}

    async def claim(self, name: str, session: str) -> bool:
        return True  # the service's own NameRegistry is the whole truth here

    def release(self, name: str, session: str) -> None:
        pass

    def logout(self, name: str, session: str) -> None:
        pass

    def listen_control(self, on_control: OnControl) -> None:
        self._on_control = on_control

    def control(self, event: dict[str, Any]) -> None:
        if self._on_control is not None:
            self._on_control(event)
