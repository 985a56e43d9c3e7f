"""The two seams every back-end implements, and the errors they raise.

- :class:`HistoryStore`: the durable history, every room message with its
  per-room seq (:mod:`chat.backends.sqlite`, :mod:`chat.backends.redis.store`).
- :class:`Broker`: carries committed messages and room events to every process
  with members in the room, and knows who is present across processes
  (:mod:`chat.backends.memory` in one process, :mod:`chat.backends.redis.broker`
  across processes and machines).

The service drives every implementation the same way, and
``tests/backends/test_contract.py`` holds them to the same contract.
:func:`chat.backends.factory.open_backends` picks the pair from the options.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chat.core.model import (
    Account,
    EventKind,
    Member,
    Message,
    MyRoom,
    ReadState,
    RoomInfo,
    SearchHit,
    Standing,
    TokenInfo,
)
from chat.core.outbound import Presence


class StoreUnavailable(Exception):
    """The store could not take or give a message (disk full, file unwritable...)."""


class SchemaTooNew(Exception):
    """The database was written by a newer server (its schema version is higher
    than this code knows): refused, never guessed at. Not a :class:`StoreUnavailable`:
    waiting does not fix it, so the server stops (exit status 2) with the message."""


class Duplicate(Exception):
    """An append whose (session, ref) the store had already stored: ``message`` is the original.

    Raised by stores that check refs themselves (Redis, where a retry may reach
    another process); the service answers the retry with the original."""

    def __init__(self, message: Message) -> None:
        super().__init__(f"ref {message.ref!r} was already stored as seq {message.seq}")
        self.message = message


# An appended message (seq 0 until its commit) and the future its sender awaits.
Pending = tuple[Message, asyncio.Future[Message]]


def settle(
    on_commit: Callable[[list[Message]], None] | None,
    stored: list[Pending],
    duplicates: list[Pending],
    log: logging.Logger,
) -> None:
    """Hand a committed batch over: ``on_commit`` first, then the futures.

    ``stored`` pairs each new message (with its seq) with its sender's future;
    ``duplicates`` pairs each retried ref's original with the retry's future.
    The listener runs synchronously, before any sender hears back, so nothing
    observes a message as committed before it has been broadcast; a bug in it
    must not leave the batch's futures pending."""
    messages = [m for m, _ in stored]
    if on_commit is not None and messages:
        try:
            on_commit(messages)
        except Exception:
            log.exception("the commit listener failed")
    for message, future in stored:
        if not future.done():
            future.set_result(message)
    for original, future in duplicates:
        if not future.done():
            future.set_exception(Duplicate(original))


def append_future(closed: bool) -> asyncio.Future[Message]:
    """The future an append hands back: failed at once if the store is closed."""
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    if closed:
        future.set_exception(StoreUnavailable("the history store is closed"))
    return future


