"""The async client against the real server: requests, ordered delivery, reconnect and resume."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.testing
import tornado.websocket

from chat.backends.base import StoreUnavailable
from chat.backends.sqlite import SQLiteHistory
from chat.client import ChatClient, ChatClosed, ChatError, ChatRefused, Disconnected
from chat.server.app import ChatApplication, make_app
from chat.server.options import Settings

# Generous: these machines are shared and noisy. Nothing waits this long unless a test fails.
TIMEOUT_S = 10.0
# Fast reconnects keep the tests short; the jitter is still random.
FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.1}


class GatedClient(ChatClient):
    """A client whose reconnects can be held, so a test acts while it is away."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dials = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = asyncio.Event()  # set when a dial waits at the closed gate

    def hold(self) -> None:
        self.gate.clear()
        self.held.clear()

    async def _dial(self, request: tornado.httpclient.HTTPRequest) -> tornado.websocket.WebSocketClientConnection:
        self.dials += 1
        if not self.gate.is_set():
            self.held.set()
            await self.gate.wait()
        return await super()._dial(request)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


def drop(app: ChatApplication, name: str, *, abrupt: bool = False) -> None:
    """Close the server side of every connection of ``name``: with 1001, as a
    server shutting down does, or ``abrupt``ly (TCP closed, no close frame), as a crash or a network fault."""
    peers = [peer for peer in app.chat.peers if peer.name == name]
    assert peers, f"{name} is not connected"
    for peer in peers:
        if abrupt:
            peer.conn.ws_connection.stream.close()  # type: ignore[attr-defined]
        else:
            peer.conn.close(1001, "dropped by the test")


async def drop_and_hold(app: ChatApplication, client: GatedClient, *, abrupt: bool = False) -> None:
    """Drop ``client``'s socket and return once it is trying to reconnect (held at its gate)."""
    client.hold()
    drop(app, client.name, abrupt=abrupt)
    await asyncio.wait_for(client.held.wait(), TIMEOUT_S)


async def next_event(client: ChatClient, kind: str | None = None) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(client.__anext__(), TIMEOUT_S)
        if kind is None or event["type"] == kind:
            return event


async def messages(client: ChatClient, count: int) -> list[dict[str, Any]]:
    return [await next_event(client, "message") for _ in range(count)]


async def drain(client: ChatClient) -> list[dict[str, Any]]:
    return [event async for event in client]


def texts(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["text"] for frame in frames]


async def stored(app: ChatApplication, room: str = "lobby") -> list[tuple[int, str]]:
    return [(m.seq, m.text) for m in await app.chat.store.after(room, 0, 5000)]


