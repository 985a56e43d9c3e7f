"""The client's edit, delete, react, mark_read and search against the real server
(in-process, on SQLite): the frames of design13.md as the service answers them, and a
resume across changes made while the client was away.

The rules themselves (who may edit what, search privacy) are the server's tests;
these pin that the client and the server agree on the frames and the event log."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import pytest
import tornado.ioloop

from chat.client import ChatClient, ChatError, cli
from chat.server.app import ChatApplication
from chat.server.options import Settings
from tests.client.fake_server import next_event
from tests.client.real_server import FAST, started_app, token_for
from tests.client.test_client import GatedClient, drop_and_hold
from tests.support.fakes import FakeClock

TIMEOUT_S = 10.0
ROOM_EVENTS = ("message", "edit", "delete", "reaction")


@pytest.fixture
def app(settings: Settings, io_loop: tornado.ioloop.IOLoop, clock: FakeClock) -> Iterator[ChatApplication]:
    yield from started_app(settings, io_loop, clock)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


async def room_events(client: ChatClient, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        event = await asyncio.wait_for(client.__anext__(), TIMEOUT_S)
        if event["type"] in ROOM_EVENTS:
            events.append(event)
    return events


@pytest.mark.gen_test
async def test_edit_react_delete_reach_the_room_in_seq_order_and_history_shows_them(app, url):
    alice_token, bob_token = await token_for(app, "alice"), await token_for(app, "bob")
    async with ChatClient(url, token=alice_token, **FAST) as alice, ChatClient(url, token=bob_token, **FAST) as bob:
        await alice.join("ops")
        await bob.join("ops")
        kept = await alice.say("ops", "helo")
        gone = await alice.say("ops", "wrong room")
        edit = await alice.edit("ops", kept["seq"], "hello")
        reaction = await bob.react("ops", kept["seq"], "👍")
        deletion = await alice.delete("ops", gone["seq"])
        seen = await room_events(bob, 5)
        history = await bob.history("ops")
    assert (edit["seq"], edit["target"], edit["text"]) == (3, 1, "hello")
    assert (reaction["seq"], reaction["emoji"], reaction["on"], reaction["name"]) == (4, "👍", True, "bob")
    assert (deletion["seq"], deletion["target"]) == (5, 2)
    assert [(e["seq"], e["type"]) for e in seen] == [
        (1, "message"),
        (2, "message"),
        (3, "edit"),
        (4, "reaction"),
        (5, "delete"),
    ]
    # Scrollback: messages as they are now, the changes folded in.
    first, second = history
    assert (first["text"], first["edited"], first["reactions"]) == ("hello", edit["ts"], {"👍": ["bob"]})
    assert (second["deleted"], second["text"]) == (True, "")


@pytest.mark.gen_test
async def test_a_resume_yields_the_edit_delete_and_reaction_made_while_away(app, url):
    alice_token, bob_token = await token_for(app, "alice"), await token_for(app, "bob")
    async with (
        ChatClient(url, token=alice_token, **FAST) as alice,
        GatedClient(url, token=bob_token, **FAST) as bob,
    ):
        await alice.join("ops")
        await bob.join("ops")
        kept = await alice.say("ops", "keep")
        gone = await alice.say("ops", "drop")
        assert len(await room_events(bob, 2)) == 2
        await drop_and_hold(app, bob)
        await alice.edit("ops", kept["seq"], "kept")
        await alice.react("ops", kept["seq"], "🎉")
        await alice.delete("ops", gone["seq"])
        bob.gate.set()
        seen = await room_events(bob, 3)
    assert [(e["seq"], e["type"], e["target"]) for e in seen] == [(3, "edit", 1), (4, "reaction", 1), (5, "delete", 2)]
    assert seen[0]["text"] == "kept"


@pytest.mark.gen_test
async def test_mark_read_counts_and_syncs_to_the_accounts_other_connection(app, url):
    alice_token, bob_token = await token_for(app, "alice"), await token_for(app, "bob")
    async with (
        ChatClient(url, token=alice_token, **FAST) as alice,
        ChatClient(url, token=bob_token, **FAST) as laptop,
        ChatClient(url, token=bob_token, **FAST) as phone,
    ):
        # A private room: bob is a member, so "@bob" is a mention of him.
        room = (await alice.create("plans", "private"))["room"]
        await alice.invite(room, "bob")
        await alice.join(room)
        await laptop.join(room)
        for text in ("one", "two @bob", "three"):
            await alice.say(room, text)
        read = await laptop.mark_read(room, 1)
        synced = await next_event(phone, "read")
    assert (read["seq"], read["unread"], read["mentions"]) == (1, 2, 1)
    assert (synced["room"], synced["seq"], synced["unread"], synced["mentions"]) == (room, 1, 2, 1)
    assert "ref" not in synced


@pytest.mark.gen_test
async def test_search_finds_current_text_only_and_a_guest_may_not_edit(app, url):
    alice_token = await token_for(app, "alice")
    async with ChatClient(url, token=alice_token, **FAST) as alice, ChatClient(url, "gus", **FAST) as gus:
        await alice.join("lobby")
        await gus.join("lobby")
        typo = await alice.say("lobby", "deploy on fridya")
        secret = await alice.say("lobby", "deploy password hunter2")
        await alice.edit("lobby", typo["seq"], "deploy on friday")
        await alice.delete("lobby", secret["seq"])
        found = await gus.search("deploy")
        by_old_text = await gus.search("fridya")
        with pytest.raises(ChatError) as refused:
            await gus.edit("lobby", typo["seq"], "mine now")
    assert [(r["room"], r["seq"], r["name"]) for r in found] == [("lobby", typo["seq"], "alice")]
    assert "[deploy]" in found[0]["snippet"]
    assert by_old_text == []
    assert refused.value.code == "unauthorized"


@pytest.mark.gen_test
async def test_tail_prints_every_event_the_server_sends(app, url, monkeypatch):
    printed: asyncio.Queue[str] = asyncio.Queue()

    def capture(line: str, stream: TextIO) -> None:
        if stream is sys.stdout:
            printed.put_nowait(line)

    monkeypatch.setattr(cli, "_print", capture)
    alice_token, bob_token = await token_for(app, "alice"), await token_for(app, "bob")
    parser = cli.build_parser()
    args = cli.parse_args(parser, [url, "--room", "ops", "--tail"])
    cli.check_args(parser, args, {"CHAT_TOKEN": bob_token})
    async with ChatClient(url, token=alice_token, **FAST) as alice:
        await alice.join("ops")
        tail = asyncio.ensure_future(cli.run_cli(args))
        try:
            await next_event(alice, "presence")  # bob's tail has joined
            message = await alice.say("ops", "helo")
            await alice.edit("ops", message["seq"], "hello")
            await alice.react("ops", message["seq"], "🚀")
            await alice.delete("ops", message["seq"])
            lines = [json.loads(await asyncio.wait_for(printed.get(), TIMEOUT_S)) for _ in range(4)]
        finally:
            tail.cancel()
    assert [(e["type"], e["seq"], e.get("target")) for e in lines] == [
        ("message", 1, None),
        ("edit", 2, 1),
        ("reaction", 3, 1),
        ("delete", 4, 1),
    ]
