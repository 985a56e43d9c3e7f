"""The parts RedisBroker is made of, each on its own: the link's health, name
claims, presence, the subscription and the publisher, against a real Redis
where they need one."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from chat.backends.redis import keys
from chat.backends.redis.claims import Claims
from chat.backends.redis.connection import connect
from chat.backends.redis.health import Health
from chat.backends.redis.pipeline import Batch
from chat.backends.redis.presence import Presence
from chat.backends.redis.publish import Publisher, decode, encode
from chat.backends.redis.subscription import Subscription
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import EventKind, Message
from chat.core.names import RESERVATION_S
from tests.support import RECV_TIMEOUT_S, FakeClock


def test_the_link_is_healthy_only_while_subscribed_and_beating(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    health = Health(clock)
    assert not health.healthy
    health.beating = True
    health.up(connected=False)  # the heartbeat answered, the subscription is not made yet
    assert not health.healthy
    health.up(connected=True)
    assert health.healthy
    with caplog.at_level(logging.WARNING):
        health.lost(ConnectionError("gone"))
        clock.advance(3)
        health.lost(ConnectionError("still gone"))  # the same outage: logged once
        health.subscribed = False
        health.up(connected=False)
        assert health.down_since is not None  # not back until subscribed again
        health.up(connected=True)
    assert health.down_since is None
    assert [r.getMessage() for r in caplog.records] == [
        "redis unreachable, serving degraded and reconnecting: gone",
        "redis is back after 3.0 s",
    ]


@pytest.mark.gen_test
async def test_claims_are_held_again_only_once_a_third_of_the_reservation_passed(redis_url: str) -> None:
    client = connect(redis_url)
    claims = Claims(client, Batch(client))
    try:
        assert await claims.claim("Ann", "s1")
        assert not await claims.claim("ANN", "s2")
        await client.expire(keys.name("ann"), 5)
        await claims.refresh(now=RESERVATION_S / 3)  # the first refresh: held again
        assert await client.ttl(keys.name("ann")) > RESERVATION_S - 5
        await client.expire(keys.name("ann"), 5)
        await claims.refresh(now=RESERVATION_S / 3 + 1)  # too soon for another
        assert await client.ttl(keys.name("ann")) <= 5
        claims.release("Ann", "s1")  # no connection uses it any more: no longer refreshed
        await claims.refresh(now=RESERVATION_S)
        assert await client.ttl(keys.name("ann")) <= 5
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_presence_of_one_process_is_reaped_by_another(redis_url: str) -> None:
    client = connect(redis_url)
    a = Presence(client, Batch(client), "proc-a", ttl=15)
    b = Presence(client, Batch(client), "proc-b", ttl=15)
    worker = asyncio.ensure_future(a.run_ops())
    try:
        await a.heartbeat()
        await b.heartbeat()
        assert a.dirty  # a process Redis did not know yet: its presence is put back (nothing to put)
        await a.reconcile()
        assert not a.dirty
        await a.enter("lobby", "ann")
        assert await b.members("lobby") == ["ann"]
        assert await b.member_counts() == {"lobby": 1}
        await client.delete(keys.alive("proc-a"))  # a stopped beating
        await b.reap_dead()
        assert await b.members("lobby") == []
        assert await client.smembers(keys.PROCS) == {"proc-b"}
        await a.heartbeat()  # a was alive after all: it finds out, and puts its members back
        assert a.dirty
        await a.reconcile()
        assert await b.members("lobby") == ["ann"]
    finally:
        a.stop()
        await asyncio.wait_for(worker, RECV_TIMEOUT_S)
        await client.aclose()


@pytest.mark.gen_test
async def test_a_subscription_delivers_a_room_and_the_logouts(redis_url: str) -> None:
    client = connect(redis_url)
    store = SQLiteHistory(":memory:")
    health = Health(FakeClock())
    subscription = Subscription(client, store, Batch(client), health, FakeClock())
    got: asyncio.Queue[object] = asyncio.Queue()
    subscription.listen(lambda batch: got.put_nowait([m.text for m in batch]), lambda *event: None, got.put_nowait)
    reader = asyncio.ensure_future(subscription.read_forever())
    try:
        await asyncio.wait_for(subscription.first_try.wait(), RECV_TIMEOUT_S)
        assert health.subscribed
        assert subscription.connected
        await store.append("lobby", "ann", "before", 1000, "s1", None)  # not listened to: another process's
        await subscription.subscribe("lobby")
        async with aioredis.Redis.from_url(redis_url) as admin:
            after = Message("lobby", 2, "bob", "after", 1000, "s2", "r")
            await admin.publish(keys.room_channel("lobby"), encode([after]))
        assert await asyncio.wait_for(got.get(), RECV_TIMEOUT_S) == ["after"]  # "before" is history
        await subscription.caught_up("lobby", 2)
        async with aioredis.Redis.from_url(redis_url) as admin:
            await admin.publish(keys.CTL, "logout s1")
        assert await asyncio.wait_for(got.get(), RECV_TIMEOUT_S) == "s1"
    finally:
        reader.cancel()
        await asyncio.wait([reader])
        await subscription.close()
        await store.close()
        await client.aclose()


class Committed:
    """The reads a subscription fills from, over messages committed elsewhere;
    ``visible`` is how far the room's seq has got as the next read sees it."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.visible = 0

    async def last_seq(self, room: str) -> int:
        return self.visible

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        return [m for m in self.messages if seq < m.seq <= self.visible][:limit]


