"""The fan-out path over real sockets: pre-built frames through Tornado's
internals, the slow-consumer policy, and /metrics."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
import tornado
from websockets.asyncio.client import connect as ws_connect

from chat.core.frames import CONTROL, OutFrame, text_frame
from chat.core.outbox import STALL_S, Outbox
from chat.server.options import Settings
from chat.server.ws import ChatSocket


def test_tornado_is_the_version_the_frame_path_was_checked_against():
    # chat/server/ws.py writes pre-built frames to ws_connection.stream, a Tornado
    # internal. Upgrading Tornado means running these tests and bumping this.
    assert tornado.version == "6.6.1"


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_headers_follow_rfc_6455(size):
    payload = b"x" * size
    frame = text_frame(payload)
    assert frame[0] == 0x81  # FIN, text
    if size < 126:
        assert frame[1] == size
        header = 2
    elif size <= 0xFFFF:
        assert frame[1] == 126
        assert int.from_bytes(frame[2:4], "big") == size
        header = 4
    else:
        assert frame[1] == 127
        assert int.from_bytes(frame[2:10], "big") == size
        header = 10
    assert frame[header:] == payload


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        db=str(tmp_path / "chat.sqlite3"),
        cookie_secret="test-secret",
        ping_interval=0,
        rate=0,
        max_message_chars=200_000,
        max_frame_bytes=1 << 20,
        max_backlog_bytes=64 * 1024,
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("size", [10, 200, 70_000, 150_000])
async def test_prebuilt_frames_reach_tornado_and_websockets_clients_intact(app, connect, http_port, size):
    # Tornado's own ping frames go to the same stream: they must interleave
    # with ours at frame boundaries only.
    app.settings["websocket_ping_interval"] = 0.2
    alice = await connect("alice")
    await alice.send(type="join", room="lobby")
    await alice.recv_until("joined")
    async with ws_connect(f"ws://127.0.0.1:{http_port}/ws?name=bob", max_size=None) as bob:
        json.loads(await bob.recv())
        await bob.send(json.dumps({"type": "join", "room": "lobby"}))
        json.loads(await bob.recv())
        texts = [f"{i}:" + "é" * size for i in range(5)]
        for text in texts:
            await alice.send(type="say", room="lobby", text=text)
        got_alice = [(await alice.recv_until("message"))["text"] for _ in texts]
        got_bob: list[str] = []
        while len(got_bob) < len(texts):
            frame = json.loads(await bob.recv())
            if frame["type"] == "message":
                got_bob.append(frame["text"])
        assert got_alice == got_bob == texts


def stalled_socket(port: int, name: str) -> socket.socket:
    """A member that completes the handshake, then never reads."""
    sock = socket.socket()
    # A small receive window (set before connecting, when the window is
    # negotiated) so the server's writes back up quickly.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /ws?name={name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def read_frames(data: bytes) -> list[dict[str, Any]]:
    """Parse the server's unmasked text frames (after the HTTP response)."""
    data = data[data.index(b"\r\n\r\n") + 4 :]
    frames = []
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if length == 126:
            length, offset = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + length:
            break
        if opcode == 1:
            frames.append(json.loads(data[offset : offset + length]))
        data = data[offset + length :]
    return frames


@pytest.mark.gen_test(timeout=90)
async def test_a_stalled_member_gets_a_gap_and_bounded_memory_and_the_room_is_unaffected(
    connect, http_port, app, io_loop, request
):
    alice = await connect("alice")
    bob = await connect("bob")
    for sock in (alice, bob):
        await sock.send(type="join", room="lobby")
        await sock.recv_until("joined")
    stalled = stalled_socket(http_port, "carol")
    request.addfinalizer(stalled.close)
    await io_loop.run_in_executor(None, stalled.recv, 1)  # the handshake reply has begun
    carol = next(p for p in app.chat.peers if p.name == "carol")
    # Loopback send buffers grow to megabytes; a small one stands for a slow link.
    carol.conn.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    # carol joins by a frame written on the raw socket (client frames are masked).
    payload = json.dumps({"type": "join", "room": "lobby"}).encode()
    mask = b"\x01\x02\x03\x04"
    stalled.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    await alice.recv_until("presence")

    count, text = 400, "m" * 4000  # 1.6 MB: far beyond the socket buffers and the 64 KiB backlog
    peak = 0
    seen: list[int] = []
    for i in range(count):
        await alice.send(type="say", room="lobby", text=f"{i} {text}")
        if i % 20 == 19:
            # Pace the sender with a reader, and watch carol's backlog as it goes.
            while len(seen) <= i:
                seen.append((await bob.recv_until("message"))["seq"])
            peak = max(peak, carol.outbox.queued_bytes)
    assert seen == list(range(1, count + 1))  # bob got everything, in order

    assert peak <= 64 * 1024 + 4200  # bounded: the backlog plus at most one frame
    assert app.chat.metrics.gaps._value.get() >= 1

    # carol reads at last: messages, a gap notice, and then every later message.
    stalled.setblocking(False)
    received = b""
    while True:
        try:
            chunk = await io_loop.run_in_executor(None, _recv_some, stalled)
        except TimeoutError:
            break
        received += chunk
    stalled.close()
    frames = read_frames(b"HTTP/1.1 101\r\n\r\n" + received.split(b"\r\n\r\n", 1)[1])
    gap_frames = [f for f in frames if f["type"] == "gap"]
    assert gap_frames
    delivered = [f["seq"] for f in frames if f["type"] == "message"]
    covered = [s for g in gap_frames for s in range(g["from_seq"], g["to_seq"] + 1)]
    assert sorted(delivered + covered) == list(range(1, count + 1))
    assert delivered == sorted(delivered)

    # The gap's range is in the history, as the client will fetch it.
    first = gap_frames[0]
    missed = await app.chat.store.after("lobby", first["from_seq"] - 1, first["to_seq"] - first["from_seq"] + 1)
    assert [m.seq for m in missed] == list(range(first["from_seq"], first["to_seq"] + 1))


