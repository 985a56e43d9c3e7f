"""The access matrix of docs/security.md, cell by cell, over real sockets and HTTP.

Every identity tries every action on one private room. On SQLite one server
process does everything; on PostgreSQL two processes share the database and
Redis: the room is set up through process A and every identity acts through
process B, so each answer also proves the rules hold across processes.
The table is read from docs/security.md, so the page and the server cannot
drift apart.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import argon2
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from chat.backends.factory import is_postgres
from chat.core.accounts import Accounts, NoSockets
from chat.core.passwords import Passwords
from chat.core.throttle import Throttle
from tests.server.test_http import cookies_of, fetch, xsrf_token
from tests.support import REPO, Closed, ServerProcess, Socket

ACTIONS = (
    "list", "join", "history", "resume", "say", "typing", "presence",
    "invite", "remove", "ban", "HTTP read", "HTTP post",
)  # fmt: skip
IDENTITIES = (
    "anonymous", "guest", "non-member account", "member", "moderator", "owner",
    "admin", "banned", "removed", "disabled account", "revoked token",
)  # fmt: skip

# The account behind each identity that has one. "root" is created first, so it
# is the site admin; it is not a member of the room.
ACCOUNTS = {
    "admin": "root",
    "owner": "olive",
    "moderator": "mona",
    "member": "mel",
    "non-member account": "nora",
    "banned": "ben",
    "removed": "remy",
    "disabled account": "dina",
    "revoked token": "rev",
}
# A member who only watches, from process A: typing must reach the room's other members.
WATCHER = "walt"
PASSWORD = "correct horse battery"
TARGETS = 3 * len(IDENTITIES)  # fresh accounts, one per moderation cell, so no cell changes another's room


def documented_matrix() -> dict[tuple[str, str], str]:
    """The table under "Access matrix" in docs/security.md: (identity, action) -> answer."""
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("## Access matrix", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert tuple(header[1:]) == ACTIONS, header
    matrix: dict[tuple[str, str], str] = {}
    for row in rows[2:]:
        cells = [cell.strip().strip("`") for cell in row.strip("|").split("|")]
        assert cells[0] in IDENTITIES, cells[0]
        for action, answer in zip(ACTIONS, cells[1:], strict=True):
            matrix[(cells[0], action)] = answer
    assert {identity for identity, _ in matrix} == set(IDENTITIES)
    return matrix


@dataclass
class Chat:
    """Servers A (setup) and B (where identities act), and the credentials made for the test."""

    a: ServerProcess
    b: ServerProcess
    tokens: dict[str, str] = field(default_factory=dict)  # account name -> token
    token_ids: dict[str, int] = field(default_factory=dict)
    room: str = ""
    owner: Socket | None = None
    watcher: Socket | None = None
    sockets: list[Socket] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)

    def http(self, server: ServerProcess, path: str) -> str:
        return f"http://127.0.0.1:{server.port}{path}"

    async def socket(self, server: ServerProcess, *, name: str | None = None, token: str | None = None) -> Socket:
        """A socket on ``server``, its welcome read. Raises Closed or HTTPClientError when refused."""
        if token is not None:
            request = HTTPRequest(server.url, headers={"Authorization": f"Bearer {token}"})
            sock = await Socket.connect(request)
        else:
            sock = await Socket.connect(server.url + (f"?name={name}" if name else ""))
        self.sockets.append(sock)
        sock.welcome = await sock.recv_until("welcome")
        return sock

    async def api(self, server: ServerProcess, method: str, path: str, token: str | None, body: Any = None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = json.dumps(body) if body is not None else None
        try:
            response = await AsyncHTTPClient().fetch(
                self.http(server, path), method=method, headers=headers, body=data, raise_error=True
            )
        except HTTPClientError as exc:
            return exc.code
        return response.code


async def reply(sock: Socket, ref: str) -> dict[str, Any]:
    """The frame answering ``ref`` (its reply or its error)."""
    while True:
        frame = await sock.recv()
        if frame.get("ref") == ref:
            return frame


def answer(frame: dict[str, Any], ok_type: str) -> str:
    if frame["type"] == "error":
        return str(frame["code"])
    assert frame["type"] == ok_type, frame
    return "ok"


async def make_accounts(db: str) -> tuple[dict[str, str], dict[str, int]]:
    """Every account of the matrix and a token each, made as `server.py users add` and
    `tokens create` make them (the same Accounts, on the same database)."""
    if is_postgres(db):
        from chat.backends.postgres import PostgresHistory

        store: Any = PostgresHistory(db, sole_writer=False)
    else:
        from chat.backends.sqlite import SQLiteHistory

        store = SQLiteHistory(db)
    try:
        cheap = Passwords(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
        accounts = Accounts(store.directory(), cheap, Throttle(time.monotonic), NoSockets())
        tokens: dict[str, str] = {}
        ids: dict[str, int] = {}
        names = [*ACCOUNTS.values(), WATCHER, *(f"target{i}" for i in range(TARGETS))]
        for name in names:
            account = await accounts.add_user(name, PASSWORD)
            token, info = await accounts.create_token(account, "matrix")
            tokens[name], ids[name] = token, info.id
        return tokens, ids
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def chat(request: pytest.FixtureRequest, tmp_path: Path, io_loop: Any) -> Iterator[Chat]:
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_dsn")
        redis_url = request.getfixturevalue("redis_url")
        args = ["--db", db, "--redis", redis_url, "--cookie-secret", "shared", "--rate", "0", "--ping-interval", "0"]
    else:
        db = str(tmp_path / "chat.sqlite3")
        args = ["--db", db, "--cookie-secret", "shared", "--rate", "0", "--ping-interval", "0"]
    started: list[ServerProcess] = []

    async def start() -> Chat:
        tokens, ids = await make_accounts(db)
        started.append(await ServerProcess(*args).start())
        if request.param == "postgres":
            started.append(await ServerProcess(*args).start())
        chat = Chat(started[0], started[-1], tokens, ids, targets=[f"target{i}" for i in range(TARGETS)])
        await set_up_room(chat)
        return chat

    chat: Chat | None = None
    try:
        chat = io_loop.run_sync(start, timeout=120)
        yield chat
    finally:

        async def stop() -> None:
            for sock in chat.sockets if chat is not None else []:
                sock.close()
            for server in started:
                await server.stop(signal.SIGKILL)

        io_loop.run_sync(stop)


async def set_up_room(chat: Chat) -> None:
    """Through process A: olive's private room, with mona moderating, mel, ben and remy
    members, then ben banned and remy removed; dina then disabled and rev's token revoked."""
    owner = await chat.socket(chat.a, token=chat.tokens["olive"])
    await owner.send(type="create", room="plans", visibility="private", ref="c")
    chat.room = (await reply(owner, "c"))["room"]
    for name in ("mona", "mel", "ben", "remy", "dina", "rev", WATCHER):
        await owner.send(type="invite", room=chat.room, name=name, ref=f"i-{name}")
        assert (await reply(owner, f"i-{name}"))["type"] == "done"
    steps = [("role", "mona", {"role": "moderator"}), ("ban", "ben", {}), ("remove", "remy", {})]
    for kind, name, extra in steps:
        await owner.send(type=kind, room=chat.room, name=name, ref=f"{kind}-{name}", **extra)
        assert (await reply(owner, f"{kind}-{name}"))["type"] == "done"
    await owner.send(type="join", room=chat.room, ref="j")
    assert (await reply(owner, "j"))["type"] == "joined"
    chat.owner = owner
    chat.watcher = await chat.socket(chat.a, token=chat.tokens[WATCHER])
    await chat.watcher.send(type="join", room=chat.room, ref="w")
    assert (await reply(chat.watcher, "w"))["type"] == "joined"
    root = chat.tokens["root"]
    assert await chat.api(chat.a, "POST", "/api/admin/accounts/dina", root, {"disabled": True}) == 200
    revoked = chat.token_ids["rev"]
    assert await chat.api(chat.a, "DELETE", f"/api/tokens/{revoked}", chat.tokens["rev"]) == 204