@pytest.mark.gen_test
async def test_a_gap_that_shows_as_a_fill_ends_is_filled_too(redis_url: str) -> None:
    # The fill's task is still tracked while it delivers: a gap shown by
    # then (here by the delivery's own listener) must start another fill,
    # or the room stays held and its senders are never acknowledged.
    client = connect(redis_url)
    store = Committed([Message("lobby", seq, "bob", f"m{seq}", 1000, "s2", None) for seq in range(1, 5)])
    subscription = Subscription(client, cast(Any, store), Batch(client), Health(FakeClock()), FakeClock())
    got: asyncio.Queue[list[int]] = asyncio.Queue()

    def delivered(batch: list[Message]) -> None:
        got.put_nowait([m.seq for m in batch])
        if batch[-1].seq == 2:  # 3 and 4 commit now; 4 is this process's own
            store.visible = 4
            subscription.local([store.messages[3]])

    subscription.listen(delivered, lambda *event: None, lambda session: None)
    reader = asyncio.ensure_future(subscription.read_forever())
    try:
        await asyncio.wait_for(subscription.first_try.wait(), RECV_TIMEOUT_S)
        await subscription.subscribe("lobby")
        store.visible = 2
        subscription.local([store.messages[1]])  # 2, this process's: 1 is missing, a fill starts
        assert await asyncio.wait_for(got.get(), RECV_TIMEOUT_S) == [1, 2]
        assert await asyncio.wait_for(got.get(), RECV_TIMEOUT_S) == [3, 4]
    finally:
        reader.cancel()
        await asyncio.wait([reader])
        await subscription.close()
        await client.aclose()


def test_a_batch_of_one_room_goes_over_the_wire_and_back_intact() -> None:
    text = 'zwj 👩\u200d💻 "q" \\'
    sent = [Message("a:b", 7, "ann", text, 1000, "s1", ""), Message("a:b", 8, "bob", "x", 1, "s2", None)]
    payload = encode(sent)
    assert payload[0] == "m"
    assert decode("a:b", payload[1:]) == sent
    for junk in ("{}", "[1]", '[[1, "n", 2, 3, "s", null]]', '[[1, "n", "t", 3, "s", 5]]'):
        with pytest.raises((ValueError, TypeError)):
            decode("a:b", junk)


def test_every_kind_of_event_crosses_the_wire_with_all_it_carries() -> None:
    sent = [
        Message("r", 1, "gus", "hi @ann", 1, "s", "x", guest=True, mentions=("ann",)),
        Message("r", 2, "ann", "fixed", 2, "s2", None, kind=EventKind.EDIT, target=1),
        Message("r", 3, "ann", "", 3, "s2", "d", kind=EventKind.DELETE, target=1),
        Message("r", 4, "gus", "", 4, "s", None, guest=True, kind=EventKind.REACTION, target=1, emoji="👍", on=False),
        Message("r", 5, "bob", "now", 5, edited=6, reactions=(("🎉", ("ann", "bob")),)),
        Message("r", 6, "bob", "", 6, deleted=True),
    ]
    assert decode("r", encode(sent)[1:]) == sent
    # A plain message is sent as before, so the servers of the release before read it.
    assert encode([Message("r", 7, "ann", "x", 7, "s", None)]) == 'm[[7, "ann", "x", 7, "s", null]]'


@pytest.mark.gen_test
async def test_the_publisher_skips_while_redis_is_down_and_sends_each_rooms_newest_once_it_is_back(
    redis_url: str,
) -> None:
    client = connect(redis_url)
    health = Health(FakeClock())
    publisher = Publisher(client, health)
    health.on_back = publisher.back
    listener = aioredis.Redis.from_url(redis_url, decode_responses=True)
    ps = listener.pubsub()
    await ps.subscribe(keys.room_channel("a"), keys.room_channel("b"))
    try:
        health.lost(ConnectionError("gone"))
        publisher.publish([Message(r, s, "ann", f"{r}{s}", 1, "s", None) for s in (1, 2, 3) for r in "ab"])
        publisher.publish([])
        health.subscribed = health.beating = True
        health.up(connected=True)  # back: a3 and b3 go out, the ones a fill cannot tell were missed
        publisher.publish([Message("a", 4, "ann", "a4", 1, "s", None)])
        got: list[list[str]] = []
        while len(got) < 3:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=RECV_TIMEOUT_S)
            if msg is not None:
                got.append([m.text for m in decode(keys.channel_room(msg["channel"]), msg["data"][1:])])
        assert got == [["a3"], ["b3"], ["a4"]]
        await publisher.close()
    finally:
        await ps.aclose()
        await listener.aclose()
        await client.aclose()
