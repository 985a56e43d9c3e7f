"""The contract every back-end keeps: the same tests against SQLite and
PostgreSQL with the in-process broker, and against Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from chat.backends.base import Duplicate, StoreUnavailable, presence_frame
from tests.support import free_port
from tests.support.backends import Backend, postgres_backend, redis_backend, sqlite_backend


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def backend(request, io_loop, tmp_path) -> Iterator[Backend]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        made = sqlite_backend(str(tmp_path / "h.db"))
    elif request.param == "postgres":
        made = postgres_backend(request.getfixturevalue("postgres_dsn"))
    else:
        made = redis_backend(request.getfixturevalue("redis_url"))
    io_loop.run_sync(made.start)
    yield made
    io_loop.run_sync(made.close)


@pytest.mark.gen_test
async def test_seqs_count_from_one_per_room_in_append_order(backend):
    futures = [backend.store.append(room, "bob", f"{room}{i}", 1000 + i, "s", None) for i in range(3) for room in "ab"]
    stored = await asyncio.gather(*futures)
    assert [(m.room, m.seq, m.text) for m in stored] == [
        ("a", 1, "a0"), ("b", 1, "b0"), ("a", 2, "a1"), ("b", 2, "b1"), ("a", 3, "a2"), ("b", 3, "b2"),
    ]  # fmt: skip
    assert await backend.store.last_seq("a") == 3
    assert await backend.store.last_seq("nobody") == 0
    assert await backend.store.rooms() == {"a": 3, "b": 3}


@pytest.mark.gen_test
async def test_history_reads_ranges_oldest_first(backend):
    for i in range(10):
        await backend.say("lobby", f"m{i + 1}")
    store = backend.store
    assert [m.seq for m in await store.before("lobby", None, 3)] == [8, 9, 10]
    assert [m.seq for m in await store.before("lobby", 5, 3)] == [2, 3, 4]
    assert await store.before("lobby", 1, 3) == []
    assert [m.seq for m in await store.after("lobby", 5, 3)] == [6, 7, 8]
    assert await store.after("lobby", 10, 3) == []
    got = await store.get("lobby", 4)
    assert got is not None
    assert (got.text, got.name, got.ts, got.session, got.ref) == ("m4", "bob", 1000, "s1", None)
    assert await store.get("lobby", 11) is None


@pytest.mark.gen_test
async def test_a_room_view_is_the_last_seq_and_the_messages_up_to_it(backend):
    store = backend.store
    assert await store.room_view("lobby", None, 3) == (0, [])
    assert await store.room_view("lobby", 0, 3) == (0, [])
    for i in range(10):
        await backend.say("lobby", f"m{i + 1}")
    last, newest = await store.room_view("lobby", None, 3)
    assert (last, [m.text for m in newest]) == (10, ["m8", "m9", "m10"])
    last, resumed = await store.room_view("lobby", 6, 100)
    assert (last, [m.seq for m in resumed]) == (10, [7, 8, 9, 10])
    last, page = await store.room_view("lobby", 2, 3)
    assert (last, [m.seq for m in page]) == (10, [3, 4, 5])
    assert await store.room_view("lobby", 10, 3) == (10, [])
    assert await store.room_view("elsewhere", None, 3) == (0, [])


@pytest.mark.gen_test
async def test_a_message_keeps_its_ref_and_unicode_text(backend):
    text = 'line one\nzwj 👩‍💻 \t"quoted" \\ é'
    sent = await backend.say("lobby", text, ref="")  # an empty ref is a ref
    got = await backend.store.get("lobby", sent.seq)
    assert got == sent
    assert got.text == text
    assert got.ref == ""


@pytest.mark.gen_test
async def test_a_subscribed_room_gets_each_committed_message_once_in_order(backend):
    await backend.broker.subscribe("lobby")
    await asyncio.gather(*(backend.say("lobby", f"m{i}") for i in range(50)))
    for i in range(50, 60):
        await backend.say("lobby", f"m{i}")
    await backend.broker.caught_up("lobby", 60)
    got = await backend.received(60)
    assert [(m.seq, m.text) for m in got] == [(i + 1, f"m{i}") for i in range(60)]
    assert backend.messages.empty()


@pytest.mark.gen_test
async def test_caught_up_returns_once_everything_up_to_the_seq_was_delivered(backend):
    await backend.broker.subscribe("lobby")
    for i in range(3):
        await backend.say("lobby", f"m{i}")
    await backend.broker.caught_up("lobby", 3)
    assert backend.messages.qsize() == 3


@pytest.mark.gen_test
async def test_presence_joins_once_per_name_and_leaves_when_the_name_is_gone(backend):
    broker = backend.broker
    await broker.subscribe("lobby")
    await broker.enter("lobby", "bob")
    assert await backend.event() == ("lobby", "bob", presence_frame("lobby", "join", "bob"))
    await broker.enter("lobby", "Alice")
    assert (await backend.event())[1] == "Alice"
    assert await broker.members("lobby") == ["Alice", "bob"]
    assert await broker.member_counts() == {"lobby": 2}
    broker.exit("lobby", "bob")
    assert await backend.event() == ("lobby", "bob", presence_frame("lobby", "leave", "bob"))
    assert await broker.members("lobby") == ["Alice"]
    broker.exit("lobby", "Alice")
    assert (await backend.event())[2]["event"] == "leave"
    assert await broker.member_counts() == {}


@pytest.mark.gen_test
async def test_typing_is_announced_to_the_room(backend):
    await backend.broker.subscribe("lobby")
    backend.broker.announce("lobby", "bob", {"type": "typing", "room": "lobby", "name": "bob"})
    assert await backend.event() == ("lobby", "bob", {"type": "typing", "room": "lobby", "name": "bob"})


@pytest.mark.gen_test
async def test_a_closed_store_stores_what_it_took_and_refuses_the_rest(backend):
    taken = backend.store.append("lobby", "bob", "last", 1, "s", None)
    await backend.store.close()
    assert (await taken).seq == 1
    with pytest.raises(StoreUnavailable):
        await backend.store.append("lobby", "bob", "late", 2, "s", None)


@pytest.mark.gen_test
async def test_a_retried_ref_is_a_duplicate_of_the_original_and_takes_no_seq(backend):
    sent = await backend.say("lobby", "once", session="s1", ref="r1")
    with pytest.raises(Duplicate) as raised:
        await backend.say("lobby", "once again", session="s1", ref="r1")
    assert raised.value.message == sent
    assert (await backend.say("lobby", "other session", session="s2", ref="r1")).seq == sent.seq + 1
    assert await backend.store.last_seq("lobby") == sent.seq + 1


# ``healthy`` and ``claim`` are no contract of both back-ends: in one process
# the LocalBroker has no backplane to lose and the service's NameRegistry alone
# decides who holds a name, so they are constants there (held names are
# tested through the service: tests/core/test_names.py, tests/server/test_ws.py). On Redis
# they are behaviour: health here, claims in tests/backends/test_redis.py.


@pytest.mark.gen_test
async def test_the_redis_broker_is_healthy_only_while_redis_answers(redis_url):
    down = redis_backend(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    await down.start()
    try:
        assert not down.broker.healthy
        with pytest.raises(StoreUnavailable):
            await down.broker.claim("bob", "s1")
    finally:
        await down.close()
    up = await redis_backend(redis_url).start()
    try:
        assert up.broker.healthy
    finally:
        await up.close()


@pytest.mark.gen_test
async def test_every_read_says_whether_a_guest_sent_the_message(backend):
    store = backend.store
    by_guest = await store.append("lobby", "nick", "hi", 1000, "s1", "r1", guest=True)
    by_account = await store.append("lobby", "alice", "hello", 1001, "s2", "r2")
    assert (by_guest.guest, by_account.guest) == (True, False)
    both = [by_guest, by_account]
    assert await store.before("lobby", None, 10) == both
    assert await store.after("lobby", 0, 10) == both
    assert await store.get("lobby", 1) == by_guest
    assert await store.room_view("lobby", None, 10) == (2, both)
    assert await store.room_view("lobby", 0, 10) == (2, both)
    for m in await store.recent_refs(0):  # PostgreSQL needs none (its refs table dedupes): []
        assert m == both[m.seq - 1]
    with pytest.raises(Duplicate) as raised:
        await store.append("lobby", "nick", "again", 1002, "s1", "r1", guest=True)
    assert raised.value.message == by_guest
