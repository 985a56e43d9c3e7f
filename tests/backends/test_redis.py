"""What only the Redis broker does: one chat across processes. Each Backend
here is one server process's broker, with its own connections, over its own
view of one shared history (tests/support/shared_history.py stands in for
PostgreSQL; tests/cluster runs the real one)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from chat.backends.base import Duplicate, StoreUnavailable
from chat.backends.redis import pipeline as redis_pipeline
from chat.backends.redis.broker import RedisBroker
from chat.backends.redis.claims import REFRESH_NAMES_PER_CALL
from chat.backends.redis.connection import connect
from chat.backends.redis.presence import reap_call
from chat.backends.redis.scripts import REAP
from chat.backends.redis.subscription import Subscription
from chat.core.names import RESERVATION_S
from chat.core.service import ChatService, Limits, Peer
from chat.core.sessions import SessionSigner
from tests.support import RECV_TIMEOUT_S, FakeClock, FakeConn, RedisServer
from tests.support.backends import Backend, redis_backend
from tests.support.shared_history import LogStore, SharedLog


@pytest.fixture
def shared_log() -> SharedLog:
    return SharedLog()


@pytest.fixture
def processes(redis_url, shared_log, io_loop) -> Iterator[Callable[..., Backend]]:  # type: ignore[no-untyped-def]
    """``await processes(**options)`` starts one more process's broker over the shared history; all closed after."""
    started: list[Backend] = []

    async def start(url: str = redis_url, **options: float) -> Backend:
        backend = await redis_backend(url, LogStore(shared_log), **options).start()  # type: ignore[arg-type]
        started.append(backend)
        return backend

    yield start  # type: ignore[misc]

    async def close_all() -> None:
        for backend in started:
            await backend.close()

    io_loop.run_sync(close_all)


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
    await a.say("lobby", "last")
    await b.broker.caught_up("lobby", 21)
    assert [m.seq for m in await b.received(1)] == [21]
    assert [m.seq for m in await a.received(1)] == [21]
    assert a.messages.empty()  # its own messages came back over pub/sub, and were dropped as seen
    assert b.messages.empty()
    # No member on c: nothing crosses to it; it only passed on its own commits (its senders' acknowledgements).
    assert [m.seq for m in await c.received(10)] == list(range(1, 21, 2))
    assert c.messages.empty()


@pytest.mark.gen_test
async def test_a_process_gets_its_own_commits_at_once_and_a_seq_jump_is_filled_from_the_store(processes):
    a, b = await processes(), await processes()
    await a.broker.subscribe("lobby")
    await b.broker.subscribe("lobby")
    b.broker._publisher.publish = lambda messages: None  # type: ignore[attr-defined]  # b's publishes are lost
    await b.say("lobby", "from b")
    assert a.messages.empty()
    stored = await a.say("lobby", "from a")  # seq 2: a has not seen 1, so it reads it from the store first
    assert stored.seq == 2
    assert [(m.seq, m.text) for m in await a.received(2)] == [(1, "from b"), (2, "from a")]
    assert [m.text for m in await b.received(2)] == ["from b", "from a"]


@pytest.mark.gen_test
async def test_a_join_waiting_for_a_message_whose_publish_was_lost_reads_it_from_the_store(processes):
    a, b = await processes(), await processes()
    await a.broker.subscribe("lobby")
    b.broker._publisher.publish = lambda messages: None  # type: ignore[attr-defined]
    await b.say("lobby", "never published")
    await asyncio.wait_for(a.broker.caught_up("lobby", 1), RECV_TIMEOUT_S)
    assert [m.text for m in await a.received(1)] == ["never published"]


