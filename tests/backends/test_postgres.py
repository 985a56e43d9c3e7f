"""PostgresHistory beyond the contract: many writers, long rooms, outages, refs across processes."""

from __future__ import annotations

import asyncio

import pytest

from chat.backends.base import Duplicate, StoreUnavailable
from chat.backends.postgres import PostgresHistory
from chat.core.model import Message


@pytest.mark.gen_test(timeout=120)
async def test_two_processes_writing_one_room_get_one_gap_free_order(postgres_dsn):
    # Two stores, two pools: as two server processes.
    a, b = PostgresHistory(postgres_dsn), PostgresHistory(postgres_dsn)
    sent: list[asyncio.Future[Message]] = []
    for i in range(200):
        for store, who in ((a, "a"), (b, "b")):
            sent += [store.append("lobby", who, f"{who}{i}-{j}", i, who, None) for j in range(i % 7 + 1)]
        await asyncio.sleep(0)  # the batches of both interleave
    stored = await asyncio.gather(*sent)
    seqs = sorted(m.seq for m in stored)
    assert seqs == list(range(1, len(sent) + 1))
    # Each sender's messages keep their order.
    for who in "ab":
        mine = [m for m in stored if m.name == who]
        assert [m.seq for m in mine] == sorted(m.seq for m in mine)
    assert [m.seq for m in await a.after("lobby", 0, 100_000)] == list(range(1, len(sent) + 1))
    await a.close()
    await b.close()


@pytest.mark.gen_test(timeout=120)
async def test_twenty_thousand_messages_in_one_room_are_all_readable_from_seq_1(postgres_dsn):
    store = PostgresHistory(postgres_dsn)
    n = 20_000
    for start in range(0, n, 1000):
        await asyncio.gather(*(store.append("big", "bob", f"m{i}", i, "s", None) for i in range(start, start + 1000)))
    read: list[int] = []
    while len(read) < n:
        page = await store.after("big", read[-1] if read else 0, 5000)
        assert page
        read += [m.seq for m in page]
    assert read == list(range(1, n + 1))
    assert await store.last_seq("big") == n
    await store.close()


@pytest.mark.gen_test(timeout=120)
async def test_an_outage_fails_appends_and_the_same_store_recovers_without_a_restart(postgres, postgres_dsn):
    store = PostgresHistory(postgres_dsn)
    assert (await store.append("lobby", "bob", "before", 1, "s", None)).seq == 1
    postgres.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await store.append("lobby", "bob", "during", 2, "s", "r-during")
        with pytest.raises(StoreUnavailable):
            await store.after("lobby", 0, 10)
    finally:
        postgres.start()
    again = await store.append("lobby", "bob", "during", 2, "s", "r-during")  # the client's retry
    assert again.seq == 2
    assert [m.text for m in await store.after("lobby", 0, 10)] == ["before", "during"]
    await store.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_store_started_while_the_database_is_down_serves_degraded_and_connects_when_it_is_up(
    postgres, postgres_dsn
):
    store = PostgresHistory(postgres_dsn)
    postgres.stop()
    try:
        assert await store.recent_refs(0) == []  # the start goes on
        assert not store.reachable  # /healthz: degraded
        with pytest.raises(StoreUnavailable):
            await store.append("lobby", "bob", "during", 1, "s", "r1")
    finally:
        postgres.start()
    await asyncio.wait_for(store.connected.wait(), 30)  # by itself, with no call to make it
    assert store.reachable
    assert (await store.append("lobby", "bob", "during", 1, "s", "r1")).seq == 1  # the client's retry
    await store.close()


@pytest.mark.gen_test
async def test_a_ref_stored_by_one_process_is_a_duplicate_in_another(postgres_dsn):
    a, b = PostgresHistory(postgres_dsn), PostgresHistory(postgres_dsn)
    original = await a.append("lobby", "bob", "hi", 1, "s1", "r1")
    with pytest.raises(Duplicate) as raised:
        await b.append("lobby", "bob", "hi", 1, "s1", "r1")
    assert raised.value.message == original
    # Sent to both at once: stored once, the other answered with it; no seq is used up.
    both = await asyncio.gather(
        a.append("lobby", "bob", "x", 2, "s1", "r2"),
        b.append("lobby", "bob", "x", 2, "s1", "r2"),
        return_exceptions=True,
    )
    stored = [m for m in both if not isinstance(m, BaseException)]
    dupes = [e for e in both if isinstance(e, Duplicate)]
    assert len(stored) == 1
    assert len(dupes) == 1
    assert dupes[0].message == stored[0]
    assert stored[0].seq == 2
    assert (await b.append("lobby", "bob", "next", 3, "s1", None)).seq == 3
    await a.close()
    await b.close()
