"""What only the Redis back-end does: one chat across processes. Each Backend
here is one server process's store and broker, with its own connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis

from chat.history import Duplicate
from chat.redis_broker import _REAP, PRESENCE_TTL_S
from chat.redis_store import POOL_SIZE
from tests.backends import Backend, redis_backend


@pytest.fixture
def processes(redis_url, io_loop) -> Iterator[Callable[..., Backend]]:  # type: ignore[no-untyped-def]
    """``await processes(**options)`` starts one more process's back-end; all are closed after the test."""
    started: list[Backend] = []

    async def start(**options: float) -> Backend:
        backend = await redis_backend(redis_url, **options).start()  # type: ignore[arg-type]
        started.append(backend)
        return backend

    yield start  # type: ignore[misc]

    async def close_all() -> None:
        for backend in started:
            await backend.close()

    io_loop.run_sync(close_all)


def test_a_killed_process_is_noticed_within_30_seconds():
    # A process refreshes its heartbeat every ttl/3 and every process looks for
    # dead ones as often: the worst case is the ttl plus one look.
    assert PRESENCE_TTL_S * 4 / 3 <= 30


@pytest.mark.gen_test
async def test_a_message_reaches_every_process_with_the_room_once_in_order(processes):
    a, b, c = await processes(), await processes(), await processes()
    await a.broker.subscribe("lobby")
    await b.broker.subscribe("lobby")
    for i in range(20):
        await (a if i % 2 else c).say("lobby", f"m{i}")  # c sends without being subscribed
    for backend in (a, b):
        got = await backend.received(20)
        assert [(m.seq, m.text) for m in got] == [(i + 1, f"m{i}") for i in range(20)]
    assert c.messages.empty()  # no member there: nothing crosses to it


@pytest.mark.gen_test
async def test_a_ref_retried_through_another_process_is_stored_once(processes):
    a, b = await processes(), await processes()
    original = await a.say("lobby", "hello", session="s1", ref="r1")
    with pytest.raises(Duplicate) as retried:
        await b.say("lobby", "hello again", session="s1", ref="r1")
    assert retried.value.message == original
    assert (await b.say("lobby", "other session", session="s2", ref="r1")).seq == 2
    assert await a.store.last_seq("lobby") == 2


@pytest.mark.gen_test
async def test_history_is_trimmed_to_history_max(processes):
    a = await processes(history_max=10)
    for i in range(500):
        await a.say("lobby", f"m{i}")
    kept = await a.store.after("lobby", 0, 1000)
    # Redis trims whole blocks of the stream (MAXLEN ~): at least 10 stay, far fewer than 500.
    assert 10 <= len(kept) < 500
    assert [m.seq for m in kept] == list(range(501 - len(kept), 501))
    assert await a.store.last_seq("lobby") == 500


@pytest.mark.gen_test
async def test_presence_counts_a_name_once_across_processes(processes):
    a, b = await processes(), await processes()
    for backend in (a, b):
        await backend.broker.subscribe("lobby")
    await a.broker.enter("lobby", "bob")
    for backend in (a, b):
        assert (await backend.event())[2]["event"] == "join"
    await b.broker.enter("lobby", "bob")  # bob's second tab, on the other process
    assert await b.broker.members("lobby") == ["bob"]
    assert await a.broker.member_counts() == {"lobby": 1}
    a.broker.exit("lobby", "bob")
    await b.broker.enter("lobby", "carol")  # ordered after the exit: no event came between
    assert (await b.event())[1:] == ("carol", {"type": "presence", "room": "lobby", "event": "join", "name": "carol"})
    assert await a.broker.members("lobby") == ["bob", "carol"]
    b.broker.exit("lobby", "bob")
    assert (await b.event())[2] == {"type": "presence", "room": "lobby", "event": "leave", "name": "bob"}


@pytest.mark.gen_test(timeout=30)
async def test_the_members_of_a_process_that_dies_leave(processes, redis_url):
    a = await processes(presence_ttl=0.6)
    b = await processes(presence_ttl=0.6)
    await b.broker.subscribe("lobby")
    await a.broker.enter("lobby", "alice")
    assert (await b.event())[2]["event"] == "join"
    # a dies: its tasks stop, nothing is cleaned up, its heartbeat expires.
    for task in [*a.broker._tasks, a.broker._presence]:  # type: ignore[attr-defined]
        task.cancel()
    room, name, frame = await b.event()
    assert (room, name, frame["event"]) == ("lobby", "alice", "leave")
    assert await b.broker.members("lobby") == []


