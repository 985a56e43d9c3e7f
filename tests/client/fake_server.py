"""A small stand-in for the chat server's WebSocket, speaking issue 12's frames as design12.md
specifies and issue 13's (edit, delete, react, read, search; one event log per room) as design13.md does.

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
from chat.core.model import REACTIONS

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
    # Every room's event log (message, edit, delete, reaction), in seq order: history
    # ``after`` and a join with ``since`` read it; live events go to the room's sockets.
    log: dict[str, list[Frame]] = field(default_factory=dict)
    # Seqs not sent live (a test then sees the client fetch them with ``history``).
    withheld: set[int] = field(default_factory=set)
    # Read markers by (account, room).
    markers: dict[tuple[str, str], int] = field(default_factory=dict)
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

    def append(self, event: Frame, key: tuple[str, str] | None) -> Frame:
        """Store ``event`` under the room's next seq (once per ``key``: a resent ref
        gets the stored event again) and send it to the room's sockets."""
        if key is not None and key in self.said:
            return self.said[key]
        room = event["room"]
        self.seq[room] = seq = self.seq.get(room, 0) + 1
        stored = {**event, "seq": seq, "ts": 1000 * seq}
        self.log.setdefault(room, []).append(stored)
        if key is not None:
            self.said[key] = stored
        if seq not in self.withheld:
            for socket in self.sockets:
                if room in socket.joined and socket.ws_connection is not None and socket.name != event["name"]:
                    socket.send(**stored)
        return stored

    def message(self, room: str, seq: int) -> Frame | None:
        """Message ``seq`` of ``room`` as it is now (None: no such message)."""
        found = [e for e in self.log.get(room, []) if e["seq"] == seq and e["type"] == "message"]
        if not found:
            return None
        message = dict(found[0])
        for event in self.log[room]:
            if event.get("target") != seq:
                continue
            if event["type"] == "edit":
                message.update(text=event["text"], edited=event["ts"])
            elif event["type"] == "delete":
                message.update(text="", deleted=True)
            elif event["type"] == "reaction":
                names = message.setdefault("reactions", {}).setdefault(event["emoji"], [])
                if event["on"]:
                    names.append(event["name"])
                else:
                    names.remove(event["name"])
        return message


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
            joined = {"type": "joined", "room": room, "members": [self.name], "last_seq": self.chat.seq.get(room, 0)}
            if "since" in frame:  # a resume: every event after it, of every kind
                joined["history"] = [e for e in self.chat.log.get(room, []) if e["seq"] > frame["since"]]
            return joined
        if kind == "say":
            # Refs are idempotent per identity (the server keys them by the token).
            event = {"type": "message", "room": room, "name": self.name, "text": frame["text"]}
            return self.chat.append(event, (self.name, frame["ref"]))
        if kind == "history":
            log = self.chat.log.get(room, [])
            return {"type": "history", "room": room, "messages": [e for e in log if e["seq"] > frame["after"]]}
        if kind in ("edit", "delete", "react", "read", "search"):
            return self.change(kind, room, frame)
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

    def change(self, kind: str, room: str, frame: Frame) -> Frame:
        """The issue-13 requests, with the rules of design13.md that the client's tests meet."""
        if kind == "search":
            q = frame["q"].lower()
            hits = [
                {"room": r, "seq": m["seq"], "name": m["name"], "ts": m["ts"], "snippet": f"[{m['text']}]"}
                for r, log in self.chat.log.items()
                if frame.get("room", r) == r
                for e in reversed(log)
                if (m := self.chat.message(r, e["seq"])) is not None and q in m["text"].lower()
            ]
            return {"type": "search", "results": hits[: frame.get("limit", 20)]}
        if kind != "react" and not self.account:
            return self.error("unauthorized")
        if kind == "read":
            marker = max(self.chat.markers.get((self.name, room), 0), frame["seq"])
            self.chat.markers[(self.name, room)] = marker
            unread = sum(1 for e in self.chat.log.get(room, []) if e["type"] == "message" and e["seq"] > marker)
            read = {"type": "read", "room": room, "seq": marker, "unread": unread, "mentions": 0}
            for socket in self.chat.sockets:
                if socket is not self and socket.name == self.name and socket.ws_connection is not None:
                    socket.send(**read)
            return read
        message = self.chat.message(room, frame["seq"])
        if message is None:
            return self.error("not_found")
        if message.get("deleted"):
            return self.error("bad_request")
        if kind != "react" and message["name"] != self.name:
            return self.error("forbidden")
        event: Frame = {"type": kind if kind != "react" else "reaction", "room": room, "target": frame["seq"]}
        if kind == "edit":
            event["text"] = frame["text"]
        elif kind == "react":
            emoji = frame["emoji"]
            if emoji not in REACTIONS:
                return self.error("bad_request")
            event.update(emoji=emoji, on=self.name not in message.get("reactions", {}).get(emoji, []))
        event["name"] = self.name
        return self.chat.append(event, (self.name, frame["ref"]))


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
