"""Access-control events, applied to this process's connections.

Every process gets each event (:meth:`chat.backends.base.Broker.control`), so a
member removed, a session ended or an account disabled on one process takes
effect on all of them at once:

- ``{"t":"end","sessions":[keys]}``: close those sessions' sockets (signed out,
  password changed, token revoked);
- ``{"t":"disable","account":id}``: close every socket of the account;
- ``{"t":"removed","room":R,"account":id|null,"name":N,"reason":why}``: take the
  account's sockets (a guest's, by name, when ``account`` is null) out of R,
  and tell them ``removed``; nothing more of R reaches them;
- ``{"t":"invited","account":id,"room":{...}}``: tell the account's sockets;
- ``{"t":"role","room":R,"name":N,"role":S}``: tell R's live members;
- ``{"t":"name","name":N}``: an account now owns N: close guests using it;
- ``{"t":"read","account":id,"room":R,"state":[read,unread,mentions],"from":key}``:
  the account's read marker moved; its other connections are told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from chat.core import outbound as out
from chat.core.errors import CloseCode, CloseReason, ErrorCode
from chat.core.model import MyRoom, ReadState, RoomInfo, RoomKind, Standing, Visibility
from chat.core.peer import Peer
from chat.core.rooms import RoomRegistry
from chat.core.validation import name_key

log = logging.getLogger(__name__)


class Controls:
    def __init__(
        self,
        peers: Collection[Peer],
        rooms: RoomRegistry[Peer],
        leave: Callable[[Peer, str], None],
        disconnect: Callable[[Peer], None],
        account_name: Callable[[str], None] = lambda name: None,
    ) -> None:
        """``account_name``: told each name an account took (this process's copy of them)."""
        self._peers = peers
        self._rooms = rooms
        self._leave = leave
        self._disconnect = disconnect
        self._account_name = account_name

    def apply(self, event: dict[str, Any]) -> None:
        try:
            self._apply(event)
        except (KeyError, TypeError, ValueError):
            # Another process's bug must not take this one down.
            log.exception("a malformed control event: %r", event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event["t"]
        if kind == "end":
            keys = set(event["sessions"])
            self._close([p for p in self._peers if p.session in keys], CloseCode.NORMAL, CloseReason.SIGNED_OUT)
        elif kind == "disable":
            account = event["account"]
            self._close(
                [p for p in self._peers if p.account == account], CloseCode.POLICY_VIOLATION, CloseReason.DISABLED
            )
        elif kind == "name":
            self._account_name(event["name"])
            key = name_key(event["name"])
            guests = [p for p in self._peers if p.account is None and name_key(p.name) == key]
            self._close(guests, CloseCode.POLICY_VIOLATION, ErrorCode.NAME_TAKEN)
        elif kind == "removed":
            self._removed(event["room"], event["account"], event["name"], event["reason"])
        elif kind == "invited":
            mine = _my_room(event["room"])
            for peer in [p for p in self._peers if p.account == event["account"]]:
                peer.send(out.Invited(mine))
        elif kind == "read":
            # The account's other connections follow its read marker (never the one that moved it).
            state = ReadState(*event["state"])
            for peer in [p for p in self._peers if p.account == event["account"] and p.key != event["from"]]:
                peer.send(out.Read(event["room"], state))
        elif kind == "role":
            r = self._rooms.room(event["room"])
            if r is not None:
                frame = out.RoleChanged(event["room"], event["name"], Standing(event["role"]))
                for member in r.live:
                    member.send(frame)

    def _close(self, peers: list[Peer], code: CloseCode, reason: str) -> None:
        for peer in peers:
            peer.conn.close(code, reason)
            self._disconnect(peer)

    def _removed(self, room: str, account: int | None, name: str, reason: str) -> None:
        key = name_key(name)
        for peer in list(self._peers):
            if account is not None:
                # Every socket of the account hears it, joined or not: the room leaves its lists.
                if peer.account != account:
                    continue
            elif peer.account is not None or name_key(peer.name) != key or room not in peer.rooms:
                continue
            if room in peer.rooms:
                # Out of the room first: from here on no message of it is queued for this socket.
                self._leave(peer, room)
            peer.send(out.Removed(room, reason))


def _my_room(wire: dict[str, Any]) -> MyRoom:
    info = RoomInfo(wire["room"], Visibility(wire["visibility"]), RoomKind(wire["kind"]), wire["title"])
    return MyRoom(info, Standing(wire["role"]), list(wire.get("people", [])))