async def act(chat: Chat, identity: str, action: str) -> str:
    """What ``identity`` gets when it tries ``action`` on the room through process B."""
    name = ACCOUNTS.get(identity)
    token = chat.tokens[name] if name is not None else None
    room = chat.room
    if action == "HTTP read":
        return str(await chat.api(chat.b, "GET", f"/api/rooms/{room}/messages", token))
    if action == "HTTP post":
        return str(await chat.api(chat.b, "POST", f"/api/rooms/{room}/messages", token, {"text": "via http"}))
    try:
        if identity == "anonymous":
            sock = await chat.socket(chat.b)
        elif identity == "guest":
            # A fresh name each time: a guest's name stays reserved for its session a while after it leaves.
            sock = await chat.socket(chat.b, name=f"gus{len(chat.sockets)}")
        else:
            sock = await chat.socket(chat.b, token=token)
    except HTTPClientError as exc:
        return str(exc.code)
    except Closed as exc:
        return str(exc.reason)
    try:
        return await act_on_socket(chat, sock, action)
    finally:
        sock.close()


async def act_on_socket(chat: Chat, sock: Socket, action: str) -> str:
    room = chat.room
    if action == "list":
        await sock.send(type="rooms", ref="l")
        listed = [r["room"] for r in (await reply(sock, "l"))["rooms"]]
        return "listed" if room in listed else "absent"
    if action in ("invite", "remove", "ban"):
        target = chat.targets.pop()
        if action == "remove":
            assert chat.owner is not None
            await chat.owner.send(type="invite", room=room, name=target, ref=f"pre-{target}")
            assert (await reply(chat.owner, f"pre-{target}"))["type"] == "done"
        await sock.send(type=action, room=room, name=target, ref="m")
        return answer(await reply(sock, "m"), "done")
    await sock.send(type="join", room=room, ref="j", **({"since": 0} if action == "resume" else {}))
    joined = await reply(sock, "j")
    if action in ("join", "resume"):
        return answer(joined, "joined")
    if action == "presence":
        if joined["type"] == "error":
            return str(joined["code"])
        return "ok" if "olive" in joined["members"] else "owner not shown"
    if action == "history":
        await sock.send(type="history", room=room, ref="h")
        return answer(await reply(sock, "h"), "history")
    if action == "say":
        await sock.send(type="say", room=room, text="hello", ref="s")
        return answer(await reply(sock, "s"), "message")
    if action == "typing":
        await sock.send(type="typing", room=room, ref="t")
        await sock.send(type="ping", ref="p")
        first = await sock.recv()
        while first["type"] not in ("error", "pong"):
            first = await sock.recv()
        if first["type"] == "error":
            return str(first["code"])
        assert chat.watcher is not None
        seen = await chat.watcher.recv_until("typing")
        return "ok" if seen["name"] == sock.welcome["name"] else "typing not seen"
    raise AssertionError(action)


