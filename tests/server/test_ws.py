"""The WebSocket endpoint over real sockets: every row of the bad-input table and the guarantees."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.websocket
import websockets
from websockets.asyncio.client import connect as ws_connect

from chat.server.app import make_app
from chat.server.options import Settings
from tests.support import RECV_TIMEOUT_S, Socket


async def joined(sock: Socket, room: str = "lobby", **extra: object) -> dict[str, Any]:
    await sock.send(type="join", room=room, **extra)
    return await sock.recv_until("joined")


async def error_for(sock: Socket, **frame: object) -> dict[str, Any]:
    await sock.send(**frame)
    reply = await sock.recv_until("error")
    return reply


@pytest.mark.gen_test
async def test_welcome_then_join_say_round_trip(connect):
    alice = await connect("alice")
    assert alice.welcome["name"] == "alice"
    reply = await joined(alice)
    assert reply == {
        "type": "joined",
        "room": "lobby",
        "members": ["alice"],
        "last_seq": 0,
        "history": [],
        "title": "lobby",
        "visibility": "public",
        "kind": "room",
        "role": None,  # a guest has no standing
    }
    await alice.send(type="say", room="lobby", text="hello", ref="r1")
    message = await alice.recv()
    assert message["type"] == "message"
    assert (message["seq"], message["name"], message["text"], message["ref"]) == (1, "alice", "hello", "r1")
    assert isinstance(message["ts"], int)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "dance", "ref": "r"}', "unknown_type"),
        ('{"type": "say", "room": "lobby", "ref": "r"}', "bad_request"),
        ('{"type": "join", "room": 42, "ref": "r"}', "bad_request"),
        ('{"type": "join", "room": "Not A Room!", "ref": "r"}', "bad_room"),
        ('{"type": "say", "room": "elsewhere", "text": "hi", "ref": "r"}', "not_member"),
        ('{"type": "typing", "room": "elsewhere", "ref": "r"}', "not_member"),
        ('{"type": "history", "room": "elsewhere", "ref": "r"}', "not_member"),
        ('{"type": "say", "room": "lobby", "text": "   ", "ref": "r"}', "empty"),
        ('{"type": "say", "room": "lobby", "text": "' + "x" * 4001 + '", "ref": "r"}', "too_long"),
    ],
)
async def test_bad_frames_get_a_clear_error_and_disturb_nobody(connect, frame, code):
    bad = await connect("mallory")
    good = await connect("alice")
    await joined(bad)
    await joined(good)
    await bad.send_raw(frame)
    reply = await bad.recv_until("error")
    assert reply["code"] == code
    assert reply["message"]
    if '"ref"' in frame:
        assert reply["ref"] == "r"
    # The offender's socket still works, and the others saw nothing of it.
    await bad.send(type="ping", ref="p")
    assert await bad.recv() == {"type": "pong", "ref": "p"}
    await good.send(type="say", room="lobby", text="still fine")
    got = await good.recv_until("message")
    assert got["text"] == "still fine"


@pytest.mark.gen_test
async def test_a_missing_field_error_names_the_field(connect):
    sock = await connect()
    reply = await error_for(sock, type="join")
    assert reply["code"] == "bad_request"
    assert "'room'" in reply["message"]


@pytest.mark.gen_test(timeout=60)
async def test_over_the_rate_every_frame_is_handled_later_in_order(connect):
    # The module's settings keep the default limit: 20 frames a second, bursts of 40.
    sock = await connect()
    watcher = await connect("bob")
    await joined(watcher)
    await joined(sock)  # after bob: no presence frame for sock to skip
    for i in range(120):  # back to back: 80 over the burst, about 4 s of frames at the rate
        await sock.send(type="say", room="lobby", text=f"m{i}", ref=f"r{i}")
    replies = [await sock.recv() for _ in range(120)]
    assert [r["type"] for r in replies] == ["message"] * 120  # no error, no rate_limited
    assert [(r["seq"], r["text"], r["ref"]) for r in replies] == [(i + 1, f"m{i}", f"r{i}") for i in range(120)]
    await watcher.send(type="history", room="lobby", limit=200, ref="h")
    history = await watcher.recv_until("history")
    assert [m["text"] for m in history["messages"]] == [f"m{i}" for i in range(120)]


@pytest.mark.gen_test(timeout=60)
async def test_a_sustained_flood_is_closed_with_1008(connect, app):
    # A window of 1 s instead of the default: behind the rate for 1 s is a flood here.
    app.chat.limits = dataclasses.replace(app.chat.limits, flood_window=1.0)
    sock = await connect()
    for i in range(300):  # 40 at once, then about 20 (1 s at the rate), then closed
        await sock.send(type="ping", ref=str(i))
    pongs = []
    while (raw := await asyncio.wait_for(sock.conn.read_message(), RECV_TIMEOUT_S)) is not None:
        pongs.append(json.loads(raw))
    assert (sock.conn.close_code, sock.conn.close_reason) == (1008, "flood")
    # Every frame read before the close was answered, in order; the rest were never read.
    assert pongs == [{"type": "pong", "ref": str(i)} for i in range(len(pongs))]
    assert 40 < len(pongs) < 300  # more than the burst (the rest waited their turn), fewer than all
    sock.close()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        db=str(tmp_path / "chat.sqlite3"),
        cookie_secret="test-secret",
        ping_interval=0,
        max_rooms_per_connection=3,
    )


@pytest.mark.gen_test
async def test_more_rooms_than_allowed_is_too_many_rooms(connect):
    sock = await connect()
    for room in ("a", "b", "c"):
        await joined(sock, room)
    reply = await error_for(sock, type="join", room="d", ref="x")
    assert (reply["code"], reply["ref"]) == ("too_many_rooms", "x")


@pytest.mark.gen_test
async def test_a_binary_frame_closes_with_1003(connect):
    sock = await connect()
    await sock.send_raw(b"\x00\x01")
    code, _ = await sock.closed()
    assert code == 1003


@pytest.mark.gen_test
async def test_a_frame_over_the_size_limit_closes_with_1009(connect):
    sock = await connect()
    await sock.send_raw(json.dumps({"type": "say", "room": "lobby", "text": "x" * 70_000}))
    code, _ = await sock.closed()
    assert code == 1009


@pytest.mark.gen_test
async def test_a_foreign_origin_gets_403_and_no_socket(http_server, ws_url):
    request = tornado.httpclient.HTTPRequest(ws_url("alice"), headers={"Origin": "http://evil.example"})
    with pytest.raises(tornado.httpclient.HTTPClientError) as exc:
        await tornado.websocket.websocket_connect(request)
    assert exc.value.code == 403


@pytest.mark.gen_test
async def test_an_upgrade_is_not_logged_at_info_and_a_refused_one_is(http_server, ws_url, connect, caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    await connect("alice")
    request = tornado.httpclient.HTTPRequest(ws_url("bob"), headers={"Origin": "http://evil.example"})
    with pytest.raises(tornado.httpclient.HTTPClientError):
        await tornado.websocket.websocket_connect(request)
    logged = [(r.levelno, r.getMessage().split(" ")[0]) for r in caplog.records if r.name == "tornado.access"]
    assert logged == [(logging.WARNING, "403")]


@pytest.mark.gen_test
async def test_the_same_origin_is_allowed(connect, http_port, ws_url):
    request = tornado.httpclient.HTTPRequest(ws_url("alice"), headers={"Origin": f"http://127.0.0.1:{http_port}"})
    sock = await connect(url=request)
    assert sock.welcome["name"] == "alice"


@pytest.mark.gen_test
@pytest.mark.parametrize("query", [{}, {"name": ""}, {"name": "x" * 33}, {"name": "evil\u202egnp"}])
async def test_a_bad_or_missing_name_closes_with_bad_name(connect, http_port, query):
    sock = await connect(url=f"ws://127.0.0.1:{http_port}/ws?{urlencode(query)}", welcome=False)
    assert await sock.closed() == (1008, "bad_name")


@pytest.mark.gen_test
async def test_a_name_held_by_another_session_closes_with_name_taken(connect):
    await connect("alice")
    sock = await connect("Alice", welcome=False)
    assert await sock.closed() == (1008, "name_taken")


@pytest.mark.gen_test
async def test_the_session_token_reclaims_the_name_after_a_disconnect(connect):
    first = await connect("alice")
    token = first.welcome["session"]
    first.close()
    await first.closed()
    second = await connect("alice", session=token)
    assert second.welcome["session"] == token


@pytest.mark.gen_test
async def test_resume_after_a_dropped_connection_loses_and_repeats_nothing(connect, app):
    alice = await connect("alice")
    bob = await connect("bob")
    await joined(alice)
    await joined(bob)
    for i in range(3):
        await alice.send(type="say", room="lobby", text=f"m{i}")
        await bob.recv_until("message")
    last_seen = 3
    bob.close()
    await bob.closed()
    for i in range(3, 7):
        await alice.send(type="say", room="lobby", text=f"m{i}")
    bob = await connect("bob", session=bob.welcome["session"])
    reply = await joined(bob, since=last_seen)
    assert [m["text"] for m in reply["history"]] == ["m3", "m4", "m5", "m6"]
    await alice.send(type="say", room="lobby", text="live")
    live = await bob.recv_until("message")
    assert (live["seq"], live["text"]) == (8, "live")


@pytest.mark.gen_test
async def test_an_idempotent_retry_after_reconnect_is_not_stored_twice(connect, app):
    alice = await connect("alice")
    bob = await connect("bob")
    await joined(alice)
    await joined(bob)
    await alice.send(type="say", room="lobby", text="once", ref="retry-me")
    first = await alice.recv_until("message")
    alice.close()
    alice = await connect("alice", session=alice.welcome["session"])
    await joined(alice, since=first["seq"])
    await alice.send(type="say", room="lobby", text="once", ref="retry-me")
    again = await alice.recv_until("message")
    assert again == first
    await alice.send(type="say", room="lobby", text="next")
    assert (await bob.recv_until("message"))["text"] == "once"
    assert (await bob.recv_until("message"))["text"] == "next"  # no second "once" in between
    assert await app.chat.store.last_seq("lobby") == 2


@pytest.mark.gen_test
async def test_history_pages_backwards_and_forwards(connect):
    sock = await connect()
    await joined(sock)
    for i in range(10):
        await sock.send(type="say", room="lobby", text=f"m{i + 1}")
        await sock.recv_until("message")
    await sock.send(type="history", room="lobby", before=5, limit=2, ref="h1")
    assert [m["seq"] for m in (await sock.recv())["messages"]] == [3, 4]
    await sock.send(type="history", room="lobby", after=8, ref="h2")
    assert [m["seq"] for m in (await sock.recv())["messages"]] == [9, 10]
    await sock.send(type="history", room="lobby", ref="h3")
    reply = await sock.recv()
    assert reply["ref"] == "h3"
    assert [m["seq"] for m in reply["messages"]] == list(range(1, 11))


@pytest.mark.gen_test
async def test_rooms_and_leave(connect):
    alice = await connect("alice")
    bob = await connect("bob")
    await joined(alice, "lobby")
    await joined(bob, "lobby")
    await alice.send(type="rooms", ref="q")
    assert await alice.recv_until("rooms") == {
        "type": "rooms",
        "rooms": [
            {"room": "lobby", "title": "lobby", "visibility": "public", "kind": "room", "members": 2, "last_seq": 0}
        ],
        "ref": "q",
    }
    await bob.send(type="leave", room="lobby", ref="l")
    assert await bob.recv() == {"type": "left", "room": "lobby", "ref": "l"}
    assert await alice.recv_until("presence") == {"type": "presence", "room": "lobby", "event": "leave", "name": "bob"}
    await bob.send(type="say", room="lobby", text="hi", ref="s")
    assert (await bob.recv())["code"] == "not_member"


@pytest.mark.gen_test
async def test_the_websockets_library_client_chats_too(http_port, http_server, connect):
    alice = await connect("alice")
    await joined(alice)
    async with ws_connect(f"ws://127.0.0.1:{http_port}/ws?name=carol") as carol:
        assert json.loads(await carol.recv())["type"] == "welcome"
        await carol.send(json.dumps({"type": "join", "room": "lobby"}))
        assert json.loads(await carol.recv())["members"] == ["alice", "carol"]
        await carol.send(json.dumps({"type": "say", "room": "lobby", "text": "from websockets"}))
        assert json.loads(await carol.recv())["text"] == "from websockets"
        assert (await alice.recv_until("message"))["text"] == "from websockets"
        await carol.send(b"\x00")
        with pytest.raises(websockets.ConnectionClosed) as exc:
            await carol.recv()
        assert exc.value.rcvd is not None
        assert exc.value.rcvd.code == 1003


@pytest.mark.gen_test
async def test_seq_continues_after_a_restart_on_the_same_db(connect, settings, io_loop):
    alice = await connect("alice")
    await joined(alice)
    for i in range(3):
        await alice.send(type="say", room="lobby", text=f"m{i}")
        await alice.recv_until("message")
    # A second server process on the same database file.
    restarted = make_app(settings)
    await restarted.chat.start()
    server = tornado.httpserver.HTTPServer(restarted)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    try:
        carol = await connect(url=f"ws://127.0.0.1:{port}/ws?name=carol")
        reply = await joined(carol)
        assert reply["last_seq"] == 3
        await carol.send(type="say", room="lobby", text="after restart")
        assert (await carol.recv_until("message"))["seq"] == 4
    finally:
        server.stop()
        await server.close_all_connections()
        await restarted.chat.stop()


@pytest.mark.gen_test
@pytest.mark.parametrize("raw", ["a%00b", "%00bob", "b%1Fob", "a%08b", "a%1Bb", "a%0Bb"])
async def test_a_name_with_a_control_character_closes_with_bad_name(connect, http_port, raw):
    # Tornado's get_query_argument made these "a b", "bob" (trimmed)...: admitted.
    sock = await connect(url=f"ws://127.0.0.1:{http_port}/ws?name={raw}", welcome=False)
    assert await sock.closed() == (1008, "bad_name")


@pytest.mark.gen_test
async def test_a_name_that_is_not_utf8_is_bad_even_with_a_login_cookie(http_client, base_url, http_port, connect):
    # A name in the query comes first; one Tornado cannot decode was taken as absent.
    from tests.server.test_http import cookies_of, login

    value = cookies_of(await login(http_client, base_url, "alice"))["chat_user"].value
    request = tornado.httpclient.HTTPRequest(
        f"ws://127.0.0.1:{http_port}/ws?name=%FF",
        headers={"Cookie": f"chat_user={value}", "Origin": f"http://127.0.0.1:{http_port}"},
    )
    sock = await connect(url=request, welcome=False)
    assert await sock.closed() == (1008, "bad_name")


@pytest.mark.gen_test
async def test_a_name_and_token_pass_as_sent(connect, http_port):
    # Read raw, the query still decodes percent escapes and '+' as before.
    alice = await connect(url=f"ws://127.0.0.1:{http_port}/ws?name=Ren%C3%A9+M")
    assert alice.welcome["name"] == "René M"
    token = alice.welcome["session"]
    alice.close()
    again = await connect(url=f"ws://127.0.0.1:{http_port}/ws?{urlencode({'name': 'René M', 'session': token})}")
    assert again.welcome["session"] == token