@pytest.mark.gen_test(timeout=60)
async def test_with_redis_down_says_are_stored_and_reach_the_senders_process_at_once_and_the_others_after(
    processes, tmp_path, caplog
):
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis").start()
    try:
        a, b = await processes(redis.url), await processes(redis.url)
        for backend in (a, b):
            await backend.broker.subscribe("lobby")
        await a.say("lobby", "m0")
        await b.received(1)
        await a.received(1)
        redis.stop()
        stored = [await a.say("lobby", f"m{i}") for i in range(1, 6)]  # stored and acknowledged
        assert [m.seq for m in stored] == [2, 3, 4, 5, 6]
        assert [m.text for m in await a.received(5)] == [f"m{i}" for i in range(1, 6)]  # at once, Redis down
        assert b.messages.empty()
        assert not a.broker.healthy
        redis.start()  # same port
        assert [m.text for m in await b.received(5)] == [f"m{i}" for i in range(1, 6)]  # filled on resubscribe
        await b.broker.caught_up("lobby", 6)
        assert b.messages.empty()
        assert a.messages.empty()
    finally:
        redis.stop()
    outages = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
    assert 1 <= len(outages) <= 2  # once per process, whatever failed during the outage


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
    for task in [*a.broker._tasks, a.broker._ops_task]:  # type: ignore[attr-defined]
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
        reaped, args = reap_call(proc)
        pipe.eval(REAP, len(reaped), *reaped, *args)
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
async def test_a_control_event_reaches_every_process_once(processes):
    a, b, c = await processes(), await processes(), await processes()
    event = {"t": "removed", "room": "~abcdefghijklmnopqrst", "account": 7, "name": "bob", "reason": "banned"}
    a.broker.control(event)
    assert a.controls.get_nowait() == event  # this process at once, before Redis carries it
    for other in (b, c):
        assert await asyncio.wait_for(other.controls.get(), RECV_TIMEOUT_S) == event
    b.broker.control({"t": "end", "sessions": ["k"]})  # published after the first, so it follows it everywhere
    assert await asyncio.wait_for(a.controls.get(), RECV_TIMEOUT_S) == {"t": "end", "sessions": ["k"]}
    assert a.controls.empty()  # its own event did not come back a second time


@pytest.mark.gen_test
async def test_presence_goes_on_after_redis_forgets_its_scripts(processes, redis_url):
    a = await processes()
    await a.broker.enter("lobby", "ann")
    async with aioredis.Redis.from_url(redis_url) as admin:
        await admin.script_flush()  # as a Redis restart does
    await asyncio.gather(*(a.broker.enter("lobby", f"user{i}") for i in range(5)))  # each refused EVALSHA ran again
    assert await a.broker.members("lobby") == ["ann", *(f"user{i}" for i in range(5))]


@pytest.mark.gen_test
async def test_a_malformed_publish_on_a_room_channel_is_skipped(processes, redis_url, caplog):
    a, b = await processes(), await processes()
    await a.broker.subscribe("lobby")
    async with aioredis.Redis.from_url(redis_url) as admin:
        for junk in ("m{not json", "m[1]", "p[]", ""):
            await admin.publish("chat:room:lobby", junk)
    await b.say("lobby", "after the junk")  # over pub/sub, after the junk
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