@contextlib.asynccontextmanager
async def serve(settings: Settings, port: int | None = None) -> AsyncIterator[tuple[ChatApplication, int]]:
    """A server of our own: other settings than the fixture's, or a restart on the same port."""
    app = make_app(settings)
    await app.chat.start()
    if port is None:
        sock, port = tornado.testing.bind_unused_port()
        sockets = [sock]
    else:
        sockets = tornado.netutil.bind_sockets(port, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        yield app, port
    finally:
        server.stop()
        await server.close_all_connections()
        await app.chat.stop()


# -- requests ------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_join_returns_the_joined_frame(url):
    async with ChatClient(url, "alice") as alice:
        joined = await alice.join("lobby")
    assert joined["type"] == "joined"
    assert (joined["room"], joined["members"], joined["last_seq"], joined["history"]) == ("lobby", ["alice"], 0, [])


@pytest.mark.gen_test
async def test_say_returns_the_stored_message_with_its_seq(app, url):
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        first = await alice.say("lobby", "hello")
        second = await alice.say("lobby", "again")
    assert (first["type"], first["seq"], first["name"], first["text"]) == ("message", 1, "alice", "hello")
    assert isinstance(first["ts"], int)
    assert isinstance(first["ref"], str)
    assert second["seq"] == 2
    assert second["ref"] != first["ref"]
    assert await stored(app) == [(1, "hello"), (2, "again")]


@pytest.mark.gen_test
async def test_first_join_history_is_returned_not_yielded(url):
    async with ChatClient(url, "bob") as bob:
        await bob.join("lobby")
        await bob.say("lobby", "earlier")
        async with ChatClient(url, "alice") as alice:
            joined = await alice.join("lobby")
            assert texts(joined["history"]) == ["earlier"]
            assert joined["last_seq"] == 1
            await bob.say("lobby", "later")
            assert texts(await messages(alice, 1)) == ["later"]


@pytest.mark.gen_test
async def test_two_clients_see_each_others_messages_once_in_order(url):
    async with ChatClient(url, "alice") as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        for i in range(5):
            await alice.say("lobby", f"a{i}")
            await bob.say("lobby", f"b{i}")
        expected = [f"{who}{i}" for i in range(5) for who in "ab"]
        for client in (alice, bob):
            got = await messages(client, 10)
            assert texts(got) == expected
            assert [m["seq"] for m in got] == list(range(1, 11))
        # Nothing else was queued: the next message is the next one sent.
        await bob.say("lobby", "end")
        assert texts(await messages(alice, 1)) == ["end"]


@pytest.mark.gen_test
async def test_server_error_raises_chat_error(url):
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        with pytest.raises(ChatError) as info:
            await alice.say("lobby", "x" * 4001)
        assert info.value.code == "too_long"
        async with ChatClient(url, "bob") as bob:
            await bob.join("elsewhere")
        with pytest.raises(ChatError) as info:
            await alice.say("elsewhere", "hi")  # a room that exists, not joined
        assert info.value.code == "not_member"
        with pytest.raises(ChatError) as info:
            await alice.say("~" + "a" * 20, "hi")  # a private room's id nobody made (or one alice may not see)
        assert info.value.code == "not_found"
        # The client is still usable after an error.
        assert (await alice.say("lobby", "fine"))["seq"] == 1


@pytest.mark.gen_test
async def test_leave_stops_the_rooms_messages(url):
    async with ChatClient(url, "alice") as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await alice.join("other")
        await bob.join("lobby")
        await bob.join("other")
        left = await alice.leave("lobby")
        assert left["type"] == "left"
        assert left["room"] == "lobby"
        await bob.say("lobby", "unseen")
        await bob.say("other", "seen")
        got = await next_event(alice, "message")
        assert (got["room"], got["text"]) == ("other", "seen")


@pytest.mark.gen_test
async def test_history_rooms_and_ping(url):
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        for i in range(5):
            await alice.say("lobby", f"m{i}")
        assert texts(await alice.history("lobby", before=4, limit=2)) == ["m1", "m2"]
        assert texts(await alice.history("lobby")) == [f"m{i}" for i in range(5)]
        # Issue 12: each room also says what it is (a public room's title is its name).
        assert await alice.rooms() == [
            {"room": "lobby", "title": "lobby", "visibility": "public", "kind": "room", "members": 1, "last_seq": 5}
        ]
        assert await alice.ping() >= 0


@pytest.mark.gen_test
async def test_presence_and_typing_are_yielded(url):
    async with ChatClient(url, "alice") as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        presence = await next_event(alice, "presence")
        assert (presence["event"], presence["name"]) == ("join", "bob")
        await bob.typing("lobby")
        typing = await next_event(alice, "typing")
        assert (typing["room"], typing["name"]) == ("lobby", "bob")


@pytest.mark.gen_test
async def test_welcome_gives_name_and_session(url):
    async with ChatClient(url, "  alice ") as alice:
        welcome = await next_event(alice, "welcome")
        assert alice.name == welcome["name"] == "alice"
        assert alice.session == welcome["session"]
        assert alice.connected


@pytest.mark.gen_test
async def test_close_ends_iteration_and_later_calls_raise(url):
    alice = ChatClient(url, "alice")
    await alice.connect()
    await alice.join("lobby")
    reader = asyncio.ensure_future(drain(alice))
    await alice.close()
    events = await asyncio.wait_for(reader, TIMEOUT_S)
    assert [e["type"] for e in events] == ["welcome"]
    assert not alice.connected
    with pytest.raises(ChatClosed):
        await alice.say("lobby", "too late")


@pytest.mark.gen_test(timeout=60)
async def test_a_client_over_the_servers_rate_has_every_say_stored_in_call_order(tmp_path):
    settings = Settings(db=str(tmp_path / "slow.sqlite3"), cookie_secret="s", ping_interval=0, rate=2)
    async with serve(settings) as (app, port):
        # No pacing on the client: the server (2/s, burst 4) reads most of these later.
        async with ChatClient(f"ws://127.0.0.1:{port}/ws", "alice", rate=0) as alice:
            await alice.join("lobby")
            sent = await asyncio.gather(*(alice.say("lobby", f"m{i}") for i in range(8)))
        assert [(m["seq"], m["text"]) for m in sent] == [(i + 1, f"m{i}") for i in range(8)]
        assert await stored(app) == [(i + 1, f"m{i}") for i in range(8)]


# -- the order of one client's says ------------------------------------------------------

SAYS = 50


def refuse_first_tries(app: ChatApplication, texts_refused: set[str]) -> list[str]:
    """Make the store refuse the first attempt at storing each of ``texts_refused``
    (as a failed batch would: the sender gets ``unavailable``). Returns the refusals, as they happen."""
    store = app.chat.store
    append = store.append
    refused: list[str] = []

    # Whatever else the store takes (guest, kind, target...) passes through.
    def failing_append(room: str, name: str, text: str, ts: int, session: str, ref: str | None, **extra: Any) -> Any:
        if text in texts_refused and text not in refused:
            refused.append(text)
            future = asyncio.get_running_loop().create_future()
            future.set_exception(StoreUnavailable("refused by the test"))
            return future
        return append(room, name, text, ts, session, ref, **extra)

    store.append = failing_append  # type: ignore[method-assign]
    return refused


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_says_are_stored_in_call_order_when_some_are_refused_unavailable(app, url, monkeypatch):
    monkeypatch.setattr("chat.client.pending.ERROR_RETRY_BASE_S", 0.01)  # quick retries keep the test short
    every_fifth = {f"m{i}" for i in range(0, SAYS, 5)}
    refused = refuse_first_tries(app, every_fifth)
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        sent = await asyncio.wait_for(asyncio.gather(*(alice.say("lobby", f"m{i}") for i in range(SAYS))), 30)
    assert sorted(refused) == sorted(every_fifth)  # each was refused once, then resent
    assert [(m["seq"], m["text"]) for m in sent] == [(i + 1, f"m{i}") for i in range(SAYS)]
    assert await stored(app) == [(i + 1, f"m{i}") for i in range(SAYS)]  # in call order, each once


@pytest.mark.gen_test(timeout=60)
async def test_rate_limited_from_an_older_server_is_retried_in_call_order(app, url, monkeypatch):
    # Servers before this one dropped frames over the rate with rate_limited.
    monkeypatch.setattr("chat.client.pending.ERROR_RETRY_BASE_S", 0.01)
    handle = app.chat.handle_text
    answered: set[str] = set()

    def old_server(peer: Any, text: str) -> Any:
        frame = json.loads(text)
        if frame["type"] == "say" and frame["text"].endswith("3") and frame["ref"] not in answered:
            answered.add(frame["ref"])
            peer.send({"type": "error", "code": "rate_limited", "message": "dropped", "ref": frame["ref"]})
            return None
        return handle(peer, text)

    monkeypatch.setattr(app.chat, "handle_text", old_server)
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        sent = await asyncio.wait_for(asyncio.gather(*(alice.say("lobby", f"m{i}") for i in range(30))), 30)
    assert len(answered) == 3  # m3, m13, m23
    assert [(m["seq"], m["text"]) for m in sent] == [(i + 1, f"m{i}") for i in range(30)]
    assert await stored(app) == [(i + 1, f"m{i}") for i in range(30)]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("abrupt", [False, True])
async def test_concurrent_says_are_stored_in_call_order_across_a_drop_mid_burst(app, url, monkeypatch, abrupt):
    publish = app.chat.publish
    dropped: list[str] = []

    def drop_before_the_ack(message: Any, sender: Any = None) -> None:
        # m20 is stored, and the connection dies before its acknowledgement is written.
        if message.text == "m20" and not dropped:
            dropped.append(message.text)
            drop(app, "alice", abrupt=abrupt)
        publish(message, sender)

    monkeypatch.setattr(app.chat, "publish", drop_before_the_ack)
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        sent = await asyncio.wait_for(asyncio.gather(*(alice.say("lobby", f"m{i}") for i in range(SAYS))), 30)
        assert alice.dials == 2  # it reconnected once, mid-burst
    assert dropped == ["m20"]
    assert [(m["seq"], m["text"]) for m in sent] == [(i + 1, f"m{i}") for i in range(SAYS)]
    assert await stored(app) == [(i + 1, f"m{i}") for i in range(SAYS)]


@pytest.mark.gen_test(timeout=60)
async def test_says_to_one_room_go_out_one_at_a_time_and_other_rooms_do_not_wait(app, url, monkeypatch):
    seen: list[tuple[str, str]] = []  # (room, text) in the order the server reads them
    handle = app.chat.handle_text
    held = asyncio.Event()

    def watch(peer: Any, text: str) -> Any:
        frame = json.loads(text)
        if frame["type"] == "say":
            seen.append((frame["room"], frame["text"]))
        return handle(peer, text)

    monkeypatch.setattr(app.chat, "handle_text", watch)
    publish = app.chat.publish
    later: list[tuple[Any, Any]] = []

    def hold_lobby(message: Any, sender: Any = None) -> None:
        # lobby's first message is stored, but its acknowledgement waits for the test.
        if message.text == "l0" and not held.is_set():
            later.append((message, sender))
            held.set()
            return
        publish(message, sender)

    monkeypatch.setattr(app.chat, "publish", hold_lobby)
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        await alice.join("side")
        lobby = asyncio.ensure_future(asyncio.gather(*(alice.say("lobby", f"l{i}") for i in range(3))))
        await asyncio.wait_for(held.wait(), TIMEOUT_S)
        # While l0 waits for its acknowledgement, l1 is not sent; side's says are.
        side = await asyncio.wait_for(asyncio.gather(*(alice.say("side", f"s{i}") for i in range(3))), TIMEOUT_S)
        assert [m["text"] for m in side] == ["s0", "s1", "s2"]
        assert seen == [("lobby", "l0"), ("side", "s0"), ("side", "s1"), ("side", "s2")]
        publish(*later[0])  # l0 acknowledged: l1, then l2, go
        assert [m["text"] for m in await asyncio.wait_for(lobby, TIMEOUT_S)] == ["l0", "l1", "l2"]
    assert seen[4:] == [("lobby", "l1"), ("lobby", "l2")]


@pytest.mark.gen_test
async def test_a_full_event_queue_keeps_the_newest_events(url):
    # A client that never iterates must not grow without bound.
    async with ChatClient(url, "alice", max_queue=2) as alice:
        await alice.join("lobby")
        for text in ("one", "two", "three"):
            await alice.say("lobby", text)
        assert texts(await messages(alice, 2)) == ["two", "three"]


# -- ordered delivery -----------------------------------------------------------------------


async def store_unbroadcast(app: ChatApplication, room: str, text: str) -> None:
    """Store a message the way a lost broadcast would leave it: in history, never sent."""
    store = app.chat.store
    assert isinstance(store, SQLiteHistory)
    deliver = store._on_commit
    store.listen(None)
    try:
        await store.append(room, "ghost", text, int(time.time() * 1000), "s", None)
    finally:
        store.listen(deliver)


@pytest.mark.gen_test
async def test_a_seq_jump_is_filled_from_history(app, url):
    async with ChatClient(url, "alice") as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        # Stored but never broadcast: alice's next live message jumps from 0 to 2.
        await store_unbroadcast(app, "lobby", "unseen")
        await bob.say("lobby", "after")
        got = await messages(alice, 2)
        assert [(m["seq"], m["text"]) for m in got] == [(1, "unseen"), (2, "after")]


@pytest.mark.gen_test
async def test_a_gap_frame_is_filled_from_history(app, url):
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        await store_unbroadcast(app, "lobby", "unseen")
        (peer,) = app.chat.peers
        peer.send({"type": "gap", "room": "lobby", "from_seq": 1, "to_seq": 1})
        got = await next_event(alice, "message")
        assert (got["seq"], got["text"]) == (1, "unseen")


@pytest.mark.gen_test
async def test_a_repeated_message_frame_is_yielded_once(app, url):
    async with ChatClient(url, "alice") as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        first = await bob.say("lobby", "once")
        (peer,) = [p for p in app.chat.peers if p.name == "alice"]
        peer.send({k: v for k, v in first.items() if k != "ref"})
        await bob.say("lobby", "twice?")
        assert texts(await messages(alice, 2)) == ["once", "twice?"]


@pytest.mark.gen_test
async def test_join_since_yields_every_message_after_it(app, url):
    async with ChatClient(url, "bob") as bob:
        await bob.join("lobby")
        for i in range(3):
            await bob.say("lobby", f"m{i}")
        async with ChatClient(url, "alice") as alice:
            await alice.join("lobby", since=1)
            assert texts(await messages(alice, 2)) == ["m1", "m2"]


# -- reconnect and resume -------------------------------------------------------------------


@pytest.mark.gen_test
async def test_reconnect_yields_messages_missed_while_away_once_in_order(app, url):
    async with GatedClient(url, "alice", **FAST) as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        await bob.say("lobby", "before")
        assert texts(await messages(alice, 1)) == ["before"]
        session = alice.session

        await drop_and_hold(app, alice)
        assert not alice.connected
        for text in ("missed 1", "missed 2", "missed 3"):
            await bob.say("lobby", text)
        alice.gate.set()

        welcome = await next_event(alice, "welcome")
        rejoined = await next_event(alice, "joined")
        assert "history" not in rejoined
        got = await messages(alice, 3)
        assert [(m["seq"], m["text"]) for m in got] == [(2, "missed 1"), (3, "missed 2"), (4, "missed 3")]
        await bob.say("lobby", "live")
        assert texts(await messages(alice, 1)) == ["live"]
        # The same session, so the same identity and name came back.
        assert welcome["session"] == session == alice.session
        assert alice.name == "alice"
        assert alice.connected


@pytest.mark.gen_test
async def test_rejoin_resumes_from_the_last_seq_seen(app, url, monkeypatch):
    sent: list[dict[str, Any]] = []
    handle_text = app.chat.handle_text

    async def recording(peer, text):
        if peer.name == "alice":
            sent.append(json.loads(text))
        await handle_text(peer, text)

    monkeypatch.setattr(app.chat, "handle_text", recording)
    async with GatedClient(url, "alice", **FAST) as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        await bob.say("lobby", "one")
        await bob.say("lobby", "two")
        assert texts(await messages(alice, 2)) == ["one", "two"]
        await drop_and_hold(app, alice)
        await bob.say("lobby", "three")
        alice.gate.set()
        assert texts(await messages(alice, 1)) == ["three"]
    joins = [(f["room"], f.get("since")) for f in sent if f["type"] == "join"]
    assert joins == [("lobby", None), ("lobby", 2)]
    # The resume itself carried what was missed: no extra fetch.
    assert [f for f in sent if f["type"] == "history"] == []


@pytest.mark.gen_test
@pytest.mark.parametrize("abrupt", [False, True], ids=["going-away-1001", "abrupt-drop"])
async def test_dropped_connection_is_reestablished(app, url, abrupt):
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        await drop_and_hold(app, alice, abrupt=abrupt)
        alice.gate.set()
        await next_event(alice, "joined")
        assert (await alice.say("lobby", "back"))["seq"] == 1
        assert alice.dials == 2


@pytest.mark.gen_test
async def test_unacknowledged_say_is_resent_and_stored_once(app, url, monkeypatch):
    publish = app.chat.publish
    lost: list[Any] = []

    def publish_losing_the_first_ack(message, sender=None):
        # The message is stored, then the sender's socket dies before its
        # acknowledgement is written: the client must resend, the server must
        # answer with the original.
        if sender is not None and not lost:
            lost.append(message)
            sender.conn.close(1001, "ack lost")
        publish(message, sender)

    monkeypatch.setattr(app.chat, "publish", publish_losing_the_first_ack)
    async with ChatClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        message = await asyncio.wait_for(alice.say("lobby", "hello"), TIMEOUT_S)
        assert lost
        assert (message["seq"], message["text"], message["ref"]) == (1, "hello", lost[0].ref)
        assert await stored(app) == [(1, "hello")]
        await alice.say("lobby", "next")
        assert [(m["seq"], m["text"]) for m in await messages(alice, 2)] == [(1, "hello"), (2, "next")]


@pytest.mark.gen_test
async def test_say_while_disconnected_is_sent_after_reconnect(app, url):
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        await drop_and_hold(app, alice)
        pending = asyncio.ensure_future(alice.say("lobby", "queued"))
        await asyncio.sleep(0)  # let the say register while the socket is down
        assert not pending.done()
        alice.gate.set()
        message = await asyncio.wait_for(pending, TIMEOUT_S)
        assert message["seq"] == 1
        assert await stored(app) == [(1, "queued")]


@pytest.mark.gen_test
async def test_truncated_resume_yields_every_missed_message_once_in_order(app, url):
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        await drop_and_hold(app, alice)
        # More than the server's 1000-message resume limit.
        ts = int(time.time() * 1000)
        for i in range(1, 1101):
            await app.chat.store.append("lobby", "bob", f"m{i}", ts, "s", None)  # broadcast to nobody
        alice.gate.set()
        got = await messages(alice, 1100)
        assert [m["seq"] for m in got] == list(range(1, 1101))
        assert texts(got) == [f"m{i}" for i in range(1, 1101)]
        assert (await alice.say("lobby", "caught up"))["seq"] == 1101
        assert texts(await messages(alice, 1)) == ["caught up"]


@pytest.mark.gen_test
async def test_reconnects_to_a_restarted_server_and_seq_continues(app, http_server, http_port, settings, connect, url):
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        await alice.say("lobby", "before")
        assert texts(await messages(alice, 1)) == ["before"]  # our own messages are yielded too
        session = alice.session
        alice.hold()
        http_server.stop()
        await app.chat.shutdown()  # closes every socket with 1001
        await asyncio.wait_for(alice.held.wait(), TIMEOUT_S)
        async with serve(settings, http_port):
            bob = await connect("bob")
            await bob.send(type="join", room="lobby")
            await bob.recv_until("joined")
            await bob.send(type="say", room="lobby", text="after restart", ref="b1")
            assert (await bob.recv_until("message"))["seq"] == 2
            alice.gate.set()
            got = await next_event(alice, "message")
            assert (got["seq"], got["text"]) == (2, "after restart")
            assert alice.session == session
            assert (await alice.say("lobby", "me too"))["seq"] == 3
            bob.close()


@pytest.mark.gen_test
async def test_a_rejoin_the_server_refuses_is_reported_and_the_room_dropped(app, http_server, http_port, settings, url):
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        await alice.join("other")
        alice.hold()
        http_server.stop()
        await app.chat.shutdown()
        await asyncio.wait_for(alice.held.wait(), TIMEOUT_S)
        # The restarted server allows one room per connection: the second rejoin is refused.
        async with serve(dataclasses.replace(settings, max_rooms_per_connection=1), http_port):
            alice.gate.set()
            rejoined = await next_event(alice, "joined")
            refused = await next_event(alice, "error")
            assert (rejoined["room"], refused["room"], refused["code"]) == ("lobby", "other", "too_many_rooms")
            # The client no longer counts itself in that room, and the other one works.
            assert (await alice.say("lobby", "still here"))["seq"] == 1
            with pytest.raises(ChatError) as info:
                await alice.say("other", "gone")
            assert info.value.code == "not_member"


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_name_taken_on_connect_raises_chat_refused(url):
    async with ChatClient(url, "alice"):
        with pytest.raises(ChatRefused) as info:
            await ChatClient(url, "ALICE").connect()
    assert info.value.code == "name_taken"
    assert info.value.close_code == 1008


@pytest.mark.gen_test
async def test_bad_name_raises_chat_refused(url):
    with pytest.raises(ChatRefused) as info:
        await ChatClient(url, "   ").connect()
    assert info.value.code == "bad_name"


@pytest.mark.gen_test
async def test_unreachable_server_raises_on_connect():
    sock, port = tornado.testing.bind_unused_port()
    sock.close()  # nothing listens there now
    with pytest.raises(ConnectionRefusedError):
        await ChatClient(f"ws://127.0.0.1:{port}/ws", "alice").connect()


@pytest.mark.gen_test
async def test_name_taken_on_reconnect_ends_the_client_instead_of_retrying(app, url, connect, clock):
    async with GatedClient(url, "alice", **FAST) as alice:
        await alice.join("lobby")
        await drop_and_hold(app, alice)
        await app.chat.wait_idle()  # the server saw the close and released the name
        clock.advance(61)  # past the name's reservation for alice's session
        thief = await connect("alice")  # another session takes the name meanwhile
        pending = asyncio.ensure_future(alice.say("lobby", "hello?"))
        alice.gate.set()
        with pytest.raises(ChatRefused) as info:
            await asyncio.wait_for(drain(alice), TIMEOUT_S)
        assert info.value.code == "name_taken"
        with pytest.raises(ChatRefused):
            await asyncio.wait_for(pending, TIMEOUT_S)
        with pytest.raises(ChatRefused):
            await alice.ping()
        assert alice.dials == 2  # the first connection and one refused reconnect
        assert not alice.connected
        thief.close()


@pytest.mark.gen_test
async def test_disconnected_is_an_oserror():
    # Callers catch connection trouble as OSError, as with any socket.
    assert issubclass(Disconnected, OSError)
