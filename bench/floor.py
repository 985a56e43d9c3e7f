"""Baseline (c): the floor. Fan-out is a bare loop of one ``socket.send()`` per member.

Each message is JSON-encoded and framed once (a server's frames are unmasked,
so the bytes are the same for every member), then written with
``sock.send(frame)`` to each member's socket in turn: no queue, no Future, no
per-member object or method of our own. Nothing cheaper can deliver a message
to a thousand sockets from Python, so its CPU per delivery is what the kernel
costs (on loopback, the receiver's side of TCP too) plus the least Python can
add. The handshake and the clients' frames go through Tornado, as in our server.

A write the socket does not take whole (the member is not reading) is not
dropped: the member leaves the bare loop, the rest goes through its IOStream,
and so do its next frames, in order, until that stream has written everything.
On the bench's loopback runs that never happens; it keeps the floor honest.

It speaks just enough of docs/protocol.md for ``python -m chat.loadtest``:
``/ws?name=NICK``, ``welcome``, ``join`` -> ``joined`` (no history), ``say`` ->
``message`` to every member including the sender (in-memory per-room seq).

    python bench/floor.py --port 8003
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket
import tornado_baseline


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Room:
    """A room's members, and the raw sockets of those the bare loop writes to."""

    def __init__(self) -> None:
        self.members: dict[ChatSocket, None] = {}  # insertion-ordered set
        # Rebuilt when a member joins, leaves, or leaves or rejoins the bare loop: never per message.
        self.socks: list[socket.socket] = []
        self.buffered: list[ChatSocket] = []
        self.seq = 0

    def rebuild(self) -> None:
        self.socks = [m.sock for m in self.members if m.sock is not None and not m.buffered]
        self.buffered = [m for m in self.members if m.buffered]

    def send(self, frame: bytes) -> None:
        size = len(frame)
        short: list[tuple[socket.socket, int]] = []
        # The floor: one send() per member, nothing else.
        for sock in self.socks:
            try:
                sent = sock.send(frame)
            except BlockingIOError:  # its buffer is full: the frame goes through the IOStream
                sent = 0
            except OSError:  # a socket that just closed; on_close removes it
                continue
            if sent != size:
                short.append((sock, sent))
        # Members out of the bare loop: their stream holds earlier bytes, so this frame follows them.
        for member in self.buffered:
            member.push(frame)
        if short:
            by_sock = {m.sock: m for m in self.members if m.sock is not None}
            for sock, sent in short:
                owner = by_sock.get(sock)
                if owner is not None:
                    owner.push(frame[sent:], force=True)


class Chat:
    """Who is connected, and the rooms."""

    def __init__(self) -> None:
        self.connected: set[ChatSocket] = set()
        # Set when the last connection closes, so that a shutdown can wait for the closes.
        self.none_connected = asyncio.Event()
        self.rooms: dict[str, Room] = {}


class ChatSocket(tornado.websocket.WebSocketHandler):
    chat: Chat
    name: str
    joined: set[str]
    sock: socket.socket | None
    buffered: bool  # out of the bare loop: frames go through the IOStream until it has written them

    def initialize(self, chat: Chat) -> None:
        self.chat = chat
        self.name = "anon"
        self.joined = set()
        self.sock = None
        self.buffered = False

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, *args: str, **kwargs: str) -> None:
        # As our server does: each message is its own segment at once.
        self.set_nodelay(True)
        self.name = self.get_query_argument("name", "anon") or "anon"
        assert self.ws_connection is not None
        stream = self.ws_connection.stream
        assert stream is not None
        self.sock = stream.socket
        self.chat.connected.add(self)
        self.chat.none_connected.clear()
        self.reply({"type": "welcome", "name": self.name, "session": "x"})

    def reply(self, frame: dict[str, Any]) -> None:
        self.push(text_frame(json.dumps(frame, separators=(",", ":")).encode()))

    def push(self, data: bytes, force: bool = False) -> None:
        """Through the IOStream, after whatever it still holds. A member whose stream keeps bytes
        back (or ``force``: the bare loop's send was short) leaves the bare loop until it is all written."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return
        stream = conn.stream
        if stream is None:
            return
        try:
            future = stream.write(data)
        except tornado.iostream.StreamClosedError:
            return
        if (force or stream.writing()) and not self.buffered:
            self.buffered = True
            self._rebuild()
        if self.buffered:
            future.add_done_callback(self._maybe_drained)

    def _maybe_drained(self, future: asyncio.Future[None]) -> None:
        conn = self.ws_connection
        if future.cancelled() or future.exception() is not None or conn is None:
            return
        if self.buffered and conn.stream is not None and not conn.stream.writing():
            self.buffered = False
            self._rebuild()

    def _rebuild(self) -> None:
        for name in self.joined:
            room = self.chat.rooms.get(name)
            if room is not None:
                room.rebuild()

    def on_message(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            self.error("bad_json", None)
            return
        if not isinstance(frame, dict):
            self.error("bad_json", None)
            return
        kind = frame.get("type")
        room_name = frame.get("room")
        ref = frame.get("ref")
        if kind == "join" and isinstance(room_name, str):
            room = self.chat.rooms.get(room_name)
            if room is None:
                room = self.chat.rooms[room_name] = Room()
            room.members[self] = None
            room.rebuild()
            self.joined.add(room_name)
            reply: dict[str, Any] = {
                "type": "joined",
                "room": room_name,
                "members": sorted({m.name for m in room.members}),
                "last_seq": room.seq,
                "history": [],
            }
            if ref is not None:
                reply["ref"] = ref
            self.reply(reply)
        elif kind == "say" and isinstance(room_name, str):
            if room_name not in self.joined:
                self.error("not_member", ref)
                return
            room = self.chat.rooms[room_name]
            room.seq += 1
            chat = {
                "type": "message",
                "room": room_name,
                "seq": room.seq,
                "name": self.name,
                "text": frame.get("text"),
                "ts": int(time.time() * 1000),
            }
            room.send(text_frame(json.dumps(chat, separators=(",", ":")).encode()))
        else:
            self.error("unknown_type", ref)

    def error(self, code: str, ref: object) -> None:
        reply: dict[str, Any] = {"type": "error", "code": code, "message": code}
        if ref is not None:
            reply["ref"] = ref
        self.reply(reply)

    def on_close(self) -> None:
        self.chat.connected.discard(self)
        if not self.chat.connected:
            self.chat.none_connected.set()
        for name in self.joined:
            room = self.chat.rooms.get(name)
            if room is not None:
                room.members.pop(self, None)
                if room.members:
                    room.rebuild()
                else:
                    del self.chat.rooms[name]
        self.joined.clear()
        self.sock = None


def make_app(chat: Chat) -> tornado.web.Application:
    return tornado.web.Application(
        [(r"/ws", ChatSocket, {"chat": chat})],
        websocket_max_message_size=tornado_baseline.MAX_MESSAGE_BYTES,
    )


def make() -> tuple[tornado.web.Application, Chat]:
    chat = Chat()
    return make_app(chat), chat


def main(argv: list[str] | None = None) -> int:
    return tornado_baseline.main(__doc__ or "", make, argv)


if __name__ == "__main__":
    sys.exit(main())
