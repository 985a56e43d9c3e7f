"""Rooms with owners: looking up what :mod:`chat.core.policy` decides on, and the
room-management frames (``create``, ``dm``, ``invite``, ``remove``, ``ban``,
``unban``, ``role``, ``members``).

The facts come from the :class:`~chat.backends.base.Directory`; the decision
from :func:`chat.core.policy.decide`; what must reach other processes
(a member removed, an account invited, a role changed) goes out as a
:meth:`~chat.backends.base.Broker.control` event, which
:class:`chat.core.control.Controls` applies in every process, this one
included.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat.backends.base import Broker, Conflict, Directory, HistoryStore
from chat.core import outbound as out
from chat.core import protocol as p
from chat.core.errors import ErrorCode
from chat.core.model import MyRoom, RoomInfo, RoomKind, RoomSummary, Standing, Visibility
from chat.core.peer import Peer
from chat.core.policy import Action, Actor, Decision, decide, is_member
from chat.core.secrets import new_room_id
from chat.core.validation import is_private_id, name_key

_MODERATORS = frozenset({Standing.OWNER, Standing.MODERATOR})


class RoomAccess:
    def __init__(self, directory: Directory, broker: Broker, wall: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.broker = broker
        self.wall = wall
        # A room's visibility, kind and title never change once it exists, so
        # its description is read once per process (joins of a busy room
        # cost no query); standings are read every time, since they do change.
        self._rooms: dict[str, RoomInfo] = {}

    def _now(self) -> int:
        return int(self.wall() * 1000)

    async def room(self, room: str) -> RoomInfo | None:
        info = self._rooms.get(room)
        if info is None:
            info = await self.directory.room(room)
            if info is not None:
                self._rooms[room] = info
        return info

    async def standing(self, actor: Actor, room: str) -> Standing | None:
        if actor.account is None:
            return None
        return await self.directory.standing(room, actor.account)

    async def check(self, actor: Actor, action: Action, room: str) -> tuple[Decision, RoomInfo | None, Standing | None]:
        """The decision on ``action`` in ``room``, with the facts it was made on."""
        info = await self.room(room)
        standing = await self.standing(actor, room) if info is not None else None
        return decide(actor, action, info, standing, room_id=room), info, standing

    async def admit(self, peer: Peer, room: str) -> tuple[Decision, RoomInfo | None, Standing | None]:
        """May ``peer`` join ``room``? If so the room exists afterwards (a new
        public name is created), and an account is a durable member of it."""
        actor = peer.actor
        decision, info, standing = await self.check(actor, Action.JOIN, room)
        if not decision.allowed:
            return decision, info, standing
        if info is None:
            info = await self.directory.ensure_public(room, self._now())
            self._rooms[room] = info
        if actor.account is not None and standing is None:
            # Joining a public room makes it one of the account's rooms, on every device.
            standing = Standing.MEMBER
            await self.directory.set_standing(room, actor.account, standing, self._now())
        return decision, info, standing

    async def people(self, info: RoomInfo) -> tuple[str, ...]:
        """A DM's participants, by name (empty for other rooms)."""
        if info.kind is not RoomKind.DM:
            return ()
        return tuple(m.name for m in await self.directory.members(info.room) if is_member(m.standing))

    async def not_in(self, peer: Peer, room: str, ref: str | None) -> None:
        """Answer a frame for a room ``peer`` has not joined: ``not_member`` if it may
        see the room, else ``not_found``, exactly as for a room that does not exist."""
        decision, info, _ = await self.check(peer.actor, Action.SEE, room)
        if decision.code is None or (info is None and not is_private_id(room)):
            # A public name nobody used yet: joining it would make it, so "join first".
            peer.send(out.Error(ErrorCode.NOT_MEMBER, f"join {room!r} first", ref))
        else:
            peer.send(out.Error(decision.code, decision.message, ref))

    async def summaries(self, actor: Actor, store: HistoryStore) -> list[RoomSummary]:
        """The rooms ``actor`` may see: every public room, and its own. Raises StoreUnavailable."""
        infos = {info.room: info for info in await self.directory.public_rooms()}
        own: dict[str, MyRoom] = {}
        if actor.account is not None:
            for mine in await self.directory.account_rooms(actor.account):
                infos[mine.info.room] = mine.info
                own[mine.info.room] = mine
        last = await store.rooms()
        counts = await self.broker.member_counts()
        summaries = []
        for room, info in sorted(infos.items()):
            held = own.get(room)
            summaries.append(
                RoomSummary(
                    room,
                    counts.get(room, 0),
                    last.get(room, 0),
                    info.title,
                    info.visibility,
                    info.kind,
                    held.standing if held is not None else None,
                    tuple(held.people) if held is not None else (),
                )
            )
        return summaries

    async def readable(self, actor: Actor) -> list[str]:
        """Every room ``actor`` may read: the public ones, and an account's own."""
        rooms = {info.room for info in await self.directory.public_rooms()}
        if actor.account is not None:
            rooms.update(mine.info.room for mine in await self.directory.account_rooms(actor.account))
        return sorted(rooms)

    # -- frames --------------------------------------------------------------

    async def create(self, peer: Peer, frame: p.Create) -> None:
        actor = peer.actor
        private = frame.visibility is Visibility.PRIVATE
        decision = decide(actor, Action.CREATE_PRIVATE if private else Action.CREATE_PUBLIC)
        if not _allowed(peer, decision, frame.ref) or actor.account is None:
            return
        # A private room's id is made here: its title (frame.room) tells nothing to outsiders.
        room = new_room_id() if private else frame.room
        info = RoomInfo(room, frame.visibility, RoomKind.ROOM, frame.room, self._now())
        try:
            info = await self.directory.create_room(info, {actor.account: Standing.OWNER})
        except Conflict:
            peer.send(out.Error(ErrorCode.ROOM_EXISTS, f"a room named {frame.room!r} exists already", frame.ref))
            return
        self._rooms[info.room] = info
        mine = MyRoom(info, Standing.OWNER)
        peer.send(out.Created(mine, frame.ref))
        self.broker.control({"t": "invited", "account": actor.account, "room": mine.to_wire()})

    async def dm(self, peer: Peer, frame: p.Dm) -> None:
        actor = peer.actor
        if not _allowed(peer, decide(actor, Action.DM), frame.ref) or actor.account is None:
            return
        ids = {actor.account: peer.name}
        for name in frame.to:
            found = await self.directory.account_by_name(name)
            if found is None or found[0].disabled:
                peer.send(out.Error(ErrorCode.NOT_FOUND, f"no account named {name!r}", frame.ref))
                return
            ids[found[0].id] = found[0].name
        if len(ids) < 2:
            peer.send(out.Error(ErrorCode.BAD_REQUEST, "a direct message needs someone besides you", frame.ref))
            return
        info = RoomInfo(new_room_id(), Visibility.PRIVATE, RoomKind.DM, "", self._now())
        info = await self.directory.create_room(info, dict.fromkeys(ids, Standing.MEMBER))
        self._rooms[info.room] = info
        mine = MyRoom(info, Standing.MEMBER, list(await self.people(info)))
        peer.send(out.Created(mine, frame.ref))
        for account in ids:
            self.broker.control({"t": "invited", "account": account, "room": mine.to_wire()})

    async def members(self, peer: Peer, frame: p.Members) -> None:
        decision, info, standing = await self.check(peer.actor, Action.SEE, frame.room)
        if not _allowed(peer, decision, frame.ref) or info is None:
            return
        members = await self.directory.members(frame.room)
        if standing not in _MODERATORS:
            members = [m for m in members if m.standing is not Standing.BANNED]
        peer.send(out.Members(frame.room, members, frame.ref))

    async def moderate(self, peer: Peer, frame: p.Moderate, present: Callable[[str, str], bool]) -> None:
        """``invite``, ``remove``, ``ban``, ``unban`` or ``role``. ``present(room, name)``
        says whether a guest of that name is in the room (it may be removed)."""
        actor = peer.actor
        room = frame.room
        info = await self.room(room)
        standing = await self.standing(actor, room) if info is not None else None
        found = await self.directory.account_by_name(frame.name)
        target_id = found[0].id if found is not None else None
        target_name = found[0].name if found is not None else frame.name
        target = await self.directory.standing(room, target_id) if target_id is not None and info else None
        guest = found is None and info is not None and present(room, frame.name)
        decision = decide(
            actor,
            frame.action,
            info,
            standing,
            room_id=room,
            target=target,
            target_is_self=target_id is not None and target_id == actor.account,
            target_guest=guest,
            role=frame.role,
        )
        if decision.allowed and found is None and not guest:
            decision = Decision(ErrorCode.NOT_FOUND, f"no account named {frame.name!r}")
        if not _allowed(peer, decision, frame.ref) or info is None:
            return
        now = self._now()
        if frame.action is Action.INVITE:
            if target_id is not None and not is_member(target):
                await self.directory.set_standing(room, target_id, Standing.MEMBER, now)
                mine = MyRoom(info, Standing.MEMBER, list(await self.people(info)))
                self.broker.control({"t": "invited", "account": target_id, "room": mine.to_wire()})
        elif frame.action in (Action.REMOVE, Action.BAN):
            banned = frame.action is Action.BAN
            if target_id is not None:
                await self.directory.set_standing(room, target_id, Standing.BANNED if banned else None, now)
            reason = "banned" if banned else ("left" if target_id == actor.account else "removed")
            self.broker.control(
                {"t": "removed", "room": room, "account": target_id, "name": target_name, "reason": reason}
            )
        elif frame.action is Action.UNBAN:
            assert target_id is not None
            await self.directory.set_standing(room, target_id, None, now)
        elif frame.action is Action.SET_ROLE:
            assert target_id is not None
            assert frame.role is not None
            await self.directory.set_standing(room, target_id, frame.role, now)
            self.broker.control({"t": "role", "room": room, "name": target_name, "role": frame.role})
        peer.send(out.Done(frame.action, room, target_name, frame.ref))


def _allowed(peer: Peer, decision: Decision, ref: str | None) -> bool:
    if decision.code is None:
        return True
    peer.send(out.Error(decision.code, decision.message, ref))
    return False


def same_name(a: str, b: str) -> bool:
    return name_key(a) == name_key(b)
