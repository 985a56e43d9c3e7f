"""The one place that chooses the back-ends: a (store, broker) pair from the options.

- Default: :class:`~chat.backends.sqlite.SQLiteHistory` and the in-process
  :class:`~chat.backends.memory.LocalBroker`, fed by the store's commits.
- ``--db postgresql://...`` (or ``postgres://``):
  :class:`~chat.backends.postgres.PostgresHistory` with the in-process broker.
- ``--redis URL``: the same SQL history (PostgreSQL: the options insist on it,
  since several processes share it) and
  :class:`~chat.backends.redis.broker.RedisBroker`, fed by the store's commits,
  so many processes share fan-out and presence. Redis holds no history.

The service is handed the pair and never picks a broker itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from chat.backends.base import Broker, HistoryStore
from chat.backends.memory import LocalBroker
from chat.backends.sqlite import SQLiteHistory

if TYPE_CHECKING:
    from chat.backends.postgres import PostgresHistory

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    return db.startswith(POSTGRES_SCHEMES)


class BackendOptions(Protocol):
    """The options the choice depends on (:class:`chat.server.options.Settings` has them).

    A protocol, not the Settings class, so back-ends never import the server layer."""

    @property
    def db(self) -> str: ...
    @property
    def redis(self) -> str | None: ...
    @property
    def presence_ttl(self) -> float: ...
    @property
    def retention_days(self) -> float | None: ...


def local_broker(store: HistoryStore) -> LocalBroker:
    """The broker of one process, wired to ``store``: each commit is delivered as it happens."""
    broker = LocalBroker()
    store.listen(broker.deliver)
    return broker


def sqlite_backends(path: str, retention_days: float | None = None) -> tuple[SQLiteHistory, LocalBroker]:
    """A SQLite history at ``path`` (``:memory:`` keeps nothing) and its in-process broker."""
    store = SQLiteHistory(path, retention_days=retention_days)
    return store, local_broker(store)


def postgres_store(dsn: str, retention_days: float | None = None, *, sole_writer: bool) -> PostgresHistory:
    # Imported here: asyncpg is needed only by servers on PostgreSQL.
    from chat.backends.postgres import PostgresHistory

    return PostgresHistory(dsn, retention_days=retention_days, sole_writer=sole_writer)


def shared_store(db: str, retention_days: float | None = None) -> SQLiteHistory | PostgresHistory:
    """The SQL history under a Redis broker: PostgreSQL for a ``postgresql://`` URL (what
    several processes need; the options insist on it), else SQLite (tests, one process)."""
    if is_postgres(db):
        return postgres_store(db, retention_days, sole_writer=False)
    return SQLiteHistory(db, retention_days=retention_days)


def open_backends(options: BackendOptions, clock: Callable[[], float] = time.monotonic) -> tuple[HistoryStore, Broker]:
    """The history store and broker ``options`` ask for. ``clock`` times Redis presence.

    Nothing connects yet: the service's ``start()`` starts the broker."""
    if options.redis:
        # Imported here: the redis package is an optional extra, and a
        # single-process server must run without it.
        from chat.backends.redis.broker import RedisBroker
        from chat.backends.redis.connection import connect

        store = shared_store(options.db, options.retention_days)
        # The broker listens to the store's commits itself.
        return store, RedisBroker(connect(options.redis), store, presence_ttl=options.presence_ttl, clock=clock)
    if is_postgres(options.db):
        # No Redis: this is the only process (--workers needs --redis), the one writer.
        store = postgres_store(options.db, options.retention_days, sole_writer=True)
        return store, local_broker(store)
    return sqlite_backends(options.db, options.retention_days)