@pytest.mark.gen_test(timeout=240)
async def test_every_identity_gets_what_the_access_matrix_says(chat: Chat) -> None:
    expected = documented_matrix()
    got = {}
    for identity in IDENTITIES:
        for action in ACTIONS:
            got[(identity, action)] = await act(chat, identity, action)
    wrong = {cell: (got[cell], expected[cell]) for cell in expected if got[cell] != expected[cell]}
    assert not wrong, "cells (got, documented): " + json.dumps({f"{i} / {a}": v for (i, a), v in wrong.items()})


async def sign_in(chat: Chat, server: ServerProcess, name: str) -> str:
    """Sign ``name`` in through ``server``'s form: the ``chat_session`` cookie header to send."""
    client = AsyncHTTPClient()
    base = chat.http(server, "")
    field, xsrf = await xsrf_token(client, base)
    response = await fetch(
        client,
        base,
        "/signin",
        method="POST",
        body=urlencode({"name": name, "password": PASSWORD, "_xsrf": field}),
        headers={"Cookie": f"_xsrf={xsrf}"},
    )
    assert response.code == 302, response.body
    return f"chat_session={cookies_of(response)['chat_session'].value}"


async def joined_member(chat: Chat, server: ServerProcess, name: str, **headers: str) -> Socket:
    request = HTTPRequest(server.url, headers=headers or {"Authorization": f"Bearer {chat.tokens[name]}"})
    sock = await Socket.connect(request)
    chat.sockets.append(sock)
    sock.welcome = await sock.recv_until("welcome")
    await sock.send(type="join", room=chat.room, ref="j")
    assert (await reply(sock, "j"))["type"] == "joined"
    return sock


