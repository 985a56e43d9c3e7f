"""The wire protocol, inbound: client frames in. Pure, no I/O.

:func:`parse_client_frame` turns one text frame into a typed request or raises
:class:`ProtocolError`, whose ``code`` is what the client is told. The error
codes and close codes live in :mod:`chat.core.errors`, and are re-exported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Re-exported (``as``): the protocol's codes and errors are importable from here too.
from chat.core.errors import CloseCode as CloseCode
from chat.core.errors import ErrorCode as ErrorCode
from chat.core.errors import Invalid
from chat.core.errors import ProtocolError as ProtocolError
from chat.core.limits import HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX
from chat.core.model import REACTIONS, Standing, Visibility
from chat.core.outbound import encode as encode  # the server's frames: chat/core/outbound.py
from chat.core.policy import Action
from chat.core.validation import normalize_name, normalize_room, normalize_text, normalize_title

REF_MAX_CHARS = 64
# seqs are SQLite integers (64-bit): anything larger is not a seq.
SEQ_MAX = 2**63 - 1
# Python refuses to convert integers of more than 4300 digits (a guard against
# quadratic-time parsing); such valid JSON numbers are parsed to a placeholder
# that fails every type check with ``bad_request`` instead of ``bad_json``.
_INT_MAX_DIGITS = 4300
HISTORY_DEFAULT_LIMIT = HISTORY_PAGE_DEFAULT
HISTORY_MAX_LIMIT = HISTORY_PAGE_MAX


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    since: int | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    room: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Say:
    room: str
    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    room: str
    before: int | None = None
    after: int | None = None
    limit: int = HISTORY_DEFAULT_LIMIT
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Rooms:
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Create:
    room: str  # a public room's name, or a private room's title
    visibility: Visibility
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Dm:
    to: tuple[str, ...]  # the other people, by name
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Moderate:
    """``invite``, ``remove``, ``ban``, ``unban`` or ``role``: one account (or guest) in one room."""

    action: Action
    room: str
    name: str
    role: Standing | None = None  # for ``role``
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Members:
    room: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    room: str
    seq: int
    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    room: str
    seq: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class React:
    room: str
    seq: int
    emoji: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    room: str
    seq: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Search:
    q: str
    room: str | None = None
    before: int | None = None  # ms: results older than this
    limit: int = 20
    ref: str | None = None


ClientFrame = (
    Join
    | Leave
    | Say
    | Typing
    | History
    | Rooms
    | Ping
    | Create
    | Dm
    | Moderate
    | Members
    | Edit
    | Delete
    | React
    | MarkRead
    | Search
)

SEARCH_MAX_CHARS = 200
SEARCH_MAX_LIMIT = 50

# A DM holds 2 to 8 people, the caller included.
DM_MAX_PEOPLE = 8
_MODERATION = {
    "invite": Action.INVITE,
    "remove": Action.REMOVE,
    "ban": Action.BAN,
    "unban": Action.UNBAN,
    "role": Action.SET_ROLE,
}


class _HugeNumber:
    """A JSON integer too long to be anything we take (see _INT_MAX_DIGITS)."""


def _parse_int(digits: str) -> int | _HugeNumber:
    return int(digits) if len(digits) <= _INT_MAX_DIGITS else _HugeNumber()


def _utf8(value: str) -> bool:
    """False for strings with lone surrogates, which JSON's \ud800 escapes can make."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _field(obj: dict[str, Any], key: str, kind: type, ref: str | None, *, required: bool = True) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"field '{key}' is missing", ref)
        return None
    # bool is a subclass of int: true is not a seq.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"field '{key}' must be a {_KIND_NAMES[kind]}", ref)
    return value


_KIND_NAMES: dict[type, str] = {str: "string", int: "integer"}


def _room(obj: dict[str, Any], ref: str | None) -> str:
    raw = _field(obj, "room", str, ref)
    try:
        return normalize_room(raw)
    except Invalid as exc:
        raise ProtocolError(exc.code, exc.message, ref) from None


def _name(value: Any, key: str, ref: str | None) -> str:
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"field '{key}' must be a string", ref)
    try:
        return normalize_name(value)
    except Invalid as exc:
        raise ProtocolError(exc.code, exc.message, ref) from None


def _create(obj: dict[str, Any], ref: str | None) -> Create:
    raw = _field(obj, "room", str, ref)
    visibility = obj.get("visibility", "public")
    if visibility not in ("public", "private"):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'visibility' must be 'public' or 'private'", ref)
    try:
        if visibility == "public":
            return Create(normalize_room(raw), Visibility.PUBLIC, ref)
        return Create(normalize_title(raw), Visibility.PRIVATE, ref)
    except Invalid as exc:
        raise ProtocolError(exc.code, exc.message, ref) from None


