"""Connection caps and handshake limits: the server as server.py builds it."""

from __future__ import annotations

import asyncio

import pytest
import tornado.httpclient

from chat.core.admission import Admission
from tests.support import Socket


def test_admission_caps_per_address_and_in_total():
    admission = Admission(max_total=3, max_per_ip=2)
    assert admission.admit("a") is None
    assert admission.admit("a") is None
    assert admission.admit("a") == "too many connections from your address"
    assert admission.admit("b") is None
    assert admission.admit("c") == "the server is full"
    admission.release("a")
    assert admission.admit("c") is None
    assert admission.total == 3


def test_zero_disables_a_cap():
    admission = Admission(max_total=0, max_per_ip=0)
    assert all(admission.admit("a") is None for _ in range(10_000))


async def opened(url: str | tornado.httpclient.HTTPRequest, sockets: list[Socket]) -> Socket:
    sock = await Socket.connect(url)
    sockets.append(sock)
    assert (await sock.recv())["type"] == "welcome"
    return sock


@pytest.mark.gen_test
async def test_connections_past_the_per_address_cap_get_429(served):
    _, port = served(max_connections_per_ip=3)
    sockets: list[Socket] = []
    try:
        for i in range(3):
            await opened(f"ws://127.0.0.1:{port}/ws?name=u{i}", sockets)
        with pytest.raises(tornado.httpclient.HTTPClientError) as exc:
            await Socket.connect(f"ws://127.0.0.1:{port}/ws?name=u3")
        assert exc.value.code == 429
        # Another client address is counted apart.
        other = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/ws?name=other", network_interface="127.0.0.2")
        await opened(other, sockets)
        # A closed socket frees its place (the server releases it as it
        # answers the close, before our read of that answer returns).
        sockets[0].close()
        await sockets[0].closed()
        await opened(f"ws://127.0.0.1:{port}/ws?name=u4", sockets)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.gen_test
async def test_connections_past_the_total_cap_get_503(served):
    _, port = served(max_connections=2, max_connections_per_ip=0)
    sockets: list[Socket] = []
    try:
        await opened(f"ws://127.0.0.1:{port}/ws?name=a", sockets)
        await opened(f"ws://127.0.0.1:{port}/ws?name=b", sockets)
        with pytest.raises(tornado.httpclient.HTTPClientError) as exc:
            await Socket.connect(f"ws://127.0.0.1:{port}/ws?name=c")
        assert exc.value.code == 503
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.gen_test
async def test_a_refused_handshake_frees_its_place(served):
    _, port = served(max_connections_per_ip=1, allow_origin=("https://ok.example",))
    for _ in range(3):
        request = tornado.httpclient.HTTPRequest(
            f"ws://127.0.0.1:{port}/ws?name=x", headers={"Origin": "https://evil.example"}
        )
        with pytest.raises(tornado.httpclient.HTTPClientError) as exc:
            await Socket.connect(request)
        assert exc.value.code == 403  # not 429: the refused handshakes were not counted
    sockets: list[Socket] = []
    await opened(f"ws://127.0.0.1:{port}/ws?name=x", sockets)
    sockets[0].close()


@pytest.mark.gen_test
async def test_a_slow_handshake_is_cut_off(served, io_loop):
    _, port = served(handshake_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ws?name=slow HTTP/1.1\r\nHost: x\r\n")  # ...and never the rest
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    writer.close()
    await writer.wait_closed()


@pytest.mark.gen_test
async def test_oversized_headers_are_refused(served):
    _, port = served()
    request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/ws?name=big", headers={"X-Padding": "p" * 20_000})
    with pytest.raises((tornado.httpclient.HTTPClientError, tornado.iostream.StreamClosedError)):
        await Socket.connect(request)
