"""The one place that chooses the back-ends: a (store, broker) pair from the options.

- Default: :class:`~chat.backends.sqlite.SQLiteHistory` and the in-process
  :class:`~chat.backends.memory.LocalBroker`, fed by the store's commits.
- ``--db postgresql://...`` (or ``postgres://``):
  :class:`~chat.backends.postgres.PostgresHistory` with the in-process broker.
- ``--redis URL``: :class:`~chat.backends.redis.store.RedisHistory` and
  :class:`~chat.backends.redis.broker.RedisBroker` on one shared client, so
  many processes share history, fan-out and presence.

The service is handed the pair and never picks a broker itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from chat.backends.base import Broker, HistoryStore
from chat.backends.memory import LocalBroker
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Message

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    return db.startswith(POSTGRES_SCHEMES)


class Committing(Protocol):
    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None: ...


class BackendOptions(Protocol):
    """The options the choice depends on (:class:`chat.server.options.Settings` has them).

    A protocol, not the Settings class, so back-ends never import the server layer."""

    @property
    def db(self) -> str: ...
    @property
    def redis(self) -> str | None: ...
    @property
    def history_max(self) -> int: ...
    @property
    def presence_ttl(self) -> float: ...
    @property
    def retention_days(self) -> float | None: ...


def local_broker(store: Committing) -> LocalBroker:
    """The broker of one process, wired to ``store``: each commit is delivered as it happens."""
    broker = LocalBroker()
    store.listen(broker.deliver)
    return broker


def sqlite_backends(path: str, retention_days: float | None = None) -> tuple[SQLiteHistory, LocalBroker]:
    """A SQLite history at ``path`` (``:memory:`` keeps nothing) and its in-process broker."""
    store = SQLiteHistory(path, retention_days=retention_days)
    return store, local_broker(store)


def open_backends(options: BackendOptions, clock: Callable[[], float] = time.monotonic) -> tuple[HistoryStore, Broker]:
    """The history store and broker ``options`` ask for. ``clock`` times Redis presence.

    Nothing connects yet: the service's ``start()`` starts the broker."""
    if options.redis:
        # Imported here: the redis package is an optional extra, and a
        # single-process server must run without it.
        from chat.backends.redis.broker import RedisBroker
        from chat.backends.redis.store import RedisHistory, connect

        client = connect(options.redis)
        history = RedisHistory(client, options.history_max)
        return history, RedisBroker(client, history, presence_ttl=options.presence_ttl, clock=clock)
    if is_postgres(options.db):
        # Imported here: asyncpg is needed only by servers on PostgreSQL.
        from chat.backends.postgres import PostgresHistory

        # No Redis: this is the only process (--workers needs --redis), the one writer.
        store = PostgresHistory(options.db, retention_days=options.retention_days, sole_writer=True)
        return store, local_broker(store)
    return sqlite_backends(options.db, options.retention_days)
