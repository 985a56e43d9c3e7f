"""Who may do what to which room: the one place access is decided. Pure, no I/O.

Every path asks :func:`decide`: WebSocket frames (join, resume, history, say,
typing, and the room-management frames), the HTTP API, and the events that
reach a process from others. The caller looks up the facts (the room, the
caller's standing in it, a target's standing) and acts on the answer; nothing
else decides.

A room the caller may not see is answered exactly like a room that does not
exist (``not_found``): same code, same message. Private rooms and DMs have
server-made ids (:func:`chat.core.validation.is_private_id`) that a ``join``
never creates, so an outsider cannot tell an unknown id from a room it is kept
out of. The full table is in docs/security.md, and tests/server/test_access.py
checks every cell of it over real sockets and HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chat.core.errors import ErrorCode
from chat.core.model import RoomInfo, RoomKind, Standing, Visibility
from chat.core.validation import is_private_id


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking. ``account`` None is a guest; a guest with no name is an
    anonymous HTTP caller (no credentials at all)."""

    name: str
    account: int | None = None
    admin: bool = False

    @property
    def guest(self) -> bool:
        return self.account is None

    @property
    def anonymous(self) -> bool:
        return self.account is None and not self.name


ANONYMOUS = Actor("")


class Action(StrEnum):
    SEE = "see"  # list it, read its history (WebSocket or HTTP), resume with since
    JOIN = "join"  # become a live member: receive its messages, presence and typing
    SAY = "say"  # say, typing, and an HTTP post
    INVITE = "invite"
    REMOVE = "remove"
    BAN = "ban"
    UNBAN = "unban"
    SET_ROLE = "role"
    EDIT = "edit"  # a message's text
    DELETE = "delete"  # a message
    REACT = "react"
    MARK_READ = "read"  # move the account's read marker
    CREATE_PUBLIC = "create_public"
    CREATE_PRIVATE = "create_private"
    DM = "dm"


@dataclass(frozen=True, slots=True)
class Decision:
    """``code`` None: allowed. Otherwise what the caller is told, and why."""

    code: ErrorCode | None = None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.code is None


ALLOWED = Decision()
# One answer for "no such room" and "a room you may not see": never told apart.
NOT_FOUND = Decision(ErrorCode.NOT_FOUND, "no such room")
NEEDS_ACCOUNT = Decision(ErrorCode.UNAUTHORIZED, "this needs an account: sign in or sign up")

_MEMBERS = frozenset({Standing.OWNER, Standing.MODERATOR, Standing.MEMBER})
_RANK = {Standing.OWNER: 3, Standing.MODERATOR: 2, Standing.MEMBER: 1}
_MODERATION = frozenset({Action.INVITE, Action.REMOVE, Action.BAN, Action.UNBAN, Action.SET_ROLE})
_CHANGES = frozenset({Action.EDIT, Action.DELETE, Action.REACT, Action.MARK_READ})


def is_member(standing: Standing | None) -> bool:
    return standing in _MEMBERS


def visible(room: RoomInfo | None, standing: Standing | None) -> bool:
    """Whether the room shows at all: public rooms to everyone, private ones to their members."""
    if room is None:
        return False
    return room.visibility is Visibility.PUBLIC or is_member(standing)


def decide(
    actor: Actor,
    action: Action,
    room: RoomInfo | None = None,
    standing: Standing | None = None,
    *,
    room_id: str = "",
    target: Standing | None = None,
    target_is_self: bool = False,
    target_guest: bool = False,
    role: Standing | None = None,
    own: bool = False,
) -> Decision:
    """May ``actor`` do ``action``?

    ``room``: the room acted on, None when it does not exist (``room_id`` is
    then the id asked for). ``standing``: the actor's standing there (None for
    guests and non-members). For the moderation actions, ``target`` is the
    standing of the account acted on (None: not a member), ``target_is_self``
    says it is the actor, ``target_guest`` that it is a guest (a guest has no
    membership to take away: removing one closes its view of the room, and it
    may join again under any free name), and ``role`` is the role asked for (``SET_ROLE``).
    """
    if action in (Action.CREATE_PUBLIC, Action.CREATE_PRIVATE, Action.DM):
        # Guests still make a public room by joining a new name; a room made with
        # ``create`` has an owner, and only an account can be one.
        return NEEDS_ACCOUNT if actor.guest else ALLOWED
    if room is None:
        # Joining a new public name creates that room; a server-made id is never created by a join.
        if action is Action.JOIN and not is_private_id(room_id):
            return NEEDS_ACCOUNT if actor.anonymous else ALLOWED
        return NOT_FOUND
    if not visible(room, standing):
        return NOT_FOUND
    if action is Action.SEE:
        return ALLOWED
    if action in (Action.JOIN, Action.SAY):
        if actor.anonymous:
            return NEEDS_ACCOUNT
        if standing is Standing.BANNED:
            return Decision(ErrorCode.FORBIDDEN, "you are banned from this room")
        return ALLOWED
    if action in _CHANGES:
        return _change(actor, action, standing, own)
    if action in _MODERATION:
        return _moderate(actor, action, room, standing, target, target_is_self, target_guest, role)
    raise ValueError(f"unknown action {action!r}")  # pragma: no cover - every Action is handled above


