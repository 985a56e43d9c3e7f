"""The directory in the history's PostgreSQL database: :class:`PostgresDirectory`.

It runs over :class:`chat.backends.postgres.PostgresHistory`'s pool (the pool's
statement timeout and reconnection included): while the database is
unreachable every call raises :class:`StoreUnavailable`, and works again once
it is back. The queries are :mod:`chat.backends.directory_sql`'s; only the
two lookups made at every request are one statement here instead of two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs, no py.typed

from chat.backends.base import StoreUnavailable
from chat.backends.directory_sql import (
    USE_SESSION,
    USE_TOKEN,
    Row,
    SQLDirectory,
    Statements,
    account_of,
    token_of,
)
from chat.core.model import Account, TokenInfo

# What a broken or refused connection, a timeout or a server error raise
# (as in chat.backends.postgres; OverflowError: an int the column cannot hold).
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError, OverflowError)

# Taken by every sign-up's transaction (see SQLDirectory.create_account).
_SIGN_UP_LOCK = 7_311_012

# A session's or token's account, its use noted, in one round trip.
_SESSION_ACCOUNT = (
    f"WITH s AS ({USE_SESSION}) SELECT a.id, a.name, a.admin, a.disabled, a.created"
    " FROM s JOIN accounts a ON a.id = s.account_id"
)
_TOKEN_ACCOUNT = (
    f"WITH t AS ({USE_TOKEN}) SELECT t.*, a.name, a.admin, a.disabled, a.created AS account_created"
    " FROM t JOIN accounts a ON a.id = t.account_id"
)


class _Connection:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        rows: list[Row] = await self._conn.fetch(sql, *args)
        return rows


class PostgresDirectory(SQLDirectory):
    """Accounts, rooms and memberships over the pool ``ready`` returns (connecting if need be)."""

    def __init__(self, ready: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._ready = ready

    async def _fetch(self, sql: str, *args: object) -> list[Row]:
        pool = await self._ready()
        try:
            rows: list[Row] = await pool.fetch(sql, *args)
        except _ERRORS as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc
        return rows

    def _transaction(self) -> AbstractAsyncContextManager[Statements]:
        return self._begin()

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[Statements]:
        pool = await self._ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield _Connection(conn)
        except _ERRORS as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    async def _lock_accounts(self, tx: Statements) -> None:
        # A statement of its own: the next statement's snapshot, taken after
        # the lock, sees the sign-up that held it before.
        await tx.fetch("SELECT pg_advisory_xact_lock($1)", _SIGN_UP_LOCK)

    async def session_account(self, session_hash: str, now: int) -> Account | None:
        rows = await self._fetch(_SESSION_ACCOUNT, session_hash, now)
        return account_of(rows[0]) if rows else None

    async def token_account(self, token_hash: str, now: int) -> tuple[Account, TokenInfo] | None:
        rows: list[Any] = await self._fetch(_TOKEN_ACCOUNT, token_hash, now)
        if not rows:
            return None
        row = rows[0]
        account = Account(row["account_id"], row["name"], row["admin"], row["disabled"], row["account_created"])
        return account, token_of(row)
