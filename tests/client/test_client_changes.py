"""The client's issue-13 calls and events (edit, delete, react, read markers, search)
against the fake server, which speaks design13.md's frames and keeps one event log per room."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tornado.web

from chat.client import ChatClient, ChatError
from tests.client.fake_server import FakeChat, fake_app, next_event

TIMEOUT_S = 10.0
FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.05}
ALICE, BOB = "chat_alice-token", "chat_bob-token"
ROOM_EVENTS = ("message", "edit", "delete", "reaction")


@pytest.fixture
def chat() -> FakeChat:
    return FakeChat(tokens={ALICE: "alice", BOB: "bob"})


@pytest.fixture
def app(chat: FakeChat) -> tornado.web.Application:
    return fake_app(chat)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


async def room_events(client: ChatClient, count: int) -> list[dict[str, Any]]:
    """The next ``count`` room events the client yields (other frames skipped)."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        event = await asyncio.wait_for(client.__anext__(), TIMEOUT_S)
        if event["type"] in ROOM_EVENTS:
            events.append(event)
    return events


def kinds(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(e["seq"], e["type"]) for e in events]


@pytest.mark.gen_test
async def test_edit_delete_and_react_return_the_stored_events(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as alice:
        await alice.join("ops")
        first = await alice.say("ops", "helo")
        second = await alice.say("ops", "oops")
        edit = await alice.edit("ops", first["seq"], "hello")
        added = await alice.react("ops", first["seq"], "👍")
        taken_back = await alice.react("ops", first["seq"], "👍")
        deletion = await alice.delete("ops", second["seq"])
    assert (edit["type"], edit["seq"], edit["target"], edit["text"]) == ("edit", 3, 1, "hello")
    assert (added["type"], added["seq"], added["emoji"], added["on"]) == ("reaction", 4, "👍", True)
    assert (taken_back["seq"], taken_back["on"]) == (5, False)
    assert (deletion["type"], deletion["seq"], deletion["target"]) == ("delete", 6, 2)
    sent = [f for f in chat.received if f["type"] in ("edit", "react", "delete")]
    assert [{k: v for k, v in f.items() if k != "ref"} for f in sent] == [
        {"type": "edit", "room": "ops", "seq": 1, "text": "hello"},
        {"type": "react", "room": "ops", "seq": 1, "emoji": "👍"},
        {"type": "react", "room": "ops", "seq": 1, "emoji": "👍"},
        {"type": "delete", "room": "ops", "seq": 2},
    ]
    assert all(isinstance(f["ref"], str) for f in sent)


@pytest.mark.gen_test
async def test_refusals_raise_chat_error_with_the_servers_code(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as alice, ChatClient(url, token=BOB, **FAST) as bob:
        await alice.join("ops")
        await bob.join("ops")
        message = await alice.say("ops", "mine")
        with pytest.raises(ChatError) as forbidden:
            await bob.edit("ops", message["seq"], "not yours")
        with pytest.raises(ChatError) as bad_emoji:
            await bob.react("ops", message["seq"], "🦄")
        with pytest.raises(ChatError) as missing:
            await bob.delete("ops", 99)
    assert (forbidden.value.code, bad_emoji.value.code, missing.value.code) == ("forbidden", "bad_request", "not_found")


@pytest.mark.gen_test
async def test_a_guest_may_react_but_not_edit_or_mark_read(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as alice, ChatClient(url, "gus", **FAST) as gus:
        await alice.join("lobby")
        await gus.join("lobby")
        message = await alice.say("lobby", "hi all")
        reaction = await gus.react("lobby", message["seq"], "🎉")
        with pytest.raises(ChatError) as edit:
            await gus.edit("lobby", message["seq"], "hijacked")
        with pytest.raises(ChatError) as read:
            await gus.mark_read("lobby", message["seq"])
    assert (reaction["name"], reaction["on"]) == ("gus", True)
    assert edit.value.code == read.value.code == "unauthorized"


@pytest.mark.gen_test
async def test_other_peoples_edits_deletes_and_reactions_are_yielded_in_seq_order(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as alice, ChatClient(url, token=BOB, **FAST) as bob:
        await alice.join("ops")
        await bob.join("ops")
        message = await alice.say("ops", "helo")
        await alice.edit("ops", message["seq"], "hello")
        await bob.react("ops", message["seq"], "❤️")
        await alice.delete("ops", message["seq"])
        seen = await room_events(bob, 4)
    assert kinds(seen) == [(1, "message"), (2, "edit"), (3, "reaction"), (4, "delete")]
    assert (seen[1]["target"], seen[1]["text"]) == (1, "hello")
    assert (seen[2]["emoji"], seen[2]["name"], seen[2]["on"]) == ("❤️", "bob", True)
    assert seen[3]["target"] == 1
    assert "text" not in seen[3]


@pytest.mark.gen_test
async def test_a_hole_left_by_an_edit_and_a_reaction_is_filled_from_history_after(chat, url):
    # Seq 2 (an edit) never arrives live: the live reaction 3 and message 4 are
    # held until ``history`` with ``after`` (every kind) brings it.
    chat.withheld = {2}
    async with ChatClient(url, token=ALICE, **FAST) as alice, ChatClient(url, token=BOB, **FAST) as bob:
        await alice.join("ops")
        await bob.join("ops")
        message = await alice.say("ops", "one")
        await alice.edit("ops", message["seq"], "one, edited")
        await alice.react("ops", message["seq"], "🚀")
        await alice.say("ops", "two")
        seen = await room_events(bob, 4)
    assert kinds(seen) == [(1, "message"), (2, "edit"), (3, "reaction"), (4, "message")]
    assert {"type": "history", "room": "ops", "after": 1} in [
        {k: f[k] for k in ("type", "room", "after")} for f in chat.received if f["type"] == "history"
    ]


@pytest.mark.gen_test
async def test_a_resume_yields_the_edit_delete_and_reaction_made_while_away(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as alice, ChatClient(url, token=BOB, **FAST) as bob:
        await alice.join("ops")
        await bob.join("ops")
        keep = await alice.say("ops", "keep me")
        drop = await alice.say("ops", "drop me")
        assert kinds(await room_events(bob, 2)) == [(1, "message"), (2, "message")]
        gone = asyncio.Event()
        bob_socket = chat.socket_of("bob")
        bob_socket.on_connection_close = gone.set  # type: ignore[method-assign]
        bob_socket.close(1001, "away")
        await asyncio.wait_for(gone.wait(), TIMEOUT_S)
        # While bob is away (his reconnect needs the event loop; these run first).
        chat.append({"type": "edit", "room": "ops", "target": keep["seq"], "text": "kept", "name": "alice"}, None)
        chat.append({"type": "delete", "room": "ops", "target": drop["seq"], "name": "alice"}, None)
        chat.append(
            {"type": "reaction", "room": "ops", "target": keep["seq"], "emoji": "👀", "on": True, "name": "alice"}, None
        )
        seen = await room_events(bob, 3)
        rejoin = [f for f in chat.received if f["type"] == "join" and f.get("since") is not None]
    assert kinds(seen) == [(3, "edit"), (4, "delete"), (5, "reaction")]
    assert rejoin[-1]["since"] == 2


@pytest.mark.gen_test
async def test_an_edit_unanswered_when_the_socket_drops_is_resent_with_its_ref_and_stored_once(chat, url):
    chat.unanswered.add("edit")
    async with ChatClient(url, token=ALICE, **FAST) as alice:
        await alice.join("ops")
        message = await alice.say("ops", "typo")
        editing = asyncio.ensure_future(alice.edit("ops", message["seq"], "fixed"))
        await asyncio.wait_for(chat.wait_for(lambda: any(f["type"] == "edit" for f in chat.received)), TIMEOUT_S)
        chat.unanswered.clear()
        chat.socket_of("alice").close(1001, "dropped by the test")
        edit = await asyncio.wait_for(editing, TIMEOUT_S)
    edits = [f for f in chat.received if f["type"] == "edit"]
    assert len(edits) == 2
    assert edits[0]["ref"] == edits[1]["ref"] == edit["ref"]
    assert [e["type"] for e in chat.log["ops"]] == ["message", "edit"]


@pytest.mark.gen_test
async def test_mark_read_returns_the_counts_and_the_accounts_other_connection_gets_them(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as laptop, ChatClient(url, token=ALICE, **FAST) as phone:
        await laptop.join("ops")
        for text in ("a", "b", "c"):
            await laptop.say("ops", text)
        read = await laptop.mark_read("ops", 2)
        synced = await next_event(phone, "read")
    assert {k: read[k] for k in ("type", "room", "seq", "unread", "mentions")} == {
        "type": "read",
        "room": "ops",
        "seq": 2,
        "unread": 1,
        "mentions": 0,
    }
    assert synced == {"type": "read", "room": "ops", "seq": 2, "unread": 1, "mentions": 0}


@pytest.mark.gen_test
async def test_search_sends_only_the_options_given_and_returns_the_results(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as alice:
        await alice.join("ops")
        await alice.say("ops", "deploy friday")
        await alice.say("ops", "lunch")
        await alice.say("ops", "deploy monday")
        everything = await alice.search("deploy")
        paged = await alice.search("deploy", room="ops", before=3000, limit=1)
    assert [(r["seq"], r["snippet"]) for r in everything] == [(3, "[deploy monday]"), (1, "[deploy friday]")]
    assert len(paged) == 1
    searches = [{k: v for k, v in f.items() if k != "ref"} for f in chat.received if f["type"] == "search"]
    assert searches == [
        {"type": "search", "q": "deploy"},
        {"type": "search", "q": "deploy", "room": "ops", "before": 3000, "limit": 1},
    ]


@pytest.mark.gen_test
async def test_my_rooms_follows_the_read_marker_here_and_from_another_device(chat, url):
    async with ChatClient(url, token=ALICE, **FAST) as laptop:
        room = (await laptop.create("plans", "private"))["room"]
        await laptop.join(room)
        for text in ("a", "b", "c"):
            await laptop.say(room, text)
        async with ChatClient(url, token=ALICE, **FAST) as phone:  # its welcome lists the room
            await laptop.mark_read(room, 1)
            await next_event(phone, "read")
            mine_here = next(r for r in laptop.my_rooms if r["room"] == room)
            mine_there = next(r for r in phone.my_rooms if r["room"] == room)
    for mine in (mine_here, mine_there):
        assert (mine["read"], mine["unread"], mine["mentions"]) == (1, 2, 0)