def _change(actor: Actor, action: Action, standing: Standing | None, own: bool) -> Decision:
    """EDIT, DELETE, REACT, MARK_READ in a room the actor may see."""
    if standing is Standing.BANNED:
        return Decision(ErrorCode.FORBIDDEN, "you are banned from this room")
    if action is Action.REACT:
        # Guests may react where they may chat: public rooms (they are never members of others).
        return NEEDS_ACCOUNT if actor.anonymous else ALLOWED
    if actor.guest:
        return NEEDS_ACCOUNT
    if action is Action.MARK_READ:
        return ALLOWED
    if own:
        return ALLOWED
    if action is Action.DELETE and standing in (Standing.OWNER, Standing.MODERATOR):
        return ALLOWED
    if action is Action.EDIT:
        return Decision(ErrorCode.FORBIDDEN, "you may edit only your own messages")
    return Decision(ErrorCode.FORBIDDEN, "only its author, a moderator or the owner may delete a message")


def _moderate(
    actor: Actor,
    action: Action,
    room: RoomInfo,
    standing: Standing | None,
    target: Standing | None,
    target_is_self: bool,
    target_guest: bool,
    role: Standing | None,
) -> Decision:
    if actor.guest:
        return NEEDS_ACCOUNT
    if room.kind is RoomKind.DM and not (action is Action.REMOVE and target_is_self):
        # A DM's people are fixed when it starts; each may only leave it.
        return Decision(ErrorCode.FORBIDDEN, "a direct message's members cannot be changed")
    rank = _RANK.get(standing, 0) if standing is not None else 0
    if action is Action.REMOVE and target_is_self:
        if standing is Standing.OWNER:
            return Decision(ErrorCode.FORBIDDEN, "an owner cannot leave their room")
        return ALLOWED if is_member(standing) else Decision(ErrorCode.NOT_FOUND, "not a member of this room")
    if action is Action.SET_ROLE:
        if standing is not Standing.OWNER:
            return Decision(ErrorCode.FORBIDDEN, "only an owner appoints moderators")
        if role not in (Standing.MODERATOR, Standing.MEMBER):
            return Decision(ErrorCode.BAD_REQUEST, "a role is 'moderator' or 'member'")
        if target not in (Standing.MODERATOR, Standing.MEMBER):
            return Decision(ErrorCode.NOT_FOUND, "not a member of this room")
        return ALLOWED
    if rank < _RANK[Standing.MODERATOR]:
        return Decision(ErrorCode.FORBIDDEN, f"only owners and moderators may {action}")
    if action is Action.INVITE:
        if target is Standing.BANNED:
            return Decision(ErrorCode.FORBIDDEN, "that account is banned here: unban it first")
        return ALLOWED
    if action is Action.UNBAN:
        return ALLOWED if target is Standing.BANNED else Decision(ErrorCode.NOT_FOUND, "that account is not banned")
    # REMOVE and BAN: only someone of a lower rank (a non-member ranks lowest).
    target_rank = _RANK.get(target, 0) if target is not None else 0
    if target_guest:
        if action is Action.REMOVE:
            return ALLOWED
        return Decision(ErrorCode.BAD_REQUEST, f"guests have no account to {action}: remove them instead")
    if action is Action.REMOVE and not is_member(target):
        return Decision(ErrorCode.NOT_FOUND, "not a member of this room")
    if target_rank >= rank:
        return Decision(ErrorCode.FORBIDDEN, f"you may not {action} someone of your rank or above")
    return ALLOWED
