"""What an account does besides chatting: rooms of its own, DMs, moderation, and what the server says of it.

:class:`AccountCalls` is part of :class:`chat.client.ChatClient`: the
``create``/``dm``/``invite``/``remove``/``ban``/``unban``/``role``/``members``
requests of docs/protocol.md, the ``welcome`` (who we are, our rooms), and the
list of our rooms that ``invited``, ``removed`` and ``role`` events keep current.
A guest may call none of the requests: the server answers ``unauthorized``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat.core.validation import name_key

Frame = dict[str, Any]


class AccountCalls:
    """The account side of a :class:`chat.client.ChatClient` (a mixin: it sends
    through the client's ``_request`` and names us by its ``name``)."""

    def __init__(self) -> None:
        self._welcome: Frame = {}
        self._my_rooms: dict[str, Frame] = {}

    @property
    def name(self) -> str:
        raise NotImplementedError

    async def _request(
        self,
        frame: Frame,
        *,
        resend: bool = True,
        once: bool = False,
        on_reply: Callable[[Frame], None] | None = None,
    ) -> Frame:
        raise NotImplementedError

    @property
    def welcome(self) -> Frame:
        """The last ``welcome`` frame (empty before the first connection)."""
        return dict(self._welcome)

    @property
    def account(self) -> bool:
        """True when signed in as an account (with a token)."""
        return self._welcome.get("account") is True

    @property
    def admin(self) -> bool:
        """True when the account is a site admin."""
        return self._welcome.get("admin") is True

    @property
    def guest(self) -> bool:
        """True when chatting as a guest (a name, no account)."""
        return self._welcome.get("guest") is True

    @property
    def my_rooms(self) -> list[Frame]:
        """The account's rooms (``{"room","title","visibility","kind","role"}``, DMs
        with ``"people"``, and the server's ``read``, ``unread`` and ``mentions``):
        the welcome's list, kept current by ``invited``, ``removed`` and ``role``
        events, and by ``read`` frames (our marker moved here or on another
        device; the counts are not recounted as messages arrive). Empty for guests."""
        return [dict(room) for room in self._my_rooms.values()]

    # -- rooms and people (accounts only: a guest gets ``unauthorized``) -----------------

    async def create(self, room: str, visibility: str = "public") -> Frame:
        """Create a room; returns the ``created`` frame. A private room's id is
        made by the server (``created["room"]``, ``~`` and 20 letters) and
        ``room`` is its title; a public room's id is its name (``room_exists``
        if it exists). We are its owner, not in it yet: :meth:`join` it next.

        Sent at most once: if the connection drops before the answer, this raises
        :class:`Disconnected` rather than risk a second private room."""
        return await self._request({"type": "create", "room": room, "visibility": visibility}, once=True)

    async def dm(self, names: list[str] | tuple[str, ...]) -> Frame:
        """The direct-message room with the accounts ``names`` (1 to 7 people
        besides us): the ``created`` frame (its ``people`` include us), the same
        room every time for the same people. :meth:`join` it to read and write."""
        # The server counts "to" as the others (it adds us): our own name would
        # take one of the 7 places.
        me = name_key(self.name)
        return await self._request({"type": "dm", "to": [n for n in names if name_key(n) != me]})

    async def invite(self, room: str, name: str) -> Frame:
        """Make the account ``name`` a member of ``room`` (owners and moderators);
        returns the ``done`` frame (also when it was a member already, so a
        resend across a reconnect is harmless)."""
        return await self._manage("invite", room, name)

    async def remove(self, room: str, name: str) -> Frame:
        """Take ``name`` out of ``room`` (owners and moderators; our own name:
        leave it for good). Sent at most once, like :meth:`create`: sent again,
        it would be answered ``not_found`` (no longer a member)."""
        return await self._manage("remove", room, name, once=True)

    async def ban(self, room: str, name: str) -> Frame:
        """Remove ``name`` from ``room`` and keep it out (owners and moderators)."""
        return await self._manage("ban", room, name)

    async def unban(self, room: str, name: str) -> Frame:
        """Lift a ban: ``name`` may be invited (or join a public room) again.
        Sent at most once, like :meth:`remove` (again: ``not_found``, not banned)."""
        return await self._manage("unban", room, name, once=True)

    async def set_role(self, room: str, name: str, role: str) -> Frame:
        """Make a member ``"moderator"`` or ``"member"`` again (owners only)."""
        return await self._manage("role", room, name, role=role)

    async def members(self, room: str) -> list[Frame]:
        """The room's accounts with their standing: ``[{"name": N, "role": S}]``."""
        reply = await self._request({"type": "members", "room": room})
        members: list[Frame] = reply.get("members", [])
        return members

    async def _manage(self, action: str, room: str, name: str, *, once: bool = False, **extra: str) -> Frame:
        return await self._request({"type": action, "room": room, "name": name, **extra}, once=once)

    # -- what the server tells us of our rooms -------------------------------------------

    def _welcomed(self, welcome: Frame) -> None:
        """Every connection's welcome: our rooms as the server has them now."""
        self._welcome = welcome
        rooms = welcome.get("rooms")
        self._my_rooms = {r["room"]: r for r in rooms if isinstance(r, dict)} if isinstance(rooms, list) else {}

    def _track(self, frame: Frame) -> None:
        """Keep :attr:`my_rooms` current with an ``invited``, ``removed``, ``role`` or ``read`` frame."""
        kind = frame.get("type")
        if kind == "invited":
            room = frame["room"]
            self._my_rooms[room["room"]] = room
        elif kind == "removed":
            self._my_rooms.pop(frame["room"], None)
        elif kind == "role":
            mine = self._my_rooms.get(frame["room"])
            if mine is not None and name_key(str(frame["name"])) == name_key(self.name):
                mine["role"] = frame["role"]
        elif kind == "read":
            # Our marker moved (here or on another device): the server's counts as of then.
            mine = self._my_rooms.get(frame["room"])
            if mine is not None:
                mine.update({k: frame[k] for k in ("unread", "mentions") if k in frame}, read=frame.get("seq"))
