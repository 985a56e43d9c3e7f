"""The broker seam: carries committed messages and room events to every process
with members in the room, and knows who is present across processes.

:class:`Broker` is the interface; :class:`LocalBroker` is the embedded default
(one process, so everything is a function call) and
:class:`chat.redis_broker.RedisBroker` spans processes and machines. The
service drives both the same way, and ``tests/test_contract.py`` holds both to
the same contract.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chat.model import Message

OnMessages = Callable[[list[Message]], None]
# (room, name, frame): a frame for every member of ``room`` but the
# connections of ``name`` (presence and typing).
OnEvent = Callable[[str, str, dict[str, Any]], None]
# A session logged out: close its sockets in this process.
OnLogout = Callable[[str], None]


def presence_frame(room: str, event: str, name: str) -> dict[str, Any]:
    return {"type": "presence", "room": room, "event": event, "name": name}


class Broker(Protocol):
    def listen(self, on_messages: OnMessages, on_event: OnEvent, on_logout: OnLogout) -> None:
        """Where deliveries go. ``on_messages`` gets each committed message of
        a subscribed room exactly once, in seq order per room."""
        ...

    @property
    def healthy(self) -> bool:
        """False while the backplane is unreachable: the server is degraded."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Leave every room this process is present in, and disconnect."""
        ...

    async def subscribe(self, room: str) -> None:
        """Deliver ``room``'s messages committed from now on. Raises StoreUnavailable."""
        ...

    def unsubscribe(self, room: str) -> None:
        """This process has no member in ``room`` any more."""
        ...

    async def caught_up(self, room: str, seq: int) -> None:
        """Return once every message of ``room`` up to ``seq`` was delivered. Raises StoreUnavailable."""
        ...

    async def enter(self, room: str, name: str) -> None:
        """The first connection of ``name`` in this process joined ``room``.

        A ``join`` presence event goes to the room when no process had ``name``
        there before. Raises StoreUnavailable."""
        ...

    def exit(self, room: str, name: str) -> None:
        """The last connection of ``name`` in this process left ``room``."""
        ...

    def announce(self, room: str, name: str, frame: dict[str, Any]) -> None:
        """An ephemeral frame (typing) for the room's other members; lost if the backplane is down."""
        ...

    def members(self, room: str) -> Awaitable[list[str]]:
        """The names present in ``room`` across processes, sorted (an awaitable: see HistoryStore.before)."""
        ...

    async def member_counts(self) -> dict[str, int]:
        """Distinct names present per room, across processes."""
        ...

    async def claim(self, name: str, session: str) -> bool:
        """Hold ``name`` for ``session`` across processes; False if another session holds it."""
        ...

    def release(self, name: str, session: str) -> None:
        """A connection that :meth:`claim` admitted closed; the hold lapses after the
        reservation once no process has a connection of ``session`` using ``name``."""
        ...

    def logout(self, name: str, session: str) -> None:
        """Free ``name`` now and close ``session``'s sockets in every process."""
        ...


class LocalBroker:
    """One process: the history store's commit listener delivers, presence is a dict."""

    def __init__(self) -> None:
        self._on_messages: OnMessages | None = None
        self._on_event: OnEvent | None = None
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
