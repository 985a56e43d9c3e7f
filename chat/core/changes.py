"""Changes to what a room holds: edits, deletions, reactions; read markers,
mentions and search.

An edit, a deletion or a reaction is an event of the room's log like a message
(chat.core.model.EventKind): it takes the room's next seq through the same
append, is acknowledged and broadcast the same way once committed, and comes
back in resumes, so a client away while a message was edited, deleted or
reacted to gets the change. Who may do what is chat.core.policy's answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chat.core import outbound as out
from chat.core import protocol as p
from chat.core.errors import ErrorCode
from chat.core.model import EventKind
from chat.core.peer import Peer
from chat.core.policy import Action, Decision, decide, is_member
from chat.core.validation import name_key

if TYPE_CHECKING:
    from chat.core.service import ChatService

# "@name": up to the first space or punctuation that cannot end a name in a sentence.
_MENTION = re.compile(r"@([^\s@,.:;!?()\[\]{}<>\"']{1,32})")
NO_SUCH_MESSAGE = Decision(ErrorCode.NOT_FOUND, "no such message")


class Changes:
    def __init__(self, service: ChatService, wall: Callable[[], float] = time.time) -> None:
        self.service = service
        self.wall = wall

    # -- edit, delete, react ----------------------------------------------

    async def change(self, peer: Peer, frame: p.Edit | p.Delete | p.React) -> None:
        """Check the target and the policy, then store the event (its broadcast follows the commit)."""
        service = self.service
        room, seq = frame.room, frame.seq
        info = await service.access.room(room)
        standing = await service.access.standing(peer.actor, room)
        target = await service.store.get(room, seq)
        if target is None or target.kind is not EventKind.MESSAGE:
            return self._refuse(peer, NO_SUCH_MESSAGE, frame.ref)
        if target.deleted:
            return self._refuse(peer, Decision(ErrorCode.BAD_REQUEST, "that message was deleted"), frame.ref)
        # An account's name is its own for good: a message with its name, not a guest's, is its.
        own = peer.account is not None and not target.guest and name_key(target.name) == name_key(peer.name)
        action, kind = _ACTIONS[type(frame)]
        decision = decide(peer.actor, action, info, standing, room_id=room, own=own)
        if decision.code is not None:
            return self._refuse(peer, decision, frame.ref)
        if not peer.open or room not in peer.rooms:
            return  # closed, or removed, while this was checked
        text = frame.text if isinstance(frame, p.Edit) else ""
        emoji = frame.emoji if isinstance(frame, p.React) else None
        service.append(peer, room, text, frame.ref, kind=kind, target=seq, emoji=emoji)

    @staticmethod
    def _refuse(peer: Peer, decision: Decision, ref: str | None) -> None:
        assert decision.code is not None
        peer.send(out.Error(decision.code, decision.message, ref))

    # -- mentions -------------------------------------------------------------

    async def mentions(self, room: str, text: str) -> tuple[str, ...]:
        """The room's members (accounts with a standing there) that ``text`` names as @name."""
        wanted = {name_key(m) for m in _MENTION.findall(text)}
        if not wanted:
            return ()
        members = await self.service.directory.members(room)
        return tuple(m.name for m in members if is_member(m.standing) and name_key(m.name) in wanted)

    # -- read markers -----------------------------------------------------------

    async def mark_read(self, peer: Peer, frame: p.MarkRead) -> None:
        service = self.service
        decision, _, _ = await service.access.check(peer.actor, Action.MARK_READ, frame.room)
        if decision.code is not None or peer.account is None:
            return self._refuse(peer, decision, frame.ref)
        await service.store.set_read(peer.account, frame.room, frame.seq)
        state = (await service.store.read_state(peer.account, peer.name, [frame.room]))[frame.room]
        peer.send(out.Read(frame.room, state, frame.ref))
        service.broker.control(
            {
                "t": "read",
                "account": peer.account,
                "room": frame.room,
                "state": [state.read, state.unread, state.mentions],
                "from": peer.key,
            }
        )

    # -- search -------------------------------------------------------------------

    async def search(self, peer: Peer, frame: p.Search) -> None:
        hits = await self.service.search(peer.actor, frame.q, frame.room, frame.before, frame.limit)
        if isinstance(hits, Decision):
            return self._refuse(peer, hits, frame.ref)
        peer.send(out.SearchResults(hits, frame.ref))


_ACTIONS: dict[type, tuple[Action, EventKind]] = {
    p.Edit: (Action.EDIT, EventKind.EDIT),
    p.Delete: (Action.DELETE, EventKind.DELETE),
    p.React: (Action.REACT, EventKind.REACTION),
}
