"""The :class:`chat.backends.base.Directory` in SQL, written once for both engines.

:class:`SQLDirectory` holds every query and rule; an engine supplies how a
statement runs (:meth:`SQLDirectory._fetch`) and how a transaction is opened
(:meth:`SQLDirectory._transaction`): :class:`chat.backends.directory_sqlite.SQLiteDirectory`
and :class:`chat.backends.directory_postgres.PostgresDirectory`. Queries are
written with PostgreSQL's ``$n`` parameters; SQLite reads them as ``?n``.

Orders ("by name", "by title") are made in Python, not by ``ORDER BY``: the
engines collate text differently, and every server must list the same way.
Tables: :mod:`chat.backends.schema`, version 3.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from chat.backends.base import Conflict
from chat.core.model import Account, Member, MyRoom, RoomInfo, RoomKind, Standing, TokenInfo, Visibility
from chat.core.validation import name_key

Row = Sequence[Any]

# Ids come from people (a token id in a URL): one past what the columns hold is
# no such row, not a failing database.
MAX_ID = 2**63 - 1

_ACCOUNT = "id, name, admin, disabled, created"
_ROOM = "room, visibility, kind, title, created"
_TOKEN = "id, account_id, label, created, last_used, revoked"

ANY_ACCOUNT = "SELECT EXISTS (SELECT 1 FROM accounts)"
INSERT_ACCOUNT = (
    "INSERT INTO accounts (name, name_key, password_hash, admin, disabled, created)"
    " VALUES ($1, $2, $3, $4, false, $5) ON CONFLICT (name_key) DO NOTHING RETURNING id"
)
USE_INVITE = "UPDATE invites SET used_by = $1, used_at = $2 WHERE hash = $3 AND used_by IS NULL RETURNING hash"
ACCOUNT = f"SELECT {_ACCOUNT} FROM accounts WHERE id = $1"
ACCOUNT_BY_NAME = f"SELECT {_ACCOUNT}, password_hash FROM accounts WHERE name_key = $1"
ACCOUNTS = f"SELECT {_ACCOUNT} FROM accounts"
SET_PASSWORD = "UPDATE accounts SET password_hash = $2 WHERE id = $1"
SET_DISABLED = "UPDATE accounts SET disabled = $2 WHERE id = $1"

CREATE_SESSION = "INSERT INTO auth_sessions (hash, account_id, created, last_used) VALUES ($1, $2, $3, $3)"
USE_SESSION = "UPDATE auth_sessions SET last_used = $2 WHERE hash = $1 RETURNING account_id"
END_SESSION = "DELETE FROM auth_sessions WHERE hash = $1"
END_SESSIONS = "DELETE FROM auth_sessions WHERE account_id = $1 RETURNING hash"

CREATE_TOKEN = "INSERT INTO tokens (account_id, label, hash, created) VALUES ($1, $2, $3, $4) RETURNING id"
USE_TOKEN = f"UPDATE tokens SET last_used = $2 WHERE hash = $1 AND revoked IS NULL RETURNING {_TOKEN}"
TOKENS = f"SELECT {_TOKEN} FROM tokens WHERE account_id = $1 ORDER BY created DESC, id DESC"
REVOKE_TOKEN = "UPDATE tokens SET revoked = $3 WHERE account_id = $1 AND id = $2 AND revoked IS NULL RETURNING id"

CREATE_INVITE = (
    "INSERT INTO invites (hash, created_by, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING hash"
)

ROOM = f"SELECT {_ROOM} FROM rooms WHERE room = $1"
# last_seq 0: no message yet. A room's row is also its seq counter (see schema).
INSERT_ROOM = (
    "INSERT INTO rooms (room, last_seq, visibility, kind, title, created, dm_key)"
    " VALUES ($1, 0, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING room"
)
DM_BY_KEY = f"SELECT {_ROOM} FROM rooms WHERE dm_key = $1"
ENSURE_PUBLIC = (
    "INSERT INTO rooms (room, last_seq, visibility, kind, title, created)"
    " VALUES ($1, 0, 'public', 'room', $1, $2) ON CONFLICT DO NOTHING"
)
PUBLIC_ROOMS = f"SELECT {_ROOM} FROM rooms WHERE visibility = 'public'"

STANDING = "SELECT standing FROM memberships WHERE room = $1 AND account_id = $2"
# ``since``: when the current standing began, so setting it again keeps it.
SET_STANDING = (
    "INSERT INTO memberships (room, account_id, standing, since) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (room, account_id) DO UPDATE SET standing = excluded.standing,"
    " since = CASE WHEN memberships.standing = excluded.standing THEN memberships.since ELSE excluded.since END"
)
# A participant who left a DM is in it again when it is started again (its history too).
REJOIN = "INSERT INTO memberships (room, account_id, standing, since) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
DELETE_STANDING = "DELETE FROM memberships WHERE room = $1 AND account_id = $2"
MEMBERS = (
    "SELECT m.account_id, a.name, m.standing FROM memberships m"
    " JOIN accounts a ON a.id = m.account_id WHERE m.room = $1"
)
# One row per room, or per (DM, participant): the rooms and every DM's people in one read.
ACCOUNT_ROOMS = (
    "SELECT r.room, r.visibility, r.kind, r.title, r.created, m.standing, a.name"
    " FROM memberships m JOIN rooms r ON r.room = m.room"
    " LEFT JOIN memberships p ON r.kind = 'dm' AND p.room = m.room AND p.standing <> 'banned'"
    " LEFT JOIN accounts a ON a.id = p.account_id"
    " WHERE m.account_id = $1 AND m.standing <> 'banned'"
)


class Statements(Protocol):
    """A connection inside a transaction."""

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...


def account_of(row: Row) -> Account:
    return Account(int(row[0]), row[1], bool(row[2]), bool(row[3]), int(row[4]))


def room_of(row: Row) -> RoomInfo:
    return RoomInfo(row[0], Visibility(row[1]), RoomKind(row[2]), row[3], int(row[4]))


def token_of(row: Row) -> TokenInfo:
    return TokenInfo(int(row[0]), int(row[1]), row[2], int(row[3]), row[4], row[5])


def dm_key(members: dict[int, Standing]) -> str:
    """The same people, in any order, make the same key."""
    return ",".join(str(account) for account in sorted(members))


class SQLDirectory(ABC):
    """Every method of the Directory protocol; :class:`StoreUnavailable` comes from the engine."""

    @abstractmethod
    async def _fetch(self, sql: str, *args: object) -> list[Row]:
        """One statement in a transaction of its own: its rows (none for a write without RETURNING)."""

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Statements]:
        """A transaction, committed when the block ends, rolled back if it raises."""

    @abstractmethod
    async def _lock_accounts(self, tx: Statements) -> None:
        """Hold off every other sign-up until ``tx`` ends (see create_account)."""

    # -- accounts

    async def create_account(
        self, name: str, password_hash: str, now: int, *, admin: bool | None = None, invite: str | None = None
    ) -> Account:
        async with self._transaction() as tx:
            # One sign-up at a time: the first account's check below and its
            # insert are then one step, so two first sign-ups cannot both be admin.
            await self._lock_accounts(tx)
            if admin is None:
                admin = not bool((await tx.fetch(ANY_ACCOUNT))[0][0])
            rows = await tx.fetch(INSERT_ACCOUNT, name, name_key(name), password_hash, admin, now)
            if not rows:
                raise Conflict(f"name taken: {name!r}")
            account = Account(int(rows[0][0]), name, admin, False, now)
            if invite is not None and not await tx.fetch(USE_INVITE, account.id, now, invite):
                raise Conflict("invite unknown or used")  # the account goes with the rollback
            return account

    async def account(self, account_id: int) -> Account | None:
        if not 0 < account_id <= MAX_ID:
            return None
        rows = await self._fetch(ACCOUNT, account_id)
        return account_of(rows[0]) if rows else None

    async def account_by_name(self, name: str) -> tuple[Account, str] | None:
        rows = await self._fetch(ACCOUNT_BY_NAME, name_key(name))
        return (account_of(rows[0]), rows[0][5]) if rows else None

    async def accounts(self) -> list[Account]:
        found = [account_of(row) for row in await self._fetch(ACCOUNTS)]
        return sorted(found, key=lambda a: (name_key(a.name), a.id))

    async def set_password(self, account_id: int, password_hash: str) -> None:
        await self._fetch(SET_PASSWORD, account_id, password_hash)

    async def set_disabled(self, account_id: int, disabled: bool) -> None:
        await self._fetch(SET_DISABLED, account_id, disabled)

    # -- sessions and tokens

    async def create_session(self, session_hash: str, account_id: int, now: int) -> None:
        await self._fetch(CREATE_SESSION, session_hash, account_id, now)

    async def session_account(self, session_hash: str, now: int) -> Account | None:
        rows = await self._fetch(USE_SESSION, session_hash, now)
        return await self.account(int(rows[0][0])) if rows else None

    async def end_session(self, session_hash: str) -> None:
        await self._fetch(END_SESSION, session_hash)

    async def end_sessions(self, account_id: int) -> list[str]:
        return [row[0] for row in await self._fetch(END_SESSIONS, account_id)]

    async def create_token(self, account_id: int, label: str, token_hash: str, now: int) -> TokenInfo:
        rows = await self._fetch(CREATE_TOKEN, account_id, label, token_hash, now)
        return TokenInfo(int(rows[0][0]), account_id, label, now)

    async def token_account(self, token_hash: str, now: int) -> tuple[Account, TokenInfo] | None:
        rows = await self._fetch(USE_TOKEN, token_hash, now)
        if not rows:
            return None
        token = token_of(rows[0])
        account = await self.account(token.account)
        return (account, token) if account is not None else None

    async def tokens(self, account_id: int) -> list[TokenInfo]:
        return [token_of(row) for row in await self._fetch(TOKENS, account_id)]

    async def revoke_token(self, account_id: int, token_id: int, now: int) -> bool:
        if not 0 < token_id <= MAX_ID:
            return False
        return bool(await self._fetch(REVOKE_TOKEN, account_id, token_id, now))

    async def create_invite(self, code_hash: str, created_by: int, now: int) -> None:
        if not await self._fetch(CREATE_INVITE, code_hash, created_by, now):
            raise Conflict("invite exists")

    # -- rooms and memberships

    async def room(self, room: str) -> RoomInfo | None:
        rows = await self._fetch(ROOM, room)
        return room_of(rows[0]) if rows else None

    async def create_room(self, info: RoomInfo, members: dict[int, Standing]) -> RoomInfo:
        key = dm_key(members) if info.kind is RoomKind.DM else None
        args = (info.room, info.visibility.value, info.kind.value, info.title, info.created, key)
        async with self._transaction() as tx:
            if not await tx.fetch(INSERT_ROOM, *args):
                # On PostgreSQL a concurrent start of the same DM has committed
                # by now (the insert waited for it), so this read finds it.
                existing = await tx.fetch(DM_BY_KEY, key) if key is not None else []
                if not existing:
                    raise Conflict(f"room exists: {info.room!r}")
                found = room_of(existing[0])
                for account, standing in members.items():
                    await tx.fetch(REJOIN, found.room, account, standing.value, info.created)
                return found
            for account, standing in members.items():
                await tx.fetch(SET_STANDING, info.room, account, standing.value, info.created)
        return info

    async def ensure_public(self, room: str, now: int) -> RoomInfo:
        # Nearly always there already: one read. Two joins of a new name both insert; one wins.
        found = await self.room(room)
        if found is None:
            await self._fetch(ENSURE_PUBLIC, room, now)
            found = await self.room(room)
            assert found is not None  # rooms are never deleted
        return found

    async def standing(self, room: str, account_id: int) -> Standing | None:
        rows = await self._fetch(STANDING, room, account_id)
        return Standing(rows[0][0]) if rows else None

    async def set_standing(self, room: str, account_id: int, standing: Standing | None, now: int) -> None:
        if standing is None:
            await self._fetch(DELETE_STANDING, room, account_id)
        else:
            await self._fetch(SET_STANDING, room, account_id, standing.value, now)

    async def members(self, room: str) -> list[Member]:
        found = [Member(int(r[0]), r[1], Standing(r[2])) for r in await self._fetch(MEMBERS, room)]
        return sorted(found, key=lambda m: (name_key(m.name), m.account))

    async def account_rooms(self, account_id: int) -> list[MyRoom]:
        rooms: dict[str, tuple[RoomInfo, Standing]] = {}
        people: dict[str, list[str]] = {}
        for row in await self._fetch(ACCOUNT_ROOMS, account_id):
            rooms[row[0]] = (room_of(row), Standing(row[5]))
            if row[6] is not None:
                people.setdefault(row[0], []).append(row[6])
        mine = [
            MyRoom(info, standing, sorted(people.get(room, []), key=name_key))
            for room, (info, standing) in rooms.items()
        ]
        return sorted(mine, key=lambda r: (r.info.title.casefold(), r.info.room))

    async def public_rooms(self) -> list[RoomInfo]:
        return sorted((room_of(row) for row in await self._fetch(PUBLIC_ROOMS)), key=lambda r: r.room)
