"""The factory picks the back-end pair the options ask for, wired so the broker
delivers the store's commits."""

from __future__ import annotations

import asyncio

import pytest

from chat.backends.factory import open_backends, sqlite_backends
from chat.backends.memory import LocalBroker
from chat.backends.redis.broker import RedisBroker
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Message
from chat.server.options import Settings
from tests.support import RECV_TIMEOUT_S


async def delivered_after_append(store, broker) -> list[Message]:
    """Append one message and return what the broker delivers for it."""
    got: asyncio.Queue[list[Message]] = asyncio.Queue()
    broker.listen(got.put_nowait, lambda room, name, frame: None, lambda session: None)
    await broker.start()
    try:
        await broker.subscribe("lobby")
        stored = await store.append("lobby", "bob", "hi", 1000, "s", None)
        batch = await asyncio.wait_for(got.get(), RECV_TIMEOUT_S)
        assert batch == [stored]
        return batch
    finally:
        await store.close()
        await broker.close()


@pytest.mark.gen_test
async def test_without_redis_the_pair_is_sqlite_and_the_local_broker_fed_by_its_commits(tmp_path):
    store, broker = open_backends(Settings(db=str(tmp_path / "h.db")))
    assert isinstance(store, SQLiteHistory)
    assert isinstance(broker, LocalBroker)
    [message] = await delivered_after_append(store, broker)
    assert (message.room, message.seq, message.text) == ("lobby", 1, "hi")


@pytest.mark.gen_test
async def test_sqlite_backends_wires_a_fresh_local_broker_to_the_store():
    store, broker = sqlite_backends(":memory:")
    [message] = await delivered_after_append(store, broker)
    assert message.seq == 1


@pytest.mark.gen_test
async def test_with_redis_the_pair_is_the_sql_history_and_the_redis_broker_fed_by_its_commits(redis_url, tmp_path):
    store, broker = open_backends(Settings(redis=redis_url, db=str(tmp_path / "h.db"), presence_ttl=3.0))
    assert isinstance(store, SQLiteHistory)
    assert isinstance(broker, RedisBroker)
    [message] = await delivered_after_append(store, broker)
    assert (message.room, message.seq, message.text) == ("lobby", 1, "hi")
