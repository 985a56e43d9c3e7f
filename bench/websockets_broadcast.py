"""Baseline (b): a chat server on the ``websockets`` library's asyncio server and ``broadcast()``.

Each message is JSON-encoded once and handed to
``websockets.asyncio.server.broadcast(members, text)``, the library's own
fan-out (one frame built per member, written without awaiting anyone).
Compression is off, as in our server.

It speaks just enough of docs/protocol.md for ``python -m chat.loadtest``:
``/ws?name=NICK``, ``welcome``, ``join`` -> ``joined`` (no history), ``say`` ->
``message`` to every member including the sender (in-memory per-room seq).

    python bench/websockets_broadcast.py --port 8002
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import logging
import resource
import signal
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

log = logging.getLogger("bench.websockets_broadcast")

# Far above any frame the load tester sends: the baseline must not be the one to refuse a size.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the hard one cannot be raised here)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


class Chat:
    """Who is in which room, each room's last seq, and one connection's frames."""

    def __init__(self) -> None:
        # room -> {connection: name}
        self.members: dict[str, dict[ServerConnection, str]] = {}
        self.seq: dict[str, int] = {}

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one connection until it closes."""
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        name = query.get("name", ["anon"])[0] or "anon"
        joined: set[str] = set()
        try:
            await ws.send(dumps({"type": "welcome", "name": name, "session": "x"}))
            async for message in ws:
                reply = self.on_message(ws, name, joined, message)
                if reply is not None:
                    await ws.send(dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            for room in joined:
                members = self.members.get(room)
                if members is not None:
                    members.pop(ws, None)
                    if not members:
                        del self.members[room]

    def on_message(
        self, ws: ServerConnection, name: str, joined: set[str], message: str | bytes
    ) -> dict[str, Any] | None:
        """Apply one client frame; return the direct reply to send, if any."""
        try:
            frame = json.loads(message)
        except ValueError:
            return error("bad_json", None)
        if not isinstance(frame, dict):
            return error("bad_json", None)
        kind = frame.get("type")
        room = frame.get("room")
        ref = frame.get("ref")
        if kind == "join" and isinstance(room, str):
            members = self.members.setdefault(room, {})
            members[ws] = name
            joined.add(room)
            reply: dict[str, Any] = {
                "type": "joined",
                "room": room,
                "members": sorted(set(members.values())),
                "last_seq": self.seq.get(room, 0),
                "history": [],
            }
            if ref is not None:
                reply["ref"] = ref
            return reply
        if kind == "say" and isinstance(room, str):
            if room not in joined:
                return error("not_member", ref)
            seq = self.seq.get(room, 0) + 1
            self.seq[room] = seq
            text = dumps(
                {
                    "type": "message",
                    "room": room,
                    "seq": seq,
                    "name": name,
                    "text": frame.get("text"),
                    "ts": int(time.time() * 1000),
                }
            )
            broadcast(self.members.get(room, ()), text)
            return None
        return error("unknown_type", ref)


def error(code: str, ref: object) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "code": code, "message": code}
    if ref is not None:
        reply["ref"] = ref
    return reply


def only_ws_path(connection: ServerConnection, request: Request) -> Response | None:
    """``process_request``: the WebSocket lives at ``/ws``; anything else is a 404."""
    if urlsplit(request.path).path != "/ws":
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def serve_forever(port: int) -> None:
    chat = Chat()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        chat.handle,
        "127.0.0.1",
        port,
        process_request=only_ws_path,
        compression=None,
        max_size=MAX_MESSAGE_BYTES,
        # Tornado's server sends no header either: keep the handshakes alike.
        server_header=None,
        # Clients get this long to answer our 1001 close on SIGTERM.
        close_timeout=2,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        log.info("listening on ws://127.0.0.1:%d/ws", port)
        await stop.wait()
        # Leaving the block closes every connection with 1001 and waits for them.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port (logged)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    # One log line per connection would be part of what is measured: keep the library quiet.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    raise_fd_limit()
    asyncio.run(serve_forever(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
