"""The client as an account against the real server (in-process, on SQLite):
a token's identity, rooms of its own, moderation reaching the member, and the ends of a session.

The access rules themselves are the server's tests (tests/server, tests/cluster/test_access.py);
these pin that the client and the server agree on the frames."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tornado.ioloop

from chat.client import ChatClient, ChatError, ChatRefused
from chat.server.app import ChatApplication
from chat.server.options import Settings
from tests.client.fake_server import ended_with, next_event
from tests.client.real_server import FAST, started_app, token_for
from tests.support.fakes import FakeClock

TIMEOUT_S = 10.0


@pytest.fixture
def app(settings: Settings, io_loop: tornado.ioloop.IOLoop, clock: FakeClock) -> Iterator[ChatApplication]:
    yield from started_app(settings, io_loop, clock)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


@pytest.mark.gen_test
async def test_a_token_signs_in_as_its_account(app, url):
    token = await token_for(app, "alice")
    async with ChatClient(url, token=token) as alice:
        assert (alice.name, alice.account, alice.admin, alice.guest, alice.session) == (
            "alice",
            True,
            True,
            False,
            None,
        )
        await alice.join("ops")
        message = await alice.say("ops", "deploy 1")
    assert (message["name"], message.get("guest")) == ("alice", None)
    [stored] = await app.chat.store.after("ops", 0, 10)
    assert (stored.name, stored.guest) == ("alice", False)


@pytest.mark.gen_test
async def test_a_wrong_token_is_unauthorized(app, url):
    await token_for(app, "alice")
    with pytest.raises(ChatRefused) as info:
        await ChatClient(url, token="chat_not-a-token").connect()
    assert info.value.code == "unauthorized"


@pytest.mark.gen_test
async def test_a_private_room_from_creation_to_a_ban(app, url):
    alice_token, bob_token = await token_for(app, "alice"), await token_for(app, "bob")
    async with ChatClient(url, token=alice_token) as alice, ChatClient(url, token=bob_token, **FAST) as bob:
        created = await alice.create("Team plans", visibility="private")
        room = created["room"]
        assert (created["title"], created["visibility"], created["role"]) == ("Team plans", "private", "owner")
        with pytest.raises(ChatError) as info:
            await bob.join(room)
        assert info.value.code == "not_found"
        await alice.join(room)
        assert (await alice.invite(room, "bob"))["action"] == "invite"
        invited = await next_event(bob, "invited")
        assert invited["room"]["room"] == room
        assert room in [r["room"] for r in bob.my_rooms]
        joined = await bob.join(room)
        assert (joined["title"], joined["role"]) == ("Team plans", "member")
        assert sorted((m["name"], m["role"]) for m in await alice.members(room)) == [
            ("alice", "owner"),
            ("bob", "member"),
        ]
        assert (await alice.ban(room, "bob"))["action"] == "ban"
        removed = await next_event(bob, "removed")
        assert (removed["room"], removed["reason"]) == (room, "banned")
        assert room not in [r["room"] for r in bob.my_rooms]
        with pytest.raises(ChatError) as info:
            await bob.join(room)
        assert info.value.code == "not_found"


@pytest.mark.gen_test
async def test_dm_with_another_account(app, url):
    alice_token, bob_token = await token_for(app, "alice"), await token_for(app, "bob")
    async with ChatClient(url, token=alice_token) as alice, ChatClient(url, token=bob_token) as bob:
        created = await alice.dm(["bob"])
        assert (created["kind"], sorted(created["people"])) == ("dm", ["alice", "bob"])
        assert (await next_event(bob, "invited"))["room"]["room"] == created["room"]
        await alice.join(created["room"])
        await bob.join(created["room"])
        await alice.say(created["room"], "just us")
        assert (await next_event(bob, "message"))["text"] == "just us"


@pytest.mark.gen_test
async def test_a_revoked_token_closes_the_client_for_good(app, url):
    token = await token_for(app, "alice")
    client = ChatClient(url, token=token, **FAST)
    async with client:
        await client.join("ops")
        account = (await app.accounts.directory.account_by_name("alice"))[0]
        [info] = await app.accounts.tokens(account)
        await app.accounts.revoke_token(account, info.id)
        assert (await ended_with(client)).code == "signed_out"
    with pytest.raises(ChatRefused) as refused:
        await ChatClient(url, token=token).connect()
    assert refused.value.code == "unauthorized"


@pytest.mark.gen_test
async def test_a_disabled_account_closes_the_client_for_good(app, url):
    await token_for(app, "admin")
    token = await token_for(app, "alice")
    client = ChatClient(url, token=token, **FAST)
    async with client:
        await client.join("ops")
        await app.accounts.set_disabled("alice", True)
        assert (await ended_with(client)).code == "account_disabled"
