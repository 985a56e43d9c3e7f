"""The directory in the history's SQLite file: :class:`SQLiteDirectory`.

It shares :class:`chat.backends.sqlite.SQLiteHistory`'s connection (one file,
one writer) and, like the history, runs each call on the event loop: every
statement is a few tens of microseconds against the page cache. A transaction
never waits for anything between its ``BEGIN`` and its ``COMMIT`` (no call
here suspends), so nothing else on the loop, the history's group commit
included, can run inside it.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager

from chat.backends.base import StoreUnavailable
from chat.backends.directory_sql import Row, SQLDirectory, Statements

_PARAMETER = re.compile(r"\$(\d+)")
_sql: dict[str, str] = {}


def _sqlite(sql: str) -> str:
    """PostgreSQL's ``$n`` as SQLite's ``?n`` (the same numbered parameter)."""
    found = _sql.get(sql)
    if found is None:
        found = _sql[sql] = _PARAMETER.sub(r"?\1", sql)
    return found


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OverflowError) as exc:
        raise StoreUnavailable(f"sqlite: {exc}") from exc


class _Connection:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        with _errors():
            rows: list[Row] = self._db.execute(_sqlite(sql), args).fetchall()
        return rows


class SQLiteDirectory(SQLDirectory):
    """Accounts, rooms and memberships on ``db`` (autocommit mode: each statement
    outside :meth:`_transaction` commits by itself)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = _Connection(db)
        self._raw = db

    async def _fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._db.fetch(sql, *args)

    def _transaction(self) -> AbstractAsyncContextManager[Statements]:
        return self._begin()

    async def _lock_accounts(self, tx: Statements) -> None:
        pass  # BEGIN IMMEDIATE took the file's write lock: one writer at a time already

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[Statements]:
        # IMMEDIATE: the file's write lock from the start, so what the
        # transaction reads stays true until it commits (the first-account check).
        with _errors():
            self._raw.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            with _errors():
                self._raw.execute("COMMIT")
        except BaseException:
            if self._raw.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._raw.execute("ROLLBACK")
            raise
