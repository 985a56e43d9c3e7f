"""Every back-end behind one test handle: a history store and a broker, with
queues that collect what the broker delivers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from chat.backends.base import Broker, HistoryStore
from chat.backends.memory import LocalBroker
from chat.backends.postgres import PostgresHistory
from chat.backends.redis.broker import RedisBroker
from chat.backends.redis.connection import connect
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Message
from tests.support import RECV_TIMEOUT_S


@dataclass
class Backend:
    store: HistoryStore
    broker: Broker
    messages: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    events: asyncio.Queue[tuple[str, str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    logouts: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    controls: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self.broker.listen(
            self._delivered,
            lambda room, name, frame: self.events.put_nowait((room, name, frame)),
            self.logouts.put_nowait,
        )
        self.broker.listen_control(self.controls.put_nowait)

    def _delivered(self, batch: list[Message]) -> None:
        for m in batch:
            self.messages.put_nowait(m)

    async def start(self) -> Backend:
        await self.broker.start()
        return self

    async def close(self) -> None:
        await self.store.close()
        await self.broker.close()

    async def say(self, room: str, text: str, session: str = "s1", ref: str | None = None) -> Message:
        return await self.store.append(room, "bob", text, 1000, session, ref)

    async def received(self, n: int) -> list[Message]:
        return [await asyncio.wait_for(self.messages.get(), RECV_TIMEOUT_S) for _ in range(n)]

    async def event(self) -> tuple[str, str, dict[str, Any]]:
        return await asyncio.wait_for(self.events.get(), RECV_TIMEOUT_S)


def sqlite_backend(path: str) -> Backend:
    store = SQLiteHistory(path)
    broker = LocalBroker()
    store.listen(broker.deliver)
    return Backend(store, broker)


def postgres_backend(dsn: str, sole_writer: bool = True) -> Backend:
    """One server process on PostgreSQL without Redis: the in-process broker fed by the store's commits."""
    store = PostgresHistory(dsn, sole_writer=sole_writer)
    broker = LocalBroker()
    store.listen(broker.deliver)
    return Backend(store, broker)


def redis_backend(
    url: str, store: HistoryStore | None = None, presence_ttl: float = 15.0, pool_size: int = 32
) -> Backend:
    """One server process's worth of Redis broker: its own client (``pool_size``
    pooled connections) and process id, over ``store`` (its own view of the
    shared SQL history; an in-memory SQLite history by default)."""
    history = store if store is not None else SQLiteHistory(":memory:")
    return Backend(history, RedisBroker(connect(url, pool_size=pool_size), history, presence_ttl=presence_ttl))
