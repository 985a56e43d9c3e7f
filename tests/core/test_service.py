"""The chat service without sockets: fake connections, a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from chat.backends.base import StoreUnavailable
from chat.backends.sqlite import SQLiteHistory
from chat.core.digest import MAX_WINDOW_S, SMALL
from chat.core.frames import OutFrame
from chat.core.model import Message
from chat.core.ratelimit import FLOOD_WINDOW_S
from chat.core.service import ChatService, Limits, Peer
from chat.core.sessions import SessionSigner
from tests.support import FakeClock, FakeConn, VirtualClock
from tests.support.wiring import local_service


@pytest.fixture
def service(tmp_path, io_loop) -> Iterator[ChatService]:
    svc = local_service(SQLiteHistory(str(tmp_path / "h.db")), SessionSigner(b"k"), Limits(rate=0), clock=FakeClock())
    yield svc
    io_loop.run_sync(svc.store.close)


async def join(service: ChatService, name: str, token: str | None = None) -> tuple[Peer, FakeConn]:
    conn = FakeConn(service.flusher)
    peer = await service.open(conn, name, token)
    assert peer is not None, conn.closed
    service.flusher.flush()
    return peer, conn


async def frame(service: ChatService, peer: Peer, **f: Any) -> None:
    """Handle one frame as the adapter would, and let its effects settle."""
    pending = service.handle_text(peer, json.dumps(f))
    if pending is not None:
        await pending
    await service.store.drain()  # says are broadcast once committed
    service.flusher.flush()  # as the end of the loop tick would


@pytest.mark.gen_test
async def test_welcome_carries_a_session_token_that_restores_the_identity(service):
    peer, conn = await join(service, "bob")
    token = conn.frames[0]["session"]
    assert conn.frames[0] == {
        "type": "welcome",
        "name": "bob",
        "session": token,
        "account": False,
        "admin": False,
        "guest": True,
        "rooms": [],
    }
    service.disconnect(peer)
    again, conn2 = await join(service, "bob", token)
    assert again.session == peer.session
    assert conn2.frames[0]["session"] == token


@pytest.mark.gen_test
async def test_a_name_held_by_another_session_is_refused(service):
    await join(service, "bob")
    conn = FakeConn(service.flusher)
    assert await service.open(conn, "BOB", None) is None
    assert conn.closed == (1008, "name_taken")


@pytest.mark.gen_test
async def test_a_forged_session_token_gets_a_new_session(service):
    await join(service, "bob")
    conn = FakeConn(service.flusher)
    assert await service.open(conn, "bob", "stolen.0000") is None
    assert conn.closed == (1008, "name_taken")


@pytest.mark.gen_test
async def test_say_is_stored_then_sent_to_every_member_once(service):
    alice, a = await join(service, "alice")
    bob, b = await join(service, "bob")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, bob, type="join", room="lobby")
    await frame(service, alice, type="say", room="lobby", text="hi", ref="r1")
    assert [m["seq"] for m in a.of("message")] == [1]
    assert [m["seq"] for m in b.of("message")] == [1]
    assert a.of("message")[0]["ref"] == "r1"
    assert "ref" not in b.of("message")[0]
    assert [m.text for m in await service.store.before("lobby", None, 10)] == ["hi"]


@pytest.mark.gen_test
async def test_presence_goes_to_others_once_per_name(service):
    alice, a = await join(service, "alice")
    bob1, b1 = await join(service, "bob")
    bob2, _b2 = await join(service, "bob", b1.frames[0]["session"])
    await frame(service, alice, type="join", room="lobby")
    await frame(service, bob1, type="join", room="lobby")
    await frame(service, bob2, type="join", room="lobby")
    assert a.of("presence") == [{"type": "presence", "room": "lobby", "event": "join", "name": "bob"}]
    assert b1.of("presence") == []  # nobody tells bob about himself
    service.disconnect(bob1)
    assert len(a.of("presence")) == 1  # bob is still there in his other tab
    await frame(service, bob2, type="leave", room="lobby")
    assert a.of("presence")[-1] == {"type": "presence", "room": "lobby", "event": "leave", "name": "bob"}


@pytest.mark.gen_test
async def test_typing_reaches_the_other_members_only(service):
    alice, a = await join(service, "alice")
    bob, b = await join(service, "bob")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, bob, type="join", room="lobby")
    await frame(service, alice, type="typing", room="lobby")
    assert b.of("typing") == [{"type": "typing", "room": "lobby", "name": "alice"}]
    assert a.of("typing") == []


@pytest.mark.gen_test
async def test_repeated_ref_returns_the_original_without_storing_again(service):
    alice, a = await join(service, "alice")
    bob, b = await join(service, "bob")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, bob, type="join", room="lobby")
    await frame(service, alice, type="say", room="lobby", text="once", ref="r1")
    await frame(service, alice, type="say", room="lobby", text="once", ref="r1")
    assert [(m["seq"], m["ref"]) for m in a.of("message")] == [(1, "r1"), (1, "r1")]
    assert len(b.of("message")) == 1
    assert await service.store.last_seq("lobby") == 1


@pytest.mark.gen_test
async def test_a_retry_from_a_new_connection_of_the_session_is_deduplicated(service):
    alice, a = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, alice, type="say", room="lobby", text="once", ref="r1")
    service.disconnect(alice)
    again, a2 = await join(service, "alice", a.frames[0]["session"])
    await frame(service, again, type="join", room="lobby", since=0)
    await frame(service, again, type="say", room="lobby", text="once", ref="r1")
    assert await service.store.last_seq("lobby") == 1
    assert a2.of("message")[-1]["seq"] == 1


@pytest.mark.gen_test
async def test_a_retry_racing_its_original_waits_for_it(service):
    alice, a = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    say = json.dumps({"type": "say", "room": "lobby", "text": "x", "ref": "r1"})
    assert service.handle_text(alice, say) is None  # queued for the next commit
    retry = service.handle_text(alice, say)  # the original is not committed yet
    assert retry is not None
    await retry
    service.flusher.flush()
    assert await service.store.last_seq("lobby") == 1
    assert [m["seq"] for m in a.of("message")] == [1, 1]


@pytest.mark.gen_test
async def test_the_idempotency_window_is_rebuilt_after_a_restart(tmp_path):
    path = str(tmp_path / "h.db")
    first = local_service(SQLiteHistory(path), SessionSigner(b"k"), Limits(rate=0))
    alice, a = await join(first, "alice")
    await frame(first, alice, type="join", room="lobby")
    await frame(first, alice, type="say", room="lobby", text="x", ref="r1")
    await first.store.close()
    second = local_service(SQLiteHistory(path), SessionSigner(b"k"), Limits(rate=0))
    await second.start()
    again, a2 = await join(second, "alice", a.frames[0]["session"])
    await frame(second, again, type="join", room="lobby")
    await frame(second, again, type="say", room="lobby", text="x", ref="r1")
    assert await second.store.last_seq("lobby") == 1
    assert a2.of("message")[-1]["seq"] == 1
    await second.stop()


@pytest.mark.gen_test
async def test_join_with_since_returns_exactly_what_was_missed(service):
    alice, _ = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    for i in range(5):
        await frame(service, alice, type="say", room="lobby", text=f"m{i}")
    bob, b = await join(service, "bob")
    await frame(service, bob, type="join", room="lobby", since=2)
    joined = b.of("joined")[0]
    assert [m["seq"] for m in joined["history"]] == [3, 4, 5]
    assert joined["last_seq"] == 5
    assert "truncated" not in joined


@pytest.mark.gen_test
async def test_a_long_absence_is_truncated_to_the_oldest_missed(service):
    for i in range(1005):
        await service.store.append("lobby", "x", f"m{i}", i, "s", None)
    bob, b = await join(service, "bob")
    await frame(service, bob, type="join", room="lobby", since=3)
    joined = b.of("joined")[0]
    assert joined["truncated"] is True
    assert [m["seq"] for m in joined["history"]] == list(range(4, 1004))
    assert joined["last_seq"] == 1005


@pytest.mark.gen_test
async def test_messages_stored_while_history_is_read_reach_the_joiner_once(service):
    alice, _ = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, alice, type="say", room="lobby", text="before")
    gate = asyncio.Event()
    real_before = service.store.before

    async def slow_before(*args: Any) -> list[Message]:
        rows = await real_before(*args)
        await gate.wait()
        return rows

    service.store.before = slow_before  # type: ignore[method-assign]
    bob, b = await join(service, "bob")
    joining = asyncio.ensure_future(frame(service, bob, type="join", room="lobby"))
    await asyncio.sleep(0)
    await frame(service, alice, type="say", room="lobby", text="during")
    gate.set()
    await joining
    joined = b.of("joined")[0]
    assert [m["text"] for m in joined["history"]] == ["before"]
    assert [m["text"] for m in b.of("message")] == ["during"]


@pytest.mark.gen_test
async def test_store_failure_answers_unavailable_and_acknowledges_nothing(service):
    alice, a = await join(service, "alice")
    bob, b = await join(service, "bob")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, bob, type="join", room="lobby")

    failed: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    failed.set_exception(StoreUnavailable("disk full"))
    service.store.append = lambda *args, **kwargs: failed  # type: ignore[method-assign]
    await frame(service, alice, type="say", room="lobby", text="x", ref="r1")
    await asyncio.gather(failed, return_exceptions=True)  # after the service's own callback
    assert a.of("error") == [
        {"type": "error", "code": "unavailable", "message": a.of("error")[0]["message"], "ref": "r1"}
    ]
    assert a.of("message") == []
    assert b.of("message") == []


@pytest.mark.gen_test
async def test_too_many_rooms(tmp_path):
    svc = local_service(SQLiteHistory(":memory:"), SessionSigner(b"k"), Limits(max_rooms_per_connection=2))
    peer, conn = await join(svc, "bob")
    for room in ("a", "b", "c"):
        await frame(svc, peer, type="join", room=room, ref=room)
    assert conn.of("error") == [
        {"type": "error", "code": "too_many_rooms", "message": conn.of("error")[0]["message"], "ref": "c"}
    ]
    assert peer.rooms == {"a", "b"}


def paced_service(**limits: Any) -> tuple[ChatService, VirtualClock]:
    """A service over the rate limit whose waits pass in virtual time, at once."""
    clock = VirtualClock()
    limits = {"rate": 20, "burst": 40} | limits
    svc = local_service(
        SQLiteHistory(":memory:"), SessionSigner(b"k"), Limits(**limits), clock=clock, sleep=clock.sleep
    )
    return svc, clock


@pytest.mark.gen_test
async def test_frames_over_the_rate_are_all_handled_later_in_order():
    svc, clock = paced_service()
    peer, conn = await join(svc, "bob")
    await frame(svc, peer, type="join", room="lobby")
    start = clock()
    waits = 0
    for i in range(120):
        pending = svc.handle_text(peer, json.dumps({"type": "say", "room": "lobby", "text": f"m{i}", "ref": f"r{i}"}))
        waits += pending is not None
        if pending is not None:
            await pending  # as the adapter does: nothing else is read meanwhile
    await svc.store.drain()
    assert waits == 120 - 39  # the burst (less the join) went at once; every other frame waited its turn
    assert clock() - start == pytest.approx((120 - 39) / 20)  # ... one token each, at 20 a second
    assert conn.of("error") == []
    assert [(m["seq"], m["text"], m["ref"]) for m in conn.of("message")] == [
        (i + 1, f"m{i}", f"r{i}") for i in range(120)
    ]
    assert [m.text for m in await svc.store.after("lobby", 0, 200)] == [f"m{i}" for i in range(120)]
    assert conn.closed is None
    await svc.store.close()


@pytest.mark.gen_test
async def test_a_frame_waiting_for_its_token_is_not_handled_once_its_socket_closed():
    svc, _ = paced_service(rate=1, burst=1)
    peer, _ = await join(svc, "bob")
    await frame(svc, peer, type="join", room="lobby")  # the only token
    pending = svc.handle_text(peer, json.dumps({"type": "say", "room": "lobby", "text": "late"}))
    assert pending is not None
    svc.disconnect(peer)
    await pending
    await svc.store.drain()
    assert await svc.store.after("lobby", 0, 10) == []  # its client resends what was never acknowledged
    await svc.store.close()


@pytest.mark.gen_test
async def test_a_flood_is_paced_then_closed():
    svc, clock = paced_service(rate=20, burst=40)
    peer, conn = await join(svc, "bob")
    for _ in range(60):
        await frame(svc, peer, type="ping")
    assert len(conn.of("pong")) == 60  # over the rate, later, but every one
    assert conn.of("error") == []
    assert conn.closed is None
    behind_since = clock() - 20 / 20  # frame 41 found the bucket empty; 20 more have waited since
    while conn.closed is None and clock() - behind_since < 2 * FLOOD_WINDOW_S:
        await frame(svc, peer, type="ping")  # frames queued back to back: always behind
    assert conn.closed == (1008, "flood")
    assert clock() - behind_since >= FLOOD_WINDOW_S - 0.1
    assert conn.of("error") == []
    await svc.store.close()


class StuckConn(FakeConn):
    """A transport whose socket never drains: its member has stopped reading."""

    def write_frames(self, frames: list[OutFrame]) -> bool:
        super().write_frames(frames)
        return False


@pytest.mark.gen_test
async def test_a_stalled_member_is_closed_and_the_log_says_for_how_long(service, caplog):
    clock = service.clock
    assert isinstance(clock, FakeClock)
    clock.advance(1000.0)  # the monotonic clock reads far more than any stall
    conn = StuckConn(service.flusher)
    peer = await service.open(conn, "carol", None)
    assert peer is not None
    service.flusher.flush()  # the welcome's write never completes
    clock.advance(31.4)
    caplog.set_level(logging.INFO, logger="chat.core.service")
    service.close_stalled()
    assert conn.closed == (1013, "slow consumer")
    assert [r.getMessage() for r in caplog.records if r.name == "chat.core.service"] == [
        "closing carol: not reading for 31 s"
    ]


@pytest.mark.gen_test
async def test_rooms_lists_rooms_with_history_and_live_rooms(service):
    alice, a = await join(service, "alice")
    await service.store.append("archive", "x", "old", 1, "s", None)
    await frame(service, alice, type="join", room="lobby")
    await frame(service, alice, type="rooms", ref="q")
    assert a.of("rooms")[0] == {
        "type": "rooms",
        "rooms": [
            {
                "room": "archive",
                "title": "archive",
                "visibility": "public",
                "kind": "room",
                "members": 0,
                "last_seq": 1,
            },
            {"room": "lobby", "title": "lobby", "visibility": "public", "kind": "room", "members": 1, "last_seq": 0},
        ],
        "ref": "q",
    }


@pytest.mark.gen_test
async def test_shutdown_closes_every_socket_with_1001(service):
    _, a = await join(service, "alice")
    _, b = await join(service, "bob")
    await service.shutdown()
    assert a.closed == b.closed == (1001, "server shutting down")


@pytest.mark.gen_test
async def test_logout_closes_the_sessions_sockets_and_frees_the_name(service):
    name, session, token = await service.login("alice", None)
    peer, conn = await join(service, "alice", token)
    await frame(service, peer, type="join", room="lobby")
    bob, other = await join(service, "bob")
    await frame(service, bob, type="join", room="lobby")
    service.logout(name, session)
    assert conn.closed == (1000, "logged_out")
    assert other.of("presence")[-1] == {"type": "presence", "room": "lobby", "event": "leave", "name": "alice"}
    assert service.rooms.member_names("lobby") == ["bob"]
    assert (await join(service, "alice"))[0].session != session


@pytest.mark.gen_test
async def test_a_retry_after_leaving_the_room_still_gets_the_original(service):
    alice, a = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    await frame(service, alice, type="say", room="lobby", text="x", ref="r1")
    await frame(service, alice, type="leave", room="lobby")
    await frame(service, alice, type="say", room="lobby", text="x", ref="r1")
    assert a.of("error") == []
    assert [m["seq"] for m in a.of("message")] == [1, 1]


@pytest.mark.gen_test
async def test_a_resume_is_also_truncated_by_size(service):
    for i in range(400):
        await service.store.append("lobby", "x", f"{i:04d}" + "y" * 3996, i, "s", None)
    bob, b = await join(service, "bob")
    await frame(service, bob, type="join", room="lobby", since=0)
    joined = b.of("joined")[0]
    assert joined["truncated"] is True
    assert len(joined["history"]) == 250  # 250 messages of 4000 characters = 1,000,000
    assert [m["seq"] for m in joined["history"]] == list(range(1, 251))


@pytest.mark.gen_test
async def test_a_store_outage_is_logged_once_not_per_message(service, caplog):
    alice, a = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    failed: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    failed.set_exception(StoreUnavailable("disk full"))
    real_append = service.store.append
    service.store.append = lambda *args, **kwargs: failed  # type: ignore[method-assign]
    for i in range(50):
        await frame(service, alice, type="say", room="lobby", text="x", ref=f"r{i}")
    await asyncio.gather(failed, return_exceptions=True)
    assert len(a.of("error")) == 50
    errors = [r for r in caplog.records if r.name == "chat.core.service" and r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == ["history store unavailable: disk full"]
    service.store.append = real_append  # type: ignore[method-assign]
    await frame(service, alice, type="say", room="lobby", text="back")
    assert any("works again" in r.getMessage() and "50 messages were refused" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test
async def test_a_member_joining_as_a_batch_commits_gets_each_message_once(service):
    alice, _ = await join(service, "alice")
    await frame(service, alice, type="join", room="lobby")
    bob, b = await join(service, "bob")
    say = json.dumps({"type": "say", "room": "lobby", "text": "racing"})
    assert service.handle_text(alice, say) is None  # queued: the commit runs next
    joining = service.handle_text(bob, json.dumps({"type": "join", "room": "lobby"}))
    assert joining is not None
    # The join's task is scheduled before the commit runs, as Tornado does it:
    # it reads the history right after the commit. Had the broadcast waited for
    # a later callback, bob would get the message in history and then live.
    await asyncio.ensure_future(joining)
    await service.store.drain()
    seen = [m["seq"] for m in b.of("joined")[0]["history"]] + [m["seq"] for m in b.of("message")]
    assert seen == [1]


@pytest.mark.gen_test
async def test_a_commit_batch_of_two_senders_reaches_each_in_order_with_only_its_own_refs(service):
    alice, a = await join(service, "alice")
    bob, b = await join(service, "bob")
    carol, c = await join(service, "carol")
    for peer in (alice, bob, carol):
        await frame(service, peer, type="join", room="lobby")
    # Three says in one tick: one commit, one fan-out of the three.
    for peer, text, ref in ((alice, "a1", "ra1"), (bob, "b1", "rb1"), (alice, "a2", "ra2")):
        assert service.handle_text(peer, json.dumps({"type": "say", "room": "lobby", "text": text, "ref": ref})) is None
    await service.store.drain()
    service.flusher.flush()
    for conn in (a, b, c):
        assert [m["text"] for m in conn.of("message")] == ["a1", "b1", "a2"]
    assert [m.get("ref") for m in a.of("message")] == ["ra1", None, "ra2"]
    assert [m.get("ref") for m in b.of("message")] == [None, "rb1", None]
    assert [m.get("ref") for m in c.of("message")] == [None, None, None]


@pytest.mark.gen_test
async def test_a_busy_rooms_presence_comes_together_before_its_next_message():
    clock = VirtualClock()
    svc = local_service(SQLiteHistory(":memory:"), SessionSigner(b"k"), Limits(rate=0), clock=clock)
    members = []
    for i in range(SMALL):
        peer, conn = await join(svc, f"m{i}")
        await frame(svc, peer, type="join", room="lobby")
        members.append((peer, conn))
    first, seen = members[0]
    clock.advance(MAX_WINDOW_S)  # the room has been quiet: the next change goes at once
    seen.take()
    x, _ = await join(svc, "x")
    await frame(svc, x, type="join", room="lobby")
    assert seen.take() == [{"type": "presence", "room": "lobby", "event": "join", "name": "x"}]
    y, y_conn = await join(svc, "y")
    await frame(svc, y, type="join", room="lobby")
    z, _ = await join(svc, "z")
    await frame(svc, z, type="join", room="lobby")
    await frame(svc, x, type="leave", room="lobby")
    assert seen.take() == []  # held: the room sent presence less than its window ago
    y_conn.take()
    await frame(svc, first, type="say", room="lobby", text="hi")
    changes = [{"event": "join", "name": "y"}, {"event": "join", "name": "z"}, {"event": "leave", "name": "x"}]
    assert [(f["type"], f.get("changes")) for f in seen.take()] == [("presence", changes), ("message", None)]
    # y gets the same frame: its own join in it tells it nothing wrong (docs/protocol.md).
    assert [(f["type"], f.get("changes")) for f in y_conn.take()] == [("presence", changes), ("message", None)]
    svc.presence.close()
    await svc.store.close()
