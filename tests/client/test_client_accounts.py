"""The client as an account (issue 12): the token on every handshake, refusals that end
it, and the room-management calls, against a fake server that speaks design12.md's frames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tornado.web

from chat.client import ChatClient, ChatError, ChatRefused, Disconnected
from tests.client.fake_server import FakeChat, ended_with, fake_app, next_event

TIMEOUT_S = 10.0
FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.05}
TOKEN = "chat_alice-token"


@pytest.fixture
def chat() -> FakeChat:
    return FakeChat(tokens={TOKEN: "alice", "chat_bob-token": "bob"}, admins={"alice"})


@pytest.fixture
def app(chat: FakeChat) -> tornado.web.Application:
    return fake_app(chat)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


def drop(chat: FakeChat, name: str, code: int = 1001, reason: str = "dropped by the test") -> None:
    chat.socket_of(name).close(code, reason)


# -- the handshake --------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_token_goes_in_the_authorization_header_and_the_name_comes_from_the_welcome(chat, url):
    async with ChatClient(url, token=TOKEN) as client:
        assert (client.name, client.account, client.admin, client.guest) == ("alice", True, True, False)
        assert client.session is None  # an account's welcome carries "": nothing to resume by
        assert client.welcome["type"] == "welcome"
    [dial] = chat.dials
    assert dial.authorization == f"Bearer {TOKEN}"
    assert dial.query == {}  # neither ?name= nor ?session=


@pytest.mark.gen_test
async def test_a_name_given_with_a_token_is_not_sent(chat, url):
    async with ChatClient(url + "?name=x&session=y&keep=1", "someone", token=TOKEN) as client:
        assert client.name == "alice"
    assert chat.dials[0].query == {"keep": "1"}


@pytest.mark.gen_test
async def test_a_guest_sends_its_name_and_no_authorization(chat, url):
    async with ChatClient(url, "carol") as client:
        assert (client.account, client.guest, client.my_rooms) == (False, True, [])
        assert client.session == "guest-session-carol"
    assert chat.dials[0].authorization is None
    assert chat.dials[0].query == {"name": "carol"}


def test_a_client_needs_a_name_or_a_token_and_a_token_takes_no_session():
    with pytest.raises(ValueError, match="name"):
        ChatClient("ws://127.0.0.1:1/ws")
    with pytest.raises(ValueError, match="session"):
        ChatClient("ws://127.0.0.1:1/ws", token=TOKEN, session="s")


@pytest.mark.gen_test
async def test_every_reconnect_presents_the_token_again(chat, url):
    async with ChatClient(url, token=TOKEN, **FAST) as client:
        await next_event(client, "welcome")  # the first connection's
        await client.join("lobby")
        for _ in range(2):
            drop(chat, "alice")
            await next_event(client, "welcome")
    assert [d.authorization for d in chat.dials] == [f"Bearer {TOKEN}"] * 3
    assert all(d.query == {} for d in chat.dials)


@pytest.mark.gen_test
async def test_a_refused_token_is_unauthorized_at_once(chat, url):
    client = ChatClient(url, token="chat_wrong", **FAST)
    with pytest.raises(ChatRefused) as info:
        await client.connect()
    assert info.value.code == "unauthorized"
    assert "this token is not valid" in info.value.message  # the server's own words
    assert isinstance(info.value, ChatError)
    assert len(chat.dials) == 1


@pytest.mark.gen_test
async def test_a_token_revoked_while_away_ends_the_client_without_a_retry_loop(chat, url):
    client = ChatClient(url, token=TOKEN, **FAST)
    async with client:
        await client.join("lobby")
        del chat.tokens[TOKEN]
        drop(chat, "alice")
        assert (await ended_with(client)).code == "unauthorized"
        with pytest.raises(ChatRefused) as info:
            await client.say("lobby", "too late")
        assert info.value.code == "unauthorized"
    assert len(chat.dials) == 2  # the first connection and one reconnect, refused for good


@pytest.mark.gen_test
@pytest.mark.parametrize(("code", "reason"), [(1000, "signed_out"), (1008, "account_disabled")])
async def test_a_session_that_ends_stops_the_client_and_says_why(chat, url, code, reason):
    client = ChatClient(url, token=TOKEN, **FAST)
    async with client:
        await client.join("lobby")
        drop(chat, "alice", code, reason)
        refused = await ended_with(client)
        assert (refused.code, refused.close_code) == (reason, code)
        with pytest.raises(ChatRefused):
            await client.ping()
    assert len(chat.dials) == 1  # never dialled again


@pytest.mark.gen_test
async def test_a_say_resent_after_a_drop_keeps_its_ref_and_the_token(chat, url):
    chat.unanswered.add("say")
    async with ChatClient(url, token=TOKEN, **FAST) as client:
        await client.join("ops")
        saying = asyncio.ensure_future(client.say("ops", "deploy 1"))
        await asyncio.wait_for(chat.wait_for(lambda: any(f["type"] == "say" for f in chat.received)), TIMEOUT_S)
        chat.unanswered.clear()
        drop(chat, "alice")
        message = await asyncio.wait_for(saying, TIMEOUT_S)
    says = [f for f in chat.received if f["type"] == "say"]
    assert len(says) == 2
    assert says[0]["ref"] == says[1]["ref"] == message["ref"]
    assert (message["seq"], message["text"]) == (1, "deploy 1")
    assert [d.authorization for d in chat.dials] == [f"Bearer {TOKEN}"] * 2


# -- rooms, DMs and moderation ------------------------------------------------------------


@pytest.mark.gen_test
async def test_create_returns_the_created_frame_and_the_room_joins_my_rooms(url):
    async with ChatClient(url, token=TOKEN) as client:
        created = await client.create("Team plans", visibility="private")
        assert (created["type"], created["title"], created["visibility"], created["role"]) == (
            "created",
            "Team plans",
            "private",
            "owner",
        )
        assert created["room"].startswith("~")
        invited = await next_event(client, "invited")
        assert invited["room"]["room"] == created["room"]
        assert [r["room"] for r in client.my_rooms] == [created["room"]]
        public = await client.create("ops")
        assert (public["room"], public["visibility"]) == ("ops", "public")
        with pytest.raises(ChatError) as info:
            await client.create("ops")
        assert info.value.code == "room_exists"


@pytest.mark.gen_test
async def test_a_guest_calling_an_account_request_gets_unauthorized(url):
    async with ChatClient(url, "carol") as client:
        for call in (client.create("x", "private"), client.dm(["bob"]), client.members("ops")):
            with pytest.raises(ChatError) as info:
                await call
            assert info.value.code == "unauthorized"


@pytest.mark.gen_test
async def test_dm_sends_the_others_and_leaves_our_own_name_out(chat, url):
    async with ChatClient(url, token=TOKEN) as client:
        created = await client.dm(["bob"])
        assert (created["kind"], created["role"], created["people"]) == ("dm", "member", ["alice", "bob"])
        # Our own name (names compare without case) would take one of the 7 places the server allows.
        seven = [f"p{i}" for i in range(7)]
        assert (await client.dm(["Alice", *seven]))["people"] == ["alice", *seven]
    assert [f["to"] for f in chat.received if f["type"] == "dm"] == [["bob"], seven]


@pytest.mark.gen_test
async def test_moderation_calls_answer_done_and_raise_the_servers_codes(chat, url):
    async with ChatClient(url, token=TOKEN) as alice, ChatClient(url, token="chat_bob-token") as bob:
        room = (await alice.create("Team", visibility="private"))["room"]
        assert await alice.invite(room, "bob") == {
            "type": "done",
            "action": "invite",
            "room": room,
            "name": "bob",
            "ref": chat.received[-1]["ref"],
        }
        assert (await alice.set_role(room, "bob", "moderator"))["action"] == "role"
        assert await alice.members(room) == [{"name": "alice", "role": "owner"}, {"name": "bob", "role": "moderator"}]
        assert (await alice.ban(room, "bob"))["action"] == "ban"
        assert (await alice.unban(room, "bob"))["action"] == "unban"
        with pytest.raises(ChatError) as info:
            await bob.invite(room, "carol")  # no longer a member: the room is not there for bob
        assert info.value.code == "not_found"
        await alice.invite(room, "bob")
        with pytest.raises(ChatError) as info:
            await bob.remove(room, "alice")  # a plain member
        assert info.value.code == "forbidden"
        assert (await alice.remove(room, "bob"))["action"] == "remove"
    sent = [(f["type"], f.get("name"), f.get("role")) for f in chat.received if f.get("room") == room]
    assert ("role", "bob", "moderator") in sent


@pytest.mark.gen_test
async def test_removed_is_yielded_and_the_room_is_not_rejoined(chat, url):
    async with ChatClient(url, token=TOKEN, **FAST) as client:
        await next_event(client, "welcome")  # the first connection's
        await client.join("lobby")
        await client.join("ops")
        chat.socket_of("alice").send(type="removed", room="ops", reason="banned")
        assert await next_event(client, "removed") == {"type": "removed", "room": "ops", "reason": "banned"}
        # Nothing more from the room reaches the caller, even a frame already on its way.
        chat.socket_of("alice").send(type="message", room="ops", seq=1, name="bob", text="after", ts=0)
        drop(chat, "alice")
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "joined":
            events.append(await asyncio.wait_for(client.__anext__(), TIMEOUT_S))
        assert [e["type"] for e in events] == ["welcome", "joined"]
        assert events[-1]["room"] == "lobby"
        await client.ping()  # every rejoin was sent before it
    assert [f["room"] for f in chat.received if f["type"] == "join"] == ["lobby", "ops", "lobby"]


@pytest.mark.gen_test
async def test_invited_and_role_events_are_yielded_and_keep_my_rooms_current(chat, url):
    chat.rooms["~" + "c" * 20] = {
        "title": "Old",
        "visibility": "private",
        "kind": "room",
        "members": {"alice": "member"},
    }
    async with ChatClient(url, token=TOKEN) as client:
        assert [(r["room"], r["role"]) for r in client.my_rooms] == [("~" + "c" * 20, "member")]
        new = {"room": "~" + "d" * 20, "title": "New", "visibility": "private", "kind": "room", "role": "member"}
        socket = chat.socket_of("alice")
        socket.send(type="invited", room=new)
        assert (await next_event(client, "invited"))["room"] == new
        socket.send(type="role", room="~" + "d" * 20, name="Alice", role="moderator")
        assert (await next_event(client, "role"))["role"] == "moderator"
        socket.send(type="removed", room="~" + "c" * 20, reason="removed")
        await next_event(client, "removed")
        assert [(r["room"], r["role"]) for r in client.my_rooms] == [("~" + "d" * 20, "moderator")]


# Sent again, these would do something twice (a second private room) or be
# refused for what was done (not_found): at most once, the caller is told.
AT_MOST_ONCE = {
    "create": lambda client: client.create("Team", visibility="private"),
    "remove": lambda client: client.remove("~" + "e" * 20, "bob"),
    "unban": lambda client: client.unban("~" + "e" * 20, "bob"),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", sorted(AT_MOST_ONCE))
async def test_a_request_unanswered_when_the_socket_drops_is_not_sent_again(chat, url, kind):
    chat.unanswered.add(kind)
    async with ChatClient(url, token=TOKEN, **FAST) as client:
        calling = asyncio.ensure_future(AT_MOST_ONCE[kind](client))
        await asyncio.wait_for(chat.wait_for(lambda: any(f["type"] == kind for f in chat.received)), TIMEOUT_S)
        drop(chat, "alice")
        with pytest.raises(Disconnected):
            await asyncio.wait_for(calling, TIMEOUT_S)
        await client.ping()  # on the next connection: anything still pending went out before it
    assert [f["type"] for f in chat.received].count(kind) == 1


@pytest.mark.gen_test
async def test_an_invite_unanswered_when_the_socket_drops_is_sent_again(chat, url):
    # Inviting a member again is answered done: safe to resend.
    chat.rooms["~" + "e" * 20] = {"title": "T", "visibility": "private", "kind": "room", "members": {"alice": "owner"}}
    chat.unanswered.add("invite")
    async with ChatClient(url, token=TOKEN, **FAST) as client:
        inviting = asyncio.ensure_future(client.invite("~" + "e" * 20, "bob"))
        await asyncio.wait_for(chat.wait_for(lambda: any(f["type"] == "invite" for f in chat.received)), TIMEOUT_S)
        chat.unanswered.clear()
        drop(chat, "alice")
        assert (await asyncio.wait_for(inviting, TIMEOUT_S))["action"] == "invite"
    invites = [f for f in chat.received if f["type"] == "invite"]
    assert len(invites) == 2
    assert invites[0]["ref"] == invites[1]["ref"]