def _dm(obj: dict[str, Any], ref: str | None) -> Dm:
    to = obj.get("to")
    if not isinstance(to, list) or not to or len(to) > DM_MAX_PEOPLE - 1:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"field 'to' must list 1 to {DM_MAX_PEOPLE - 1} names besides yours", ref
        )
    return Dm(tuple(_name(n, "to", ref) for n in to), ref)


def _moderate(kind: str, obj: dict[str, Any], ref: str | None) -> Moderate:
    room = _room(obj, ref)
    name = _name(obj.get("name"), "name", ref)
    role: Standing | None = None
    if kind == "role":
        raw = obj.get("role")
        if raw not in ("moderator", "member"):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'role' must be 'moderator' or 'member'", ref)
        role = Standing(raw)
    return Moderate(_MODERATION[kind], room, name, role, ref)


def _target(obj: dict[str, Any], ref: str | None) -> int:
    seq = _non_negative(obj, "seq", ref)
    if seq is None or seq < 1:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'seq' must be a message's seq (1 or more)", ref)
    return seq


def _search(obj: dict[str, Any], ref: str | None) -> Search:
    q = _field(obj, "q", str, ref)
    if not q.strip() or len(q) > SEARCH_MAX_CHARS or not _utf8(q):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"field 'q' has 1 to {SEARCH_MAX_CHARS} characters", ref)
    room = _room(obj, ref) if obj.get("room") is not None else None
    limit = _field(obj, "limit", int, ref, required=False)
    if limit is not None and not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"field 'limit' must be from 1 to {SEARCH_MAX_LIMIT}", ref)
    return Search(q.strip(), room, _non_negative(obj, "before", ref), limit or 20, ref)


def _non_negative(obj: dict[str, Any], key: str, ref: str | None) -> int | None:
    value: int | None = _field(obj, key, int, ref, required=False)
    if value is not None and not 0 <= value <= SEQ_MAX:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"field '{key}' must be from 0 to 2**63-1", ref)
    return value


def parse_client_frame(text: str, *, max_message_chars: int) -> ClientFrame:
    """Parse and validate one client text frame. Raises :class:`ProtocolError`."""
    try:
        obj = json.loads(text, parse_int=_parse_int)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame must be a JSON object")

    ref = obj.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > REF_MAX_CHARS or not _utf8(ref)):
        # The ref itself is bad, so it is not echoed.
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"field 'ref' must be a UTF-8 string of at most {REF_MAX_CHARS} characters"
        )

    kind = obj.get("type")
    if kind is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'type' is missing", ref)
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'type' must be a string", ref)

    if kind == "say":
        room = _room(obj, ref)
        raw_text = _field(obj, "text", str, ref)
        try:
            say_text = normalize_text(raw_text, max_message_chars)
        except Invalid as exc:
            raise ProtocolError(exc.code, exc.message, ref) from None
        return Say(room=room, text=say_text, ref=ref)
    if kind == "join":
        return Join(room=_room(obj, ref), since=_non_negative(obj, "since", ref), ref=ref)
    if kind == "leave":
        return Leave(room=_room(obj, ref), ref=ref)
    if kind == "typing":
        return Typing(room=_room(obj, ref), ref=ref)
    if kind == "history":
        room = _room(obj, ref)
        before = _non_negative(obj, "before", ref)
        after = _non_negative(obj, "after", ref)
        if before is not None and after is not None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "fields 'before' and 'after' exclude each other", ref)
        limit = _field(obj, "limit", int, ref, required=False)
        if limit is None:
            limit = HISTORY_DEFAULT_LIMIT
        elif limit < 1:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'limit' must be at least 1", ref)
        return History(room=room, before=before, after=after, limit=min(limit, HISTORY_MAX_LIMIT), ref=ref)
    if kind == "rooms":
        return Rooms(ref=ref)
    if kind == "ping":
        return Ping(ref=ref)
    if kind == "create":
        return _create(obj, ref)
    if kind == "dm":
        return _dm(obj, ref)
    if kind in _MODERATION:
        return _moderate(kind, obj, ref)
    if kind == "members":
        return Members(room=_room(obj, ref), ref=ref)
    if kind == "edit":
        room = _room(obj, ref)
        seq = _target(obj, ref)
        try:
            edited = normalize_text(_field(obj, "text", str, ref), max_message_chars)
        except Invalid as exc:
            raise ProtocolError(exc.code, exc.message, ref) from None
        return Edit(room, seq, edited, ref)
    if kind == "delete":
        return Delete(_room(obj, ref), _target(obj, ref), ref)
    if kind == "react":
        room = _room(obj, ref)
        seq = _target(obj, ref)
        emoji = _field(obj, "emoji", str, ref)
        if emoji not in REACTIONS:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"field 'emoji' must be one of {' '.join(REACTIONS)}", ref)
        return React(room, seq, emoji, ref)
    if kind == "read":
        room = _room(obj, ref)
        read = _non_negative(obj, "seq", ref)
        if read is None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'seq' is missing", ref)
        return MarkRead(room, read, ref)
    if kind == "search":
        return _search(obj, ref)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}", ref)
