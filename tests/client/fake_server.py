"""A small stand-in for the chat server's WebSocket, speaking issue 12's frames as design12.md specifies.

It pins what the client sends and how it reacts, independently of the real
server (tests/server/test_access.py covers the server): the handshake's
``Authorization`` header and query, each frame received, and the answers a
test scripts (errors, closes, events pushed at a chosen moment).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import tornado.web
import tornado.websocket

from chat.client import ChatClient, ChatRefused

Frame = dict[str, Any]


@dataclass
class Dial:
    """One handshake as the server saw it."""

    authorization: str | None
    query: dict[str, str]


@dataclass
class FakeChat:
    """The server's state: accounts by token, rooms with their members, every socket."""

    tokens: dict[str, str] = field(default_factory=dict)  # token -> account name
    admins: set[str] = field(default_factory=set)
    rooms: dict[str, Frame] = field(default_factory=dict)  # id -> {"title","visibility","kind","members":{name: role}}
    dials: list[Dial] = field(default_factory=list)
    received: list[Frame] = field(default_factory=list)
    sockets: list[FakeSocket] = field(default_factory=list)
    # Frame types the server reads and never answers (a test then drops the socket).
    unanswered: set[str] = field(default_factory=set)
    # Says stored, by (identity, ref): a resent ref gets the stored message again.
    said: dict[tuple[str, str], Frame] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def socket_of(self, name: str) -> FakeSocket:
        return next(s for s in reversed(self.sockets) if s.name == name and s.ws_connection is not None)

    def my_rooms(self, name: str) -> list[Frame]:
        return [self.room_wire(room, name) for room, info in self.rooms.items() if name in info["members"]]

    def room_wire(self, room: str, name: str) -> Frame:
        info = self.rooms[room]
        return {
            "room": room,
            "title": info["title"],
            "visibility": info["visibility"],
            "kind": info["kind"],
            "role": info["members"].get(name),
        }

    async def wait_for(self, predicate: Any) -> None:
        """Wait until ``predicate()`` holds (checked after every frame and dial)."""
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    def note(self) -> None:
        self.changed.set()


class FakeSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, chat: FakeChat) -> None:
        self.chat = chat
        self.name = ""
        self.account = False
        self.joined: list[str] = []

    def prepare(self) -> None:
        auth = self.request.headers.get("Authorization")
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.chat.dials.append(Dial(auth, query))
        self.chat.note()
        if auth is not None:
            token = auth.removeprefix("Bearer ")
            if not auth.startswith("Bearer ") or token not in self.chat.tokens:
                # As the server does: a JSON body, before any upgrade.
                self.set_status(401)
                self.finish(json.dumps({"code": "unauthorized", "message": "this token is not valid"}))
                return
            self.name, self.account = self.chat.tokens[token], True
        else:
            self.name = query.get("name", "")

    def open(self, *args: str, **kwargs: str) -> None:
        self.chat.sockets.append(self)
        self.send(
            type="welcome",
            name=self.name,
            session="" if self.account else f"guest-session-{self.name}",
            account=self.account,
            admin=self.name in self.chat.admins,
            guest=not self.account,
            rooms=self.chat.my_rooms(self.name) if self.account else [],
        )

    def send(self, **frame: Any) -> None:
        self.write_message(json.dumps(frame))

    def on_message(self, message: str | bytes) -> None:
        frame: Frame = json.loads(message)
        self.chat.received.append(frame)
        self.chat.note()
        if frame["type"] in self.chat.unanswered:
            return
        ref = frame.get("ref")
        reply = self.answer(frame)
        if reply is not None:
            self.send(**reply, ref=ref)

    def error(self, code: str) -> Frame:
        return {"type": "error", "code": code, "message": f"{code} (fake server)"}

    def answer(self, frame: Frame) -> Frame | None:
        kind, room = frame["type"], str(frame.get("room", ""))
        if kind == "ping":
            return {"type": "pong"}
        if kind in ("create", "dm", "invite", "remove", "ban", "unban", "role", "members") and not self.account:
            return self.error("unauthorized")
        if kind == "create":
            if frame["visibility"] == "public":
                room_id = frame["room"]
                if room_id in self.chat.rooms:
                    return self.error("room_exists")
            else:
                room_id = f"~{'a' * 19}{len(self.chat.rooms) % 10}"
            self.chat.rooms[room_id] = {
                "title": frame["room"],
                "visibility": frame["visibility"],
                "kind": "room",
                "members": {self.name: "owner"},
            }
            self.send(type="invited", room=self.chat.room_wire(room_id, self.name))
            return {"type": "created", **self.chat.room_wire(room_id, self.name)}
        if kind == "dm":
            # "to" names the others, 1 to 7 of them: the server adds the caller.
            if not 1 <= len(frame["to"]) <= 7:
                return self.error("bad_request")
            people = [self.name, *frame["to"]]
            room_id = "~dm" + "b" * 17
            self.chat.rooms[room_id] = {
                "title": "",
                "visibility": "private",
                "kind": "dm",
                "members": dict.fromkeys(people, "member"),
            }
            return {"type": "created", **self.chat.room_wire(room_id, self.name), "people": people}
        if kind == "join":
            if room not in self.chat.rooms:
                if room.startswith("~"):
                    return self.error("not_found")
                self.chat.rooms[room] = {"title": room, "visibility": "public", "kind": "room", "members": {}}
            self.joined.append(room)
            return {"type": "joined", "room": room, "members": [self.name], "last_seq": self.chat.seq.get(room, 0)}
        if kind == "say":
            # Refs are idempotent per identity (the server keys them by the token).
            key = (self.name, frame["ref"])
            if key not in self.chat.said:
                self.chat.seq[room] = seq = self.chat.seq.get(room, 0) + 1
                self.chat.said[key] = {"type": "message", "room": room, "seq": seq, "name": self.name, "ts": 0}
                self.chat.said[key]["text"] = frame["text"]
            return self.chat.said[key]
        info = self.chat.rooms.get(room)
        if info is None or self.name not in info["members"]:
            return self.error("not_found")
        if kind == "members":
            return {
                "type": "members",
                "room": room,
                "members": [{"name": n, "role": r} for n, r in info["members"].items()],
            }
        if info["members"][self.name] not in ("owner", "moderator"):
            return self.error("forbidden")
        name = frame["name"]
        if kind == "invite":
            info["members"][name] = "member"
        elif kind in ("remove", "ban"):
            info["members"].pop(name, None)
        elif kind == "role":
            info["members"][name] = frame["role"]
        return {"type": "done", "action": kind, "room": room, "name": name}


def fake_app(chat: FakeChat) -> tornado.web.Application:
    return tornado.web.Application([(r"/ws", FakeSocket, {"chat": chat})])


# What tests read from a client: helpers shared by the client's account tests.
EVENT_TIMEOUT_S = 10.0


async def next_event(client: ChatClient, kind: str) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(client.__anext__(), EVENT_TIMEOUT_S)
        if event["type"] == kind:
            return event


async def ended_with(client: ChatClient) -> ChatRefused:
    """Consume the events until iteration raises; the refusal it raised."""
    try:
        while True:
            await asyncio.wait_for(client.__anext__(), EVENT_TIMEOUT_S)
    except ChatRefused as refused:
        return refused
