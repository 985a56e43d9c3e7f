"""Baseline (a): a naive Tornado chat, in the style of Tornado's websocket chatdemo.

Each message is broadcast with ``self.write_message(dict)`` once per member, so
Tornado JSON-encodes it again for every member and wraps every write in a Task.
That per-member cost is what this baseline measures; otherwise it is written
plainly (room state lives in an object handed to the handler, not on the class).

It speaks just enough of docs/protocol.md for ``python -m chat.loadtest``:
``/ws?name=NICK``, ``welcome``, ``join`` -> ``joined`` (no history), ``say`` ->
``message`` to every member including the sender (in-memory per-room seq).

    python bench/naive_tornado.py --port 8001
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import tornado.web
import tornado.websocket
import tornado_baseline


class Rooms:
    """Who is connected, who is in which room, and each room's last seq."""

    def __init__(self) -> None:
        self.connected: set[ChatSocket] = set()
        # Set when the last connection closes, so that a shutdown can wait for the closes.
        self.none_connected = asyncio.Event()
        self.members: dict[str, set[ChatSocket]] = {}
        self.seq: dict[str, int] = {}

    def join(self, room: str, member: ChatSocket) -> set[ChatSocket]:
        members = self.members.setdefault(room, set())
        members.add(member)
        return members

    def leave(self, room: str, member: ChatSocket) -> None:
        members = self.members.get(room)
        if members is not None:
            members.discard(member)
            if not members:
                del self.members[room]

    def next_seq(self, room: str) -> int:
        seq = self.seq.get(room, 0) + 1
        self.seq[room] = seq
        return seq


class ChatSocket(tornado.websocket.WebSocketHandler):
    rooms: Rooms
    name: str
    joined: set[str]

    def initialize(self, rooms: Rooms) -> None:
        self.rooms = rooms
        self.name = "anon"
        self.joined = set()

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, *args: str, **kwargs: str) -> None:
        self.name = self.get_query_argument("name", "anon") or "anon"
        self.rooms.connected.add(self)
        self.rooms.none_connected.clear()
        self.write_message({"type": "welcome", "name": self.name, "session": "x"})

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
        room = frame.get("room")
        ref = frame.get("ref")
        if kind == "join" and isinstance(room, str):
            members = self.rooms.join(room, self)
            self.joined.add(room)
            reply: dict[str, Any] = {
                "type": "joined",
                "room": room,
                "members": sorted({m.name for m in members}),
                "last_seq": self.rooms.seq.get(room, 0),
                "history": [],
            }
            if ref is not None:
                reply["ref"] = ref
            self.write_message(reply)
        elif kind == "say" and isinstance(room, str):
            if room not in self.joined:
                self.error("not_member", ref)
                return
            chat = {
                "type": "message",
                "room": room,
                "seq": self.rooms.next_seq(room),
                "name": self.name,
                "text": frame.get("text"),
                "ts": int(time.time() * 1000),
            }
            # The chatdemo's send_updates: one write_message(dict) per member.
            for member in list(self.rooms.members.get(room, ())):
                # try/except, not contextlib.suppress: a context manager per delivery would add
                # its own cost to what this baseline measures.
                try:  # noqa: SIM105
                    member.write_message(chat)
                except tornado.websocket.WebSocketClosedError:
                    pass
        else:
            self.error("unknown_type", ref)

    def error(self, code: str, ref: object) -> None:
        reply: dict[str, Any] = {"type": "error", "code": code, "message": code}
        if ref is not None:
            reply["ref"] = ref
        self.write_message(reply)

    def on_close(self) -> None:
        self.rooms.connected.discard(self)
        if not self.rooms.connected:
            self.rooms.none_connected.set()
        for room in self.joined:
            self.rooms.leave(room, self)
        self.joined.clear()


def make_app(rooms: Rooms) -> tornado.web.Application:
    return tornado.web.Application(
        [(r"/ws", ChatSocket, {"rooms": rooms})],
        websocket_max_message_size=tornado_baseline.MAX_MESSAGE_BYTES,
    )


def make() -> tuple[tornado.web.Application, Rooms]:
    rooms = Rooms()
    return make_app(rooms), rooms


def main(argv: list[str] | None = None) -> int:
    return tornado_baseline.main(__doc__ or "", make, argv)


if __name__ == "__main__":
    sys.exit(main())
