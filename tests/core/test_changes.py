"""Edits, deletions, reactions, read markers, mentions and search in the chat
service: fake connections, a real SQLite history, the in-memory directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chat.backends.sqlite import SQLiteHistory
from chat.core.service import ChatService, Limits
from chat.core.sessions import SessionSigner
from tests.core.test_access import account, connect, frame, last, private_room
from tests.support import FakeClock, FakeConn
from tests.support.wiring import local_service


@pytest.fixture
def service(tmp_path, io_loop) -> Iterator[ChatService]:
    store = SQLiteHistory(str(tmp_path / "h.db"))
    svc = local_service(store, SessionSigner(b"k"), Limits(rate=0), clock=FakeClock(), directory=store.directory())
    yield svc
    io_loop.run_sync(svc.store.close)


async def said(service: ChatService, peer: Any, conn: FakeConn, room: str, text: str) -> dict[str, Any]:
    await frame(service, peer, type="say", room=room, text=text, ref=f"s-{text}")
    return next(f for f in reversed(conn.frames) if f.get("ref") == f"s-{text}")


async def two_in_a_room(service: ChatService) -> tuple[Any, FakeConn, Any, FakeConn, str]:
    alice, bob = await account(service, "alice"), await account(service, "bob")
    pa, a = await connect(service, alice)
    pb, b = await connect(service, bob)
    room = await private_room(service, pa, a)
    await frame(service, pa, type="invite", room=room, name="bob")
    for peer in (pa, pb):
        await frame(service, peer, type="join", room=room)
    return pa, a, pb, b, room


@pytest.mark.gen_test
async def test_an_edit_takes_the_next_seq_reaches_the_room_and_the_history_shows_the_message_as_now(service):
    pa, a, pb, b, room = await two_in_a_room(service)
    m = await said(service, pa, a, room, "helo")
    await frame(service, pa, type="edit", room=room, seq=m["seq"], text="hello", ref="e")
    ack = last(a)
    assert (ack["type"], ack["seq"], ack["target"], ack["text"], ack["ref"]) == (
        "edit",
        m["seq"] + 1,
        m["seq"],
        "hello",
        "e",
    )
    seen = b.of("edit")[-1]
    assert seen == {k: v for k, v in ack.items() if k != "ref"}
    await frame(service, pb, type="history", room=room, ref="h")
    [shown] = last(b)["messages"]
    assert (shown["seq"], shown["text"], shown["edited"]) == (m["seq"], "hello", ack["ts"])


@pytest.mark.gen_test
async def test_only_authors_edit_and_moderators_delete_anyones_messages(service):
    pa, a, pb, b, room = await two_in_a_room(service)
    m = await said(service, pb, b, room, "mine")
    await frame(service, pa, type="edit", room=room, seq=m["seq"], text="yours", ref="x")
    assert last(a)["code"] == "forbidden"  # alice owns the room, not bob's words
    await frame(service, pb, type="delete", room=room, seq=m["seq"] + 5, ref="y")
    assert last(b)["code"] == "not_found"
    await frame(service, pa, type="delete", room=room, seq=m["seq"], ref="z")
    assert last(a)["type"] == "delete"
    assert b.of("delete")[-1]["target"] == m["seq"]
    await frame(service, pb, type="edit", room=room, seq=m["seq"], text="back", ref="w")
    assert last(b)["code"] == "bad_request"  # deleted
    await frame(service, pb, type="history", room=room, ref="h")
    [tombstone] = last(b)["messages"]
    assert (tombstone["deleted"], tombstone["text"]) == (True, "")


@pytest.mark.gen_test
async def test_a_reaction_toggles_and_the_history_counts_who_reacted(service):
    pa, a, pb, b, room = await two_in_a_room(service)
    m = await said(service, pa, a, room, "ship it")
    for i, peer in enumerate((pa, pb, pb)):
        await frame(service, peer, type="react", room=room, seq=m["seq"], emoji="🚀", ref=f"r{i}")
    ons = [f["on"] for f in a.of("reaction")]
    assert ons == [True, True, False]  # bob's second toggle took his back
    await frame(service, pb, type="react", room=room, seq=m["seq"], emoji="💩", ref="bad")
    assert last(b)["code"] == "bad_request"
    await frame(service, pb, type="history", room=room, ref="h")
    assert last(b)["messages"][0]["reactions"] == {"🚀": ["alice"]}


@pytest.mark.gen_test
async def test_a_resume_gets_every_change_made_while_away(service):
    pa, a, pb, _b, room = await two_in_a_room(service)
    m1 = await said(service, pa, a, room, "one")
    m2 = await said(service, pa, a, room, "two")
    since = m2["seq"]
    service.disconnect(pb)
    await frame(service, pa, type="edit", room=room, seq=m1["seq"], text="uno")
    await frame(service, pa, type="delete", room=room, seq=m2["seq"])
    await frame(service, pa, type="react", room=room, seq=m1["seq"], emoji="👍")
    bob = (await service.directory.account_by_name("bob"))[0]
    pb2, b2 = await connect(service, bob, "again")
    await frame(service, pb2, type="join", room=room, since=since, ref="j")
    joined = last(b2)
    assert [(e["type"], e["seq"]) for e in joined["history"]] == [
        ("edit", since + 1),
        ("delete", since + 2),
        ("reaction", since + 3),
    ]
    assert joined["last_seq"] == since + 3


@pytest.mark.gen_test
async def test_guests_react_in_public_rooms_but_do_not_edit(service):
    alice = await account(service, "alice")
    pa, _a = await connect(service, alice)
    g, conn = await connect(service, "gus")
    for peer in (pa, g):
        await frame(service, peer, type="join", room="lobby")
    m = await said(service, g, conn, "lobby", "hi all")
    await frame(service, g, type="edit", room="lobby", seq=m["seq"], text="hey", ref="e")
    assert last(conn)["code"] == "unauthorized"
    await frame(service, g, type="react", room="lobby", seq=m["seq"], emoji="👀", ref="r")
    assert (last(conn)["type"], last(conn)["guest"]) == ("reaction", True)


@pytest.mark.gen_test
async def test_read_markers_follow_the_account_and_count_unread_and_mentions(service):
    pa, a, pb, b, room = await two_in_a_room(service)
    bob = (await service.directory.account_by_name("bob"))[0]
    _, phone = await connect(service, bob, "phone")
    await said(service, pa, a, room, "first")
    m2 = await said(service, pa, a, room, "hey @bob look")
    assert b.of("message")[-1]["mentions"] == ["bob"]
    await said(service, pa, a, room, "third")
    await frame(service, pb, type="read", room=room, seq=m2["seq"] - 1, ref="r")
    assert last(b) == {"type": "read", "room": room, "seq": m2["seq"] - 1, "unread": 2, "mentions": 1, "ref": "r"}
    assert phone.of("read")[-1] == {"type": "read", "room": room, "seq": m2["seq"] - 1, "unread": 2, "mentions": 1}
    assert not a.of("read")  # markers are private to their account
    _, later = await connect(service, bob, "later")
    [mine] = [r for r in later.frames[0]["rooms"] if r["room"] == room]
    assert (mine["read"], mine["unread"], mine["mentions"]) == (m2["seq"] - 1, 2, 1)


@pytest.mark.gen_test
async def test_search_finds_current_text_only_in_rooms_the_caller_may_read(service):
    pa, a, pb, b, room = await two_in_a_room(service)
    carol = await account(service, "carol")
    pc, c = await connect(service, carol)
    await frame(service, pc, type="join", room="lobby")
    await said(service, pc, c, "lobby", "the lighthouse plan")
    m = await said(service, pa, a, room, "secret lighthouse budget")
    gone = await said(service, pa, a, room, "lighthouse deleted soon")
    await frame(service, pa, type="delete", room=room, seq=gone["seq"])
    await frame(service, pa, type="edit", room=room, seq=m["seq"], text="secret beacon budget")
    await frame(service, pc, type="search", q="lighthouse", ref="q")
    assert [(h["room"], h["name"]) for h in last(c)["results"]] == [("lobby", "carol")]
    await frame(service, pb, type="search", q="lighthouse", ref="q")
    assert [h["room"] for h in last(b)["results"]] == ["lobby"]  # the edit took it out, the deletion too
    await frame(service, pb, type="search", q="beacon", ref="q")
    [hit] = last(b)["results"]
    assert (hit["room"], hit["seq"]) == (room, m["seq"])
    assert "[beacon]" in hit["snippet"]
    await frame(service, pc, type="search", q="beacon", room=room, ref="q")
    assert last(c)["code"] == "not_found"
