"""Access control in the chat service: fake connections, a real SQLite history,
the in-memory directory. The same rules over real sockets, on both engines and
across processes: tests/server/test_access.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Account
from chat.core.service import ChatService, Limits, Peer
from chat.core.sessions import SessionSigner
from tests.support import FakeClock, FakeConn
from tests.support.fake_directory import FakeDirectory
from tests.support.wiring import local_service


@pytest.fixture
def service(tmp_path, io_loop) -> Iterator[ChatService]:
    svc = local_service(
        SQLiteHistory(str(tmp_path / "h.db")),
        SessionSigner(b"k"),
        Limits(rate=0),
        clock=FakeClock(),
        directory=FakeDirectory(),
    )
    yield svc
    io_loop.run_sync(svc.store.close)


async def account(service: ChatService, name: str) -> Account:
    return await service.directory.create_account(name, "hash", 0)


async def connect(service: ChatService, who: Account | str, key: str = "") -> tuple[Peer, FakeConn]:
    conn = FakeConn(service.flusher)
    if isinstance(who, Account):
        peer = await service.open(conn, None, None, account=who, session_key=key or f"s-{who.id}")
    else:
        peer = await service.open(conn, who, None)
    assert peer is not None, conn.closed
    return peer, conn


async def frame(service: ChatService, peer: Peer, **f: Any) -> None:
    pending = service.handle_text(peer, json.dumps(f))
    if pending is not None:
        await pending
    await service.store.drain()
    service.flusher.flush()


async def private_room(service: ChatService, owner: Peer, conn: FakeConn, title: str = "plans") -> str:
    await frame(service, owner, type="create", room=title, visibility="private", ref="c")
    created = conn.of("created")[-1]
    assert created["ref"] == "c"
    return str(created["room"])


def last(conn: FakeConn) -> dict[str, Any]:
    return conn.frames[-1]


@pytest.mark.gen_test
async def test_welcome_tells_an_account_from_a_guest_and_lists_its_rooms(service):
    alice = await account(service, "alice")
    owner, conn = await connect(service, alice)
    room = await private_room(service, owner, conn)
    _, again = await connect(service, alice, "another-device")
    welcome = again.frames[0]
    assert welcome["account"] is True
    assert welcome["guest"] is False
    assert [r["room"] for r in welcome["rooms"]] == [room]
    assert welcome["rooms"][0]["role"] == "owner"
    assert welcome["rooms"][0]["title"] == "plans"
    _, g = await connect(service, "gus")
    assert g.frames[0]["guest"] is True
    assert g.frames[0]["rooms"] == []


@pytest.mark.gen_test
async def test_a_private_room_answers_outsiders_exactly_like_a_room_that_does_not_exist(service):
    alice = await account(service, "alice")
    bob = await account(service, "bob")
    owner, a = await connect(service, alice)
    room = await private_room(service, owner, a)
    unknown = "~" + "a" * 20
    for who in (bob, "gus"):
        peer, conn = await connect(service, who)
        answers = []
        for target in (room, unknown):
            for f in (
                {"type": "join", "room": target},
                {"type": "join", "room": target, "since": 0},
                {"type": "history", "room": target},
                {"type": "say", "room": target, "text": "hi"},
                {"type": "typing", "room": target},
                {"type": "members", "room": target},
            ):
                await frame(service, peer, **f, ref="r")
                error = last(conn)
                answers.append((f["type"], error["type"], error["code"], error["message"]))
        hidden, missing = answers[: len(answers) // 2], answers[len(answers) // 2 :]
        assert hidden == missing
        assert {code for _, _, code, _ in hidden} == {"not_found"}


@pytest.mark.gen_test
async def test_an_invited_member_is_told_and_may_join_and_chat(service):
    alice, bob = await account(service, "alice"), await account(service, "bob")
    owner, a = await connect(service, alice)
    member, b = await connect(service, bob)
    room = await private_room(service, owner, a)
    await frame(service, owner, type="invite", room=room, name="BOB", ref="i")
    assert last(a) == {"type": "done", "action": "invite", "room": room, "name": "bob", "ref": "i"}
    invited = b.of("invited")
    assert invited[-1]["room"]["room"] == room
    assert invited[-1]["room"]["role"] == "member"
    await frame(service, owner, type="join", room=room)
    await frame(service, member, type="join", room=room, ref="j")
    joined = b.of("joined")[-1]
    assert (joined["visibility"], joined["role"], joined["title"]) == ("private", "member", "plans")
    await frame(service, member, type="say", room=room, text="hello")
    assert a.of("message")[-1]["text"] == "hello"
    assert "guest" not in a.of("message")[-1]


@pytest.mark.gen_test
async def test_a_removed_member_gets_removed_and_nothing_more_from_the_room(service):
    alice, bob = await account(service, "alice"), await account(service, "bob")
    owner, a = await connect(service, alice)
    member, b = await connect(service, bob)
    room = await private_room(service, owner, a)
    await frame(service, owner, type="invite", room=room, name="bob")
    await frame(service, owner, type="join", room=room)
    await frame(service, member, type="join", room=room)
    await frame(service, owner, type="remove", room=room, name="bob", ref="x")
    assert last(b) == {"type": "removed", "room": room, "reason": "removed"}
    b.take()
    await frame(service, owner, type="say", room=room, text="after")
    assert [f for f in b.take() if f.get("room") == room] == []
    await frame(service, member, type="join", room=room, ref="again")
    assert last(b)["code"] == "not_found"


@pytest.mark.gen_test
async def test_a_banned_account_cannot_rejoin_a_public_room_and_unban_lets_it(service):
    alice, bob = await account(service, "alice"), await account(service, "bob")
    owner, _ = await connect(service, alice)
    troll, b = await connect(service, bob)
    await frame(service, owner, type="create", room="town", visibility="public")
    await frame(service, troll, type="join", room="town")
    await frame(service, owner, type="ban", room="town", name="bob")
    assert last(b) == {"type": "removed", "room": "town", "reason": "banned"}
    await frame(service, troll, type="join", room="town", ref="j")
    assert last(b)["code"] == "forbidden"
    await frame(service, troll, type="say", room="town", text="spam", ref="s")
    assert last(b)["code"] == "not_member"
    await frame(service, owner, type="unban", room="town", name="bob")
    await frame(service, troll, type="join", room="town", ref="j2")
    assert last(b)["type"] == "joined"


@pytest.mark.gen_test
async def test_roles_decide_who_moderates(service):
    alice, bob = await account(service, "alice"), await account(service, "bob")
    await account(service, "carol")
    owner, a = await connect(service, alice)
    mod, b = await connect(service, bob)
    room = await private_room(service, owner, a)
    for name in ("bob", "carol"):
        await frame(service, owner, type="invite", room=room, name=name)
    await frame(service, mod, type="remove", room=room, name="carol", ref="r1")
    assert last(b)["code"] == "forbidden"
    await frame(service, mod, type="join", room=room)
    await frame(service, owner, type="role", room=room, name="bob", role="moderator")
    assert b.of("role")[-1] == {"type": "role", "room": room, "name": "bob", "role": "moderator"}
    await frame(service, mod, type="remove", room=room, name="alice", ref="r2")
    assert last(b)["code"] == "forbidden"
    await frame(service, mod, type="role", room=room, name="carol", role="moderator", ref="r3")
    assert last(b)["code"] == "forbidden"
    await frame(service, mod, type="remove", room=room, name="carol", ref="r4")
    assert last(b)["type"] == "done"
    await frame(service, mod, type="members", room=room, ref="m")
    assert last(b)["members"] == [{"name": "alice", "role": "owner"}, {"name": "bob", "role": "moderator"}]


@pytest.mark.gen_test
async def test_a_dm_is_one_room_per_set_of_people_and_listed_to_nobody_else(service):
    alice, bob = await account(service, "alice"), await account(service, "bob")
    await account(service, "carol")
    pa, a = await connect(service, alice)
    pb, b = await connect(service, bob)
    pc, c = await connect(service, (await service.directory.account_by_name("carol"))[0])
    await frame(service, pa, type="dm", to=["bob"], ref="d")
    created = a.of("created")[-1]
    assert (created["type"], created["kind"], created["ref"]) == ("created", "dm", "d")
    assert sorted(created["people"]) == ["alice", "bob"]
    assert b.of("invited")[-1]["room"]["room"] == created["room"]
    await frame(service, pb, type="dm", to=["alice"])
    assert b.of("created")[-1]["room"] == created["room"]
    await frame(service, pc, type="rooms", ref="l")
    assert created["room"] not in [r["room"] for r in last(c)["rooms"]]
    await frame(service, pa, type="rooms", ref="l")
    assert created["room"] in [r["room"] for r in last(a)["rooms"]]
    await frame(service, pa, type="dm", to=["nobody"], ref="n")
    assert last(a)["code"] == "not_found"


@pytest.mark.gen_test
async def test_guests_chat_in_public_rooms_marked_as_guests_and_nothing_more(service):
    await account(service, "alice")
    g, conn = await connect(service, "gus")
    await frame(service, g, type="join", room="lobby")
    await frame(service, g, type="say", room="lobby", text="hi")
    assert conn.of("message")[-1]["guest"] is True
    for f in (
        {"type": "create", "room": "mine", "visibility": "public"},
        {"type": "create", "room": "mine", "visibility": "private"},
        {"type": "dm", "to": ["alice"]},
        {"type": "invite", "room": "lobby", "name": "alice"},
    ):
        await frame(service, g, **f, ref="r")
        assert last(conn)["code"] == "unauthorized", f
    refused = FakeConn(service.flusher)
    assert await service.open(refused, "ALICE", None) is None
    assert refused.closed == (1008, "name_taken")


@pytest.mark.gen_test
async def test_without_guests_a_socket_needs_an_account(tmp_path):
    svc = local_service(
        SQLiteHistory(str(tmp_path / "h.db")), SessionSigner(b"k"), directory=FakeDirectory(), guests=False
    )
    conn = FakeConn(svc.flusher)
    assert await svc.open(conn, "gus", None) is None
    assert conn.closed == (1008, "unauthorized")
    await svc.store.close()


@pytest.mark.gen_test
async def test_ended_sessions_and_disabled_accounts_close_their_sockets(service):
    alice, bob = await account(service, "alice"), await account(service, "bob")
    _, laptop = await connect(service, alice, "laptop")
    _, phone = await connect(service, alice, "phone")
    _, b = await connect(service, bob, "bob-token")
    service.end_sessions(["laptop"])
    assert laptop.closed == (1000, "signed_out")
    assert phone.closed is None
    service.account_disabled(alice.id)
    assert phone.closed == (1008, "account_disabled")
    assert b.closed is None
    assert [p.account for p in service.peers] == [bob.id]


@pytest.mark.gen_test
async def test_a_moderator_removes_a_guest_from_a_public_room(service):
    alice = await account(service, "alice")
    owner, a = await connect(service, alice)
    await frame(service, owner, type="create", room="town", visibility="public")
    g, conn = await connect(service, "troll")
    await frame(service, g, type="join", room="town")
    await frame(service, owner, type="remove", room="town", name="troll", ref="k")
    assert last(a)["type"] == "done"
    assert last(conn) == {"type": "removed", "room": "town", "reason": "removed"}
    assert "town" not in g.rooms


@pytest.mark.gen_test
async def test_create_of_a_public_name_in_use_is_refused_and_private_titles_may_repeat(service):
    alice = await account(service, "alice")
    owner, a = await connect(service, alice)
    g, _ = await connect(service, "gus")
    await frame(service, g, type="join", room="lobby")
    await frame(service, owner, type="create", room="lobby", visibility="public", ref="c")
    assert last(a)["code"] == "room_exists"
    first = await private_room(service, owner, a, "same")
    second = await private_room(service, owner, a, "same")
    assert first != second


@pytest.mark.gen_test
async def test_members_and_presence_tell_accounts_from_guests(service):
    alice = await account(service, "alice")
    pa, a = await connect(service, alice)
    g, conn = await connect(service, "gus")
    await frame(service, pa, type="join", room="lobby")
    await frame(service, g, type="join", room="lobby", ref="j")
    joined = conn.of("joined")[-1]
    assert (joined["members"], joined["accounts"]) == (["alice", "gus"], ["alice"])  # gus: a guest
    assert a.of("presence")[-1] == {"type": "presence", "room": "lobby", "event": "join", "name": "gus"}
    bob = await account(service, "bob")
    pb, _ = await connect(service, bob)
    await frame(service, pb, type="join", room="lobby")
    assert conn.of("presence")[-1] == {
        "type": "presence",
        "room": "lobby",
        "event": "join",
        "name": "bob",
        "account": True,
    }
    service.disconnect(pb)
    assert conn.of("presence")[-1]["event"] == "leave"
    assert conn.of("presence")[-1]["account"] is True


@pytest.mark.gen_test
async def test_a_started_service_knows_the_account_names_without_asking_at_each_connect(tmp_path):
    directory = FakeDirectory()
    await directory.create_account("alice", "hash", 0)
    svc = local_service(SQLiteHistory(str(tmp_path / "h.db")), SessionSigner(b"k"), directory=directory)
    await svc.start()
    try:
        directory.down = True  # every query fails from here: the names are known already
        _, gus = await connect(svc, "gus")
        refused = FakeConn(svc.flusher)
        assert await svc.open(refused, "Alice", None) is None
        assert refused.closed == (1008, "name_taken")
        directory.down = False
        svc.account_created("gus")  # a sign-up on any process: the guest using the name goes
        assert gus.closed == (1008, "name_taken")
        again = FakeConn(svc.flusher)
        assert await svc.open(again, "gus", None) is None
        # An account made behind the service's back (a shell's `users add`) is learned at the next reload.
        _, bea = await connect(svc, "bea")
        await directory.create_account("bea", "hash", 0)
        await svc._reload_account_names()
        assert bea.closed == (1008, "name_taken")
    finally:
        await svc.stop()