class HistoryStore(Protocol):
    def directory(self) -> Directory:
        """The accounts, rooms and memberships kept in the same database."""
        ...

    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None:
        """Call ``on_commit`` with each committed batch (its new messages, in seq
        order per room), synchronously, before any of its senders hears back:
        the broker delivers from here (:func:`settle`)."""
        ...

    def append(
        self,
        room: str,
        name: str,
        text: str,
        ts: int,
        session: str,
        ref: str | None,
        *,
        guest: bool = False,
        kind: EventKind = EventKind.MESSAGE,
        target: int | None = None,
        emoji: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> asyncio.Future[Message]:
        """Store an event under the room's next seq (``guest``: not sent by an account, see Message.guest).

        ``kind`` MESSAGE stores a message (``mentions``: the member names it
        names). EDIT, DELETE and REACTION change the message at seq ``target``,
        in the same transaction as the event is stored: an EDIT replaces its
        text (and sets ``edited``); a DELETE removes its text, the text of its
        earlier edits and its reactions, and takes it out of search, so the
        text is gone from the store; a REACTION toggles ``emoji`` for ``name``
        and the stored event says which way (``on``). An EDIT of a message
        deleted meanwhile is stored without its text. The caller checked that
        the target is a message the sender may change.

        The future resolves with the event once it is committed, or fails
        with :class:`StoreUnavailable` (or :class:`Duplicate`). The broker
        delivers committed events to the room, the sender's included.
        """
        ...

    @property
    def reachable(self) -> bool:
        """False while the store cannot reach its database (PostgreSQL down since
        the start): the server is degraded. A store in this process is always reachable."""
        ...

    async def drain(self) -> None:
        """Return once every message appended so far is committed (or failed)."""
        ...

    def before(self, room: str, seq: int | None, limit: int) -> Awaitable[list[Message]]:
        """Up to ``limit`` messages (kind MESSAGE only, as they are now: current
        text, ``edited``, ``deleted``, ``reactions``) with seq < ``seq`` (the newest if None), ascending.
        Scrolling back: the other events between them are already folded in.

        An awaitable, not only a coroutine: a store may start the read at the
        call, so that reads asked for one after another share a round trip
        (see :meth:`chat.core.service.ChatService._join`)."""
        ...

    def after(self, room: str, seq: int, limit: int) -> Awaitable[list[Message]]:
        """Up to ``limit`` events of every kind with seq > ``seq``, ascending, with no
        seq left out: what a reader who is at ``seq`` missed (a message among them
        is read as it is now). Filling a gap, resuming."""
        ...

    async def get(self, room: str, seq: int) -> Message | None: ...

    async def room_view(self, room: str, since: int | None, limit: int) -> tuple[int, list[Message]]:
        """What a joining member reads, from one snapshot and in one round trip:
        ``(last_seq, messages)``, where ``messages`` are the newest ``limit`` (``since``
        None) or up to ``limit`` after ``since``, ascending, and none past ``last_seq``.

        One snapshot, because the history must cover every message up to the
        ``last_seq`` the member is given (a later one reaches it live); two reads
        would have to be made in that order, one round trip each."""
        ...

    def last_seq(self, room: str) -> Awaitable[int]:
        """The room's newest committed seq, 0 when it has none.

        Reads started at their calls are answered in the order of the calls."""
        ...

    async def rooms(self) -> dict[str, int]:
        """Every room with history, with its last committed seq."""
        ...

    async def search(self, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]:
        """Messages of ``rooms`` whose current text matches ``query`` (words, as the
        engine's full-text search reads them), newest first (by ts, then seq), at
        most ``limit``, older than ``before`` (ms) if given. Deleted messages and
        the text of edits are never found. The caller decides ``rooms``."""
        ...

    async def set_read(self, account: int, room: str, seq: int) -> int:
        """The account read ``room`` up to ``seq``: the marker moves forward only; returns it."""
        ...

    async def read_state(self, account: int, name: str, rooms: list[str]) -> dict[str, ReadState]:
        """For each room: the account's marker, the messages after it not sent by
        ``name`` and not deleted, and of those the ones that mention ``name``."""
        ...

    async def recent_refs(self, since_ts: int) -> list[Message]:
        """Messages sent with a ref at or after ``since_ts``, to rebuild the idempotency window."""
        ...

    async def close(self) -> None:
        """Commit what is pending, then close."""
        ...


OnMessages = Callable[[list[Message]], None]
# (room, name, frame): a frame for every member of ``room`` but the
# connections of ``name`` (presence and typing).
OnEvent = Callable[[str, str, dict[str, Any]], None]
# A session logged out: close its sockets in this process.
OnLogout = Callable[[str], None]
# An access-control event for every process (chat.core.control): sessions
# ended, an account disabled, a member removed, invited or given a role.
OnControl = Callable[[dict[str, Any]], None]


def presence_frame(room: str, event: str, name: str) -> dict[str, Any]:
    """The ``presence`` frame brokers hand to ``OnEvent`` (see :class:`chat.core.outbound.Presence`)."""
    return Presence(room, event, name).to_wire()


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

    def listen_control(self, on_control: OnControl) -> None:
        """Where :meth:`control` events go, in every process."""
        ...

    def control(self, event: dict[str, Any]) -> None:
        """Hand ``event`` (JSON-serialisable) to ``on_control`` in every process: in
        this one at once, in the others as soon as the backplane carries it."""
        ...


class Conflict(Exception):
    """A write the directory refused because the row exists: an account name taken
    (whatever its case), a public room name taken, or an invite code already used."""


class Directory(Protocol):
    """Accounts, sessions, tokens, sign-up invites, rooms and memberships: the
    durable data of access control, in the same SQL database as the history
    (schema version 3, :mod:`chat.backends.schema`).

    Every method raises :class:`StoreUnavailable` when the database cannot
    answer. Secrets never reach it: sessions, tokens and invite codes are
    passed and kept as hashes (:func:`chat.core.secrets.digest`), so a copy of
    the database cannot sign anyone in. Names are matched regardless of case
    (:func:`chat.core.validation.name_key`). ``now`` is milliseconds since the epoch.
    """

    # -- accounts
    async def create_account(
        self, name: str, password_hash: str, now: int, *, admin: bool | None = None, invite: str | None = None
    ) -> Account:
        """A new account. ``admin`` None: an admin exactly when it is the first
        account (decided in the same transaction, so two first sign-ups cannot
        both win). ``invite``: a code hash that must be unused, and is used by this
        sign-up in the same transaction. Raises :class:`Conflict` (name taken, bad invite)."""
        ...

    async def account(self, account_id: int) -> Account | None: ...

    async def account_by_name(self, name: str) -> tuple[Account, str] | None:
        """The account and its password hash."""
        ...

    async def accounts(self) -> list[Account]:
        """Every account, by name."""
        ...

    async def set_password(self, account_id: int, password_hash: str) -> None: ...

    async def set_disabled(self, account_id: int, disabled: bool) -> None: ...

    # -- sign-in sessions of the page (the cookie names one)
    async def create_session(self, session_hash: str, account_id: int, now: int) -> None: ...

    async def session_account(self, session_hash: str, now: int) -> Account | None:
        """The session's account (disabled ones too: the caller refuses them), and notes its use."""
        ...

    async def end_session(self, session_hash: str) -> None: ...

    async def end_sessions(self, account_id: int) -> list[str]:
        """End every session of the account; returns their hashes (to close their sockets)."""
        ...

    # -- tokens for scripts
    async def create_token(self, account_id: int, label: str, token_hash: str, now: int) -> TokenInfo: ...

    async def token_account(self, token_hash: str, now: int) -> tuple[Account, TokenInfo] | None:
        """The account of a token that is not revoked, and notes its use (``last_used``)."""
        ...

    async def tokens(self, account_id: int) -> list[TokenInfo]:
        """The account's tokens, revoked ones included, newest first."""
        ...

    async def revoke_token(self, account_id: int, token_id: int, now: int) -> bool:
        """False if the account has no such token, or it was revoked already."""
        ...

    # -- sign-up invites (``--registration invite``)
    async def create_invite(self, code_hash: str, created_by: int, now: int) -> None: ...

    # -- rooms and memberships
    async def room(self, room: str) -> RoomInfo | None: ...

    async def create_room(self, info: RoomInfo, members: dict[int, Standing]) -> RoomInfo:
        """Store a new room with its first members (its owner; a DM's participants).

        A public room whose name exists: :class:`Conflict`. A DM whose set of
        participants already has one: that DM, with any of them who had left it
        a member again (so starting a DM twice opens the same room, history and
        all). A room that has history but no row (rooms of the release before
        accounts; they were all public) is the public room that exists already."""
        ...

    async def ensure_public(self, room: str, now: int) -> RoomInfo:
        """The room, created public if it does not exist (a ``join`` of a new name)."""
        ...

    async def standing(self, room: str, account_id: int) -> Standing | None: ...

    async def set_standing(self, room: str, account_id: int, standing: Standing | None, now: int) -> None:
        """Set (None: delete) the account's standing in the room."""
        ...

    async def members(self, room: str) -> list[Member]:
        """The room's accounts and their standing (banned ones included), by name."""
        ...

    async def account_rooms(self, account_id: int) -> list[MyRoom]:
        """The rooms the account is a member of (not banned from), by title; DMs with their people."""
        ...

    async def public_rooms(self) -> list[RoomInfo]:
        """Every public room, by name."""
        ...