def _recv_some(sock: socket.socket) -> bytes:
    sock.settimeout(2.0)  # quiet for 2 s: everything queued has arrived
    try:
        data = sock.recv(1 << 20)
    except TimeoutError:
        raise
    if not data:
        raise TimeoutError
    return data


@pytest.mark.gen_test(timeout=60)
async def test_a_member_that_stops_reading_for_30_s_is_closed_with_1013(
    connect, http_port, app, clock, io_loop, request
):
    alice = await connect("alice")
    await alice.send(type="join", room="lobby")
    await alice.recv_until("joined")
    stalled = stalled_socket(http_port, "carol")
    request.addfinalizer(stalled.close)
    await io_loop.run_in_executor(None, stalled.recv, 1)
    carol = next(p for p in app.chat.peers if p.name == "carol")
    # Control frames are never dropped, so the write stays in flight.
    big = OutFrame.of(json.dumps({"type": "pong", "pad": "p" * 100_000}))
    while not carol.outbox.stalled(clock() + STALL_S):
        carol.outbox.push(big)
        app.chat.flusher.flush()
        await alice.send(type="ping")
        await alice.recv_until("pong")
    clock.advance(STALL_S)
    app.chat.close_stalled()
    assert carol not in app.chat.peers
    assert app.chat.metrics.slow_closes._value.get() == 1
    stalled.close()


@pytest.mark.gen_test
async def test_metrics_count_messages_deliveries_and_connections(connect, http_client, base_url):
    alice = await connect("alice")
    bob = await connect("bob")
    for sock in (alice, bob):
        await sock.send(type="join", room="lobby")
        await sock.recv_until("joined")
    for i in range(3):
        await alice.send(type="say", room="lobby", text=f"m{i}")
        await bob.recv_until("message")
    response = await http_client.fetch(base_url + "/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in response.body.decode().splitlines()
        if line and not line.startswith("#")
    }
    assert samples["chat_connections"] == 2
    assert samples["chat_rooms"] == 1
    assert samples["chat_messages_total"] == 3
    assert samples["chat_deliveries_total"] == 6
    assert samples["chat_fanout_seconds_count"] == 3
    assert samples["chat_history_write_seconds_count"] == 3
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_open_fds"] > 0


@pytest.mark.gen_test
async def test_with_compress_frames_go_through_permessage_deflate(served):
    # --compress: frames are written with write_message (deflated), not as pre-built bytes.
    _, port = served(compress=True)
    url = f"ws://127.0.0.1:{port}/ws"
    async with (
        ws_connect(f"{url}?name=alice", compression=None) as alice,
        ws_connect(f"{url}?name=bob", compression="deflate") as bob,
    ):
        assert bob.response is not None
        assert "permessage-deflate" in bob.response.headers.get("Sec-WebSocket-Extensions", "")
        for sock in (alice, bob):
            assert json.loads(await sock.recv())["type"] == "welcome"
            await sock.send(json.dumps({"type": "join", "room": "lobby"}))
            while json.loads(await sock.recv())["type"] != "joined":
                pass
        text = "squeeze " * 200
        await alice.send(json.dumps({"type": "say", "room": "lobby", "text": text}))
        for sock in (alice, bob):  # a plain client and a deflating one both get it intact
            while (frame := json.loads(await sock.recv()))["type"] != "message":
                pass
            assert frame["text"] == text.strip()


@pytest.mark.gen_test
async def test_a_room_message_goes_straight_to_an_idle_members_socket(app, connect, monkeypatch):
    alice = await connect("alice")
    bob = await connect("bob")
    for sock in (alice, bob):
        await sock.send(type="join", room="lobby")
        await sock.recv_until("joined")
    pushed: list[tuple[str, int]] = []
    push = Outbox.push

    def spy(outbox: Outbox, frame: OutFrame) -> None:
        pushed.append((json.loads(frame.text)["type"], frame.kind))
        push(outbox, frame)

    monkeypatch.setattr(Outbox, "push", spy)
    await alice.send(type="say", room="lobby", text="hi", ref="r1")
    assert (await bob.recv_until("message"))["text"] == "hi"
    assert (await alice.recv_until("message"))["ref"] == "r1"
    # Bob's copy never went through an outbox; alice's own (with its ref) did.
    assert pushed == [("message", CONTROL)]


@pytest.mark.gen_test
async def test_tornados_own_frames_hold_the_direct_path_or_end_it(app, connect, io_loop):
    await connect("alice")
    peer = next(p for p in app.chat.peers if p.name == "alice")
    assert isinstance(peer.conn, ChatSocket)
    assert peer.outbox.send is not None
    # A ping Tornado could not write at once: nothing may overtake it.
    pending: asyncio.Future[None] = io_loop.asyncio_loop.create_future()
    peer.conn.tornado_wrote(0x9, pending)
    assert peer.outbox.send is None
    pending.set_result(None)
    await asyncio.sleep(0)
    assert peer.outbox.send is not None
    # Nothing may follow a close frame: Tornado writes it, the path ends at once.
    peer.conn.close(1000, "bye")
    assert not peer.outbox.closed  # on_close has not run yet
    assert peer.outbox.send is None