@pytest.mark.gen_test
async def test_a_process_reaped_while_alive_puts_its_members_back(processes, redis_url):
    a = await processes(presence_ttl=0.6)
    b = await processes(presence_ttl=0.6)
    await b.broker.subscribe("lobby")
    await a.broker.enter("lobby", "alice")
    await b.event()
    # Redis lost a's heartbeat (a long pause, a failover) and b reaped a: in
    # one transaction, or a's next heartbeat could come between.
    proc = a.broker.proc  # type: ignore[attr-defined]
    async with aioredis.Redis.from_url(redis_url) as admin, admin.pipeline(transaction=True) as pipe:
        pipe.delete(f"chat:alive:{proc}")
        pipe.eval(_REAP, 3, f"chat:alive:{proc}", f"chat:here:{proc}", "chat:procs", proc)
        assert (await pipe.execute())[1] == 1
    assert (await b.event())[2]["event"] == "leave"
    # ... and a's next heartbeat sees it and enters again.
    assert (await b.event())[2]["event"] == "join"
    assert await b.broker.members("lobby") == ["alice"]


@pytest.mark.gen_test
async def test_messages_published_while_the_subscription_was_down_are_filled_in_order(processes, redis_url):
    a, b = await processes(), await processes()
    await a.broker.subscribe("lobby")
    await b.say("lobby", "m0")
    assert [m.seq for m in await a.received(1)] == [1]
    async with aioredis.Redis.from_url(redis_url) as admin:
        await admin.client_kill_filter(_type="pubsub")  # every subscription drops
    for i in range(1, 30):
        await b.say("lobby", f"m{i}")  # most of these are published while a is reconnecting
    got = await a.received(29)
    assert [m.text for m in got] == [f"m{i}" for i in range(1, 30)]
    await a.broker.caught_up("lobby", 30)
    assert a.messages.empty()


@pytest.mark.gen_test
async def test_names_are_held_across_processes_and_logout_reaches_every_process(processes):
    a, b = await processes(), await processes()
    assert await a.broker.claim("Bob", "s1")
    assert not await b.broker.claim("bob", "s2")  # case-insensitive, like one process
    assert await b.broker.claim("BOB", "s1")  # the same session, on another process
    a.broker.logout("Bob", "s1")
    assert await asyncio.wait_for(b.logouts.get(), 5) == "s1"
    assert await b.broker.claim("bob", "s2")


@pytest.mark.gen_test
async def test_appends_go_on_after_redis_forgets_its_scripts(processes, redis_url):
    a = await processes()
    await a.say("lobby", "m0")
    async with aioredis.Redis.from_url(redis_url) as admin:
        await admin.script_flush()  # as a Redis restart does
    stored = await asyncio.gather(*(a.say("lobby", f"m{i}") for i in range(1, 6)))
    assert [m.seq for m in stored] == [2, 3, 4, 5, 6]  # each refused EVALSHA ran again, in order, once


@pytest.mark.gen_test
async def test_more_concurrent_commands_than_pooled_connections_wait_their_turn(processes):
    a = await processes()
    await a.broker.subscribe("lobby")
    n = 10 * POOL_SIZE
    claimed = await asyncio.gather(*(a.broker.claim(f"user{i}", f"s{i}") for i in range(n)))
    assert all(claimed)
    await asyncio.gather(*(a.broker.enter("lobby", f"user{i}") for i in range(n)))
    assert len(await a.broker.members("lobby")) == n


@pytest.mark.gen_test
async def test_a_malformed_publish_on_a_room_channel_is_skipped(processes, redis_url, caplog):
    a = await processes()
    await a.broker.subscribe("lobby")
    async with aioredis.Redis.from_url(redis_url) as admin:
        for junk in ("m{not json", "m[1]", "p[]", ""):
            await admin.publish("chat:room:lobby", junk)
    await a.say("lobby", "after the junk")
    [got] = await a.received(1)
    assert (got.seq, got.text) == (1, "after the junk")
    # An unknown kind ("") is skipped quietly: a newer server may publish kinds this one does not know.
    assert sum("malformed" in r.message for r in caplog.records) == 3


@pytest.mark.gen_test
async def test_a_leave_and_rejoin_sent_together_keep_their_order(processes):
    a = await processes()
    await a.broker.subscribe("lobby")
    await a.broker.enter("lobby", "bob")
    # bob's last tab closes and a new one joins at once: both go in one pipeline,
    # the first leave this process ever sent.
    a.broker.exit("lobby", "bob")
    await a.broker.enter("lobby", "bob")
    assert await a.broker.members("lobby") == ["bob"]