@pytest.mark.gen_test(timeout=120)
async def test_signing_out_through_one_process_closes_the_sessions_sockets_on_the_other(chat: Chat) -> None:
    cookie = await sign_in(chat, chat.a, "mel")
    page = await joined_member(chat, chat.b, "mel", Cookie=cookie)
    script = await joined_member(chat, chat.b, "mel")  # the same account through a token: another session
    assert page.welcome["account"] is True
    field, xsrf = await xsrf_token(AsyncHTTPClient(), chat.http(chat.a, ""))
    out = await fetch(
        AsyncHTTPClient(),
        chat.http(chat.a, ""),
        "/signout",
        method="POST",
        body=urlencode({"_xsrf": field}),
        headers={"Cookie": f"{cookie}; _xsrf={xsrf}"},
    )
    assert out.code == 302
    assert await page.closed() == (1000, "signed_out")
    await script.send(type="ping", ref="still")
    assert (await reply(script, "still"))["type"] == "pong"
    with pytest.raises(HTTPClientError) as refused:
        await Socket.connect(HTTPRequest(chat.b.url, headers={"Cookie": cookie}))
    assert refused.value.code == 401


@pytest.mark.gen_test(timeout=120)
async def test_revoking_a_token_and_disabling_an_account_close_sockets_on_the_other_process(chat: Chat) -> None:
    mel = await joined_member(chat, chat.b, "mel")
    assert await chat.api(chat.a, "DELETE", f"/api/tokens/{chat.token_ids['mel']}", chat.tokens["mel"]) == 204
    assert await mel.closed() == (1000, "signed_out")
    mona = await joined_member(chat, chat.b, "mona")
    assert await chat.api(chat.a, "POST", "/api/admin/accounts/mona", chat.tokens["root"], {"disabled": True}) == 200
    assert await mona.closed() == (1008, "account_disabled")


@pytest.mark.gen_test(timeout=120)
async def test_a_removed_member_on_the_other_process_gets_nothing_more_from_the_room(chat: Chat) -> None:
    mel = await joined_member(chat, chat.b, "mel")
    assert chat.owner is not None
    await chat.owner.send(type="remove", room=chat.room, name="mel", ref="rm")
    assert (await reply(chat.owner, "rm"))["type"] == "done"
    assert await mel.recv_until("removed") == {"type": "removed", "room": chat.room, "reason": "removed"}
    await chat.owner.send(type="say", room=chat.room, text="after the removal", ref="after")
    assert (await reply(chat.owner, "after"))["type"] == "message"
    assert chat.watcher is not None
    assert (await chat.watcher.recv_until("message"))["text"] == "after the removal"  # it went out, on both processes
    await mel.send(type="ping", ref="p")  # everything sent to mel before the pong is all mel gets
    frames = []
    while (frame := await mel.recv())["type"] != "pong":
        frames.append(frame)
    assert [f for f in frames if f.get("room") == chat.room] == []
    await mel.send(type="history", room=chat.room, ref="h")
    assert (await reply(mel, "h"))["code"] == "not_found"
