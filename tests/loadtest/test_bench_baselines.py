"""The three benchmark baselines in bench/ speak enough of the protocol for the load tester.

Each test starts the baseline as a real process on a free port (``--port 0``;
the port is read from its "listening" line) and talks to it with the
``websockets`` client.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ["bench/naive_tornado.py", "bench/websockets_broadcast.py", "bench/floor.py"]
# Generous: a loaded CI machine may take a few seconds to import tornado or websockets.
START_TIMEOUT_S = 15.0
REPLY_TIMEOUT_S = 5.0


class Baseline:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port

    async def client(self, name: str) -> ClientConnection:
        """Connect as ``name`` and check the welcome frame."""
        ws = await connect(f"ws://127.0.0.1:{self.port}/ws?name={name}", compression=None, open_timeout=REPLY_TIMEOUT_S)
        welcome = await recv(ws)
        assert welcome == {"type": "welcome", "name": name, "session": "x"}
        return ws


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
    assert isinstance(frame, dict)
    return frame


@asynccontextmanager
async def running(script: str) -> AsyncIterator[Baseline]:
    """Start ``script`` on a free port; stop it (SIGKILL if still running) afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, script, "--port", "0", cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        port = await asyncio.wait_for(listening_port(proc.stderr), START_TIMEOUT_S)
        yield Baseline(proc, port)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


async def listening_port(stderr: asyncio.StreamReader) -> int:
    while line := await stderr.readline():
        match = re.search(rb"listening on ws://127\.0\.0\.1:(\d+)/ws", line)
        if match:
            return int(match.group(1))
    raise AssertionError("the baseline exited before listening")


@pytest.mark.parametrize("script", BASELINES)
@pytest.mark.gen_test(timeout=30)
async def test_baseline_joins_and_broadcasts_a_say_to_every_member_in_seq_order(script: str) -> None:
    async with running(script) as server:
        alice = await server.client("alice")
        bob = await server.client("bob")
        try:
            await alice.send(json.dumps({"type": "join", "room": "lobby", "ref": "j1"}))
            assert await recv(alice) == {
                "type": "joined",
                "room": "lobby",
                "members": ["alice"],
                "last_seq": 0,
                "history": [],
                "ref": "j1",
            }
            await bob.send(json.dumps({"type": "join", "room": "lobby"}))
            joined = await recv(bob)
            assert joined["type"] == "joined"
            assert joined["members"] == ["alice", "bob"]

            # Two sockets' frames race each other: bob speaks once alice has her own message back.
            await alice.send(json.dumps({"type": "say", "room": "lobby", "text": "one"}))
            first = await recv(alice)
            await bob.send(json.dumps({"type": "say", "room": "lobby", "text": "two"}))
            second = await recv(alice)
            received = {"alice": [first, second], "bob": [await recv(bob), await recv(bob)]}
            for frames in received.values():
                assert [(m["type"], m["room"], m["seq"], m["name"], m["text"]) for m in frames] == [
                    ("message", "lobby", 1, "alice", "one"),
                    ("message", "lobby", 2, "bob", "two"),
                ]
                assert all(isinstance(m["ts"], int) for m in frames)
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.parametrize("script", BASELINES)
@pytest.mark.gen_test(timeout=30)
async def test_baseline_closes_sockets_with_1001_and_exits_0_on_sigterm(script: str) -> None:
    async with running(script) as server:
        ws = await server.client("carol")
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(ws.wait_closed(), REPLY_TIMEOUT_S)
        assert ws.close_code == 1001
        assert await asyncio.wait_for(server.proc.wait(), REPLY_TIMEOUT_S) == 0


@pytest.mark.gen_test(timeout=60)
async def test_floor_keeps_a_member_that_stops_reading_in_order_through_its_stream() -> None:
    # Frames far larger than the socket buffers: the bare send() to the member that is not reading
    # comes back short, and the floor must finish that frame and queue the next ones behind it.
    count, size = 8, 1 << 20
    async with running("bench/floor.py") as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        # Alice gets her own big messages too: no size limit, or her library would close on them.
        alice = await connect(f"{url}?name=alice", compression=None, max_size=None)
        bob = await connect(f"{url}?name=bob", compression=None, max_size=None, max_queue=1)
        try:
            for ws in (alice, bob):
                await recv(ws)  # welcome
            for ws in (alice, bob):
                await ws.send(json.dumps({"type": "join", "room": "big"}))
                assert (await recv(ws))["type"] == "joined"
            # Bob's library stops reading once one frame waits unread (max_queue=1): his socket fills.
            for i in range(count):
                await alice.send(json.dumps({"type": "say", "room": "big", "text": f"{i}:" + "x" * size}))
            seqs = []
            for _ in range(count):
                frame = json.loads(await asyncio.wait_for(bob.recv(), REPLY_TIMEOUT_S * 4))
                assert frame["text"] == f"{frame['seq'] - 1}:" + "x" * size
                seqs.append(frame["seq"])
            assert seqs == list(range(1, count + 1))
        finally:
            await alice.close()
            await bob.close()