@pytest.mark.gen_test
async def test_a_publish_that_fails_with_a_bug_is_logged_and_the_others_fill_it_at_the_next_message(processes, caplog):
    a, b = await processes(), await processes()
    await b.broker.subscribe("lobby")
    pipeline = a.broker._publisher._r.pipeline  # type: ignore[attr-defined]

    def bug(**kwargs: Any) -> Any:
        raise RuntimeError("not a redis error")

    a.broker._publisher._r.pipeline = bug  # type: ignore[attr-defined]
    stored = await a.say("lobby", "m0")  # stored and acknowledged all the same
    assert stored.seq == 1
    await a.received(1)
    a.broker._publisher._r.pipeline = pipeline  # type: ignore[attr-defined]
    await a.say("lobby", "m1")
    assert [m.text for m in await b.received(2)] == ["m0", "m1"]
    assert any("publishing 1 messages failed" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test
async def test_a_read_batch_that_fails_with_a_bug_is_answered_and_the_next_one_is_read(processes, monkeypatch):
    a = await processes()
    await a.broker.enter("lobby", "ann")

    async def bug(client: Any, ops: Any) -> list[Any]:
        raise RuntimeError("not a redis error")

    with monkeypatch.context() as patched:
        patched.setattr(redis_pipeline, "run_pipeline", bug)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(a.broker.members("lobby"), RECV_TIMEOUT_S)
    assert await asyncio.wait_for(a.broker.members("lobby"), RECV_TIMEOUT_S) == ["ann"]


def counting_checkouts(backend: Backend) -> list[int]:
    """Count the connections ``backend``'s client takes from its pool (one per command or pipeline)."""
    pool = backend.broker._r.connection_pool  # type: ignore[attr-defined]
    taken = [0]
    get_connection = pool.get_connection

    async def counted(*args: Any, **kwargs: Any) -> Any:
        taken[0] += 1
        return await get_connection(*args, **kwargs)

    pool.get_connection = counted
    return taken


@pytest.mark.gen_test(timeout=60)
async def test_a_join_storm_on_a_small_pool_waits_and_every_join_succeeds(processes):
    # Two server processes with 2 pooled connections each (the subscription
    # holds one), and 300 sockets opening and joining 30 rooms at once through
    # them: far more concurrent joins than connections, so commands wait for one.
    services = []
    for _ in range(2):
        backend = await processes(pool_size=2)
        service = ChatService(
            backend.store, SessionSigner(b"k"), Limits(rate=0), broker=backend.broker, clock=FakeClock()
        )
        services.append((service, backend))
    rooms = [f"room{r}" for r in range(30)]
    writer = services[0][1]
    for room in rooms:
        for i in range(3):
            await writer.store.append(room, "old", f"{room} m{i}", 1000 + i, "s0", None)
    taken = [counting_checkouts(backend) for _, backend in services]

    async def open_and_join(i: int) -> tuple[Peer, FakeConn, dict[str, Any]]:
        service, _ = services[i % 2]
        conn = FakeConn(service.flusher)
        peer = await service.open(conn, f"user{i}", None)
        assert peer is not None, conn.closed
        pending = service.handle_text(peer, json.dumps({"type": "join", "room": rooms[i % 30], "ref": f"j{i}"}))
        assert pending is not None
        await pending
        [answer] = [f for f in conn.of("joined") + conn.of("error") if f.get("ref") == f"j{i}"]
        return peer, conn, answer

    joins = await asyncio.gather(*(open_and_join(i) for i in range(300)))

    for i, (_, conn, answer) in enumerate(joins):
        assert conn.closed is None
        assert answer["type"] == "joined", answer  # never "unavailable"
        assert [m["text"] for m in answer["history"]] == [f"{rooms[i % 30]} m{k}" for k in range(3)]
        assert answer["last_seq"] == 3
        assert f"user{i}" in answer["members"]
    for room_index, room in enumerate(rooms):
        everyone = sorted((f"user{i}" for i in range(room_index, 300, 30)), key=str.casefold)
        for _, backend in services:
            assert await backend.broker.members(room) == everyone
    # The joins shared round trips: far fewer connections taken than joins.
    assert all(0 < n[0] < 150 for n in taken), taken
    for service, _ in services:
        for peer, _, _ in joins:
            if peer in service.peers:
                service.disconnect(peer)


@pytest.mark.gen_test
async def test_names_in_use_are_held_again_and_a_name_another_session_took_is_left_to_it(redis_url, shared_log):
    clock = FakeClock()
    client = connect(redis_url)
    store = LogStore(shared_log)
    broker = RedisBroker(client, store, clock=clock)
    n = 2 * REFRESH_NAMES_PER_CALL + 7  # several refresh calls, the last one short
    try:
        for i in range(n):
            assert await broker.claim(f"user{i}", f"s{i}")
        async with aioredis.Redis.from_url(redis_url, decode_responses=True) as admin:
            async with admin.pipeline(transaction=False) as pipe:
                for i in range(n):
                    pipe.expire(f"chat:name:user{i}", 5)  # about to lapse
                await pipe.execute()
            await admin.set("chat:name:user0", "someone else", ex=5)  # its hold lapsed and another took it
            clock.advance(RESERVATION_S / 3)
            await broker._beat()  # type: ignore[attr-defined]
            async with admin.pipeline(transaction=False) as pipe:
                for i in range(n):
                    pipe.get(f"chat:name:user{i}")
                    pipe.ttl(f"chat:name:user{i}")
                replies = await pipe.execute()
        holders, ttls = replies[0::2], replies[1::2]
        assert holders == ["someone else", *(f"s{i}" for i in range(1, n))]
        assert ttls[0] <= 5
        assert all(RESERVATION_S - 5 <= ttl <= RESERVATION_S for ttl in ttls[1:])
    finally:
        await store.close()
        await broker.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_process_whose_housekeeping_is_slow_keeps_beating_and_is_not_reaped(processes):
    a = await processes(presence_ttl=0.6)
    b = await processes(presence_ttl=0.6)
    await b.broker.subscribe("lobby")
    await a.broker.enter("lobby", "alice")
    assert (await b.event())[2]["event"] == "join"
    stuck = asyncio.Event()  # never set: a's housekeeping (reaping a huge process, say) takes forever
    beats = 0
    beaten = asyncio.Event()
    heartbeat_once = a.broker._heartbeat_once  # type: ignore[attr-defined]

    async def counted() -> None:
        nonlocal beats
        await heartbeat_once()
        beats += 1
        if beats == 5:
            beaten.set()

    async def slow() -> None:
        await stuck.wait()

    a.broker._tidy = slow  # type: ignore[attr-defined]
    a.broker._heartbeat_once = counted  # type: ignore[attr-defined]
    await asyncio.wait_for(beaten.wait(), RECV_TIMEOUT_S)  # 5 beats: longer than the TTL
    await b.broker._tidy()  # type: ignore[attr-defined]  # b reaps every process that stopped beating
    assert await b.broker.members("lobby") == ["alice"]
    assert b.events.empty()  # no leave


@pytest.mark.gen_test
async def test_a_join_reads_its_members_from_redis_in_one_round_trip(processes, monkeypatch):
    backend = await processes()
    service = ChatService(backend.store, SessionSigner(b"k"), Limits(rate=0), broker=backend.broker, clock=FakeClock())
    await backend.say("lobby", "m0")
    await backend.broker.subscribe("lobby")  # already followed: the join's own reads are what is left
    pipelines: list[list[str]] = []
    run_pipeline = redis_pipeline.run_pipeline

    class Names:
        def __init__(self) -> None:
            self.names: list[str] = []

        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args, **kwargs: self.names.append(name)

    async def recorded(client: Any, ops: Any) -> list[Any]:
        names = Names()
        for _, add in ops:
            add(names)
        pipelines.append(names.names)
        return await run_pipeline(client, ops)

    monkeypatch.setattr(redis_pipeline, "run_pipeline", recorded)
    conn = FakeConn(service.flusher)
    peer = await service.open(conn, "ann", None)
    assert peer is not None
    pending = service.handle_text(peer, json.dumps({"type": "join", "room": "lobby", "ref": "j"}))
    assert pending is not None
    await asyncio.wait_for(pending, RECV_TIMEOUT_S)
    [joined] = conn.of("joined")
    assert (joined["last_seq"], [m["text"] for m in joined["history"]], joined["members"]) == (1, ["m0"], ["ann"])
    # last_seq and the history come from the SQL store; Redis is asked for the members, once.
    # (The others are the name claim and the presence change.)
    assert [names for names in pipelines if "hkeys" in names] == [["hkeys"]]
    service.disconnect(peer)


@pytest.mark.gen_test
async def test_a_reader_that_swallows_its_cancellation_still_ends_when_the_broker_closes(
    redis_url, shared_log, monkeypatch
):
    reading = asyncio.Event()

    async def stubborn(self: Subscription) -> None:
        self.first_try.set()
        reading.set()
        with contextlib.suppress(asyncio.CancelledError):  # as redis-py can, when it lands mid-command
            await asyncio.Event().wait()
        raise ConnectionError("the connection closed under the reader")

    monkeypatch.setattr(Subscription, "_read", stubborn)
    backend = await redis_backend(redis_url, LogStore(shared_log)).start()  # type: ignore[arg-type]
    await reading.wait()
    reader = backend.broker._tasks[0]  # type: ignore[attr-defined]
    await backend.close()
    assert reader.done()  # not left pending, to be destroyed with the loop
