"""Accounts over real HTTP: the sign-up and sign-in forms, the session cookie, the JSON API
with cookies and tokens, its error bodies, idempotent posts, administration and --no-guests.

The directory is the in-memory fake and the hasher Argon2's cheapest profile:
the SQL directories are held to the same contract in tests/backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
from argon2 import PasswordHasher, profiles

from chat.core import secrets
from chat.core.model import RoomInfo, RoomKind, Standing, Visibility
from chat.core.passwords import Passwords
from chat.server.app import ChatApplication, make_app
from chat.server.options import Settings
from tests.server.test_http import cookies_of, fetch, post_form, xsrf_token
from tests.support import FakeClock
from tests.support.fake_directory import FakeDirectory
from tests.support.fakes import RecordingSockets

PASSWORD = "correct horse battery"


Recorder = RecordingSockets


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def settings(tmp_path, request) -> Settings:
    changes: dict[str, Any] = getattr(request, "param", {})
    return Settings(db=str(tmp_path / "chat.sqlite3"), cookie_secret="test-secret", ping_interval=0, **changes)


@pytest.fixture
def sockets() -> Recorder:
    return Recorder()


@pytest.fixture
def app(
    settings: Settings, io_loop: tornado.ioloop.IOLoop, clock: FakeClock, directory: FakeDirectory, sockets: Recorder
) -> Iterator[ChatApplication]:
    cheap = Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST))
    application = make_app(settings, clock=clock, directory=directory, passwords=cheap)
    application.accounts.sockets = sockets
    sockets.forward = application.chat  # recorded, and carried out as in the server
    io_loop.run_sync(application.chat.start)
    yield application
    io_loop.run_sync(application.chat.stop)


NO_GUESTS = pytest.mark.parametrize("settings", [{"guests": False}], indirect=True)


class Browser:
    """A browser's cookies: the session and the XSRF pair, sent with each request."""

    def __init__(self, http_client, base_url: str) -> None:
        self.http_client = http_client
        self.base_url = base_url
        self.session = ""
        self.xsrf_field = ""
        self.xsrf_cookie = ""

    async def start(self) -> Browser:
        self.xsrf_field, self.xsrf_cookie = await xsrf_token(self.http_client, self.base_url)
        return self

    def cookie(self) -> str:
        jar = [f"_xsrf={self.xsrf_cookie}"]
        if self.session:
            jar.append(f"chat_session={self.session}")
        return "; ".join(jar)

    async def form(self, path: str, **form: str):
        response = await post_form(self.http_client, self.base_url, path, form, cookie=self.cookie())
        jar = cookies_of(response)
        if "chat_session" in jar:
            self.session = jar["chat_session"].value
        return response

    async def api(self, method: str, path: str, body: Any = None, *, xsrf: bool = True, **headers: str):
        sent = {"Cookie": self.cookie(), **headers}
        if xsrf:
            sent["X-XSRFToken"] = self.xsrf_field
        response = await fetch(
            self.http_client,
            self.base_url,
            path,
            method=method,
            headers=sent,
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
        )
        jar = cookies_of(response)
        if "chat_session" in jar:
            self.session = jar["chat_session"].value
        return response


async def api(http_client, base_url: str, method: str, path: str, token: str = "", body: Any = None, **headers):
    """A script's request: a Bearer token, no cookies."""
    sent = dict(headers)
    if token:
        sent["Authorization"] = f"Bearer {token}"
    has_body = body is not None or method not in ("GET", "DELETE")
    return await fetch(
        http_client,
        base_url,
        path,
        method=method,
        headers=sent,
        body=(json.dumps(body) if body is not None else "{}") if has_body else None,
    )


def problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.code == status, response.body
    body = json.loads(response.body)
    assert body["code"] == code
    assert body["error"] == code  # kept for clients older than "code"
    assert body["message"]
    return body


@pytest.fixture
def signed_up(http_client, base_url):
    async def make(name: str = "alice", password: str = PASSWORD) -> Browser:
        browser = await Browser(http_client, base_url).start()
        response = await browser.form("/signup", name=name, password=password)
        assert response.code == 302, response.body
        return browser

    return make


async def new_token(browser: Browser, label: str = "script") -> str:
    response = await browser.api("POST", "/api/tokens", {"label": label})
    assert response.code == 201, response.body
    return json.loads(response.body)["token"]


@pytest.mark.gen_test
async def test_sign_up_sets_a_signed_httponly_samesite_session_cookie(http_client, base_url, directory):
    browser = await Browser(http_client, base_url).start()
    response = await browser.form("/signup", name="alice", password=PASSWORD)
    assert response.code == 302
    assert response.headers["Location"] == "/"
    header = next(h for h in response.headers.get_list("Set-Cookie") if h.startswith("chat_session="))
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Secure" not in header  # plain http
    page = await fetch(http_client, base_url, "/", headers={"Cookie": browser.cookie()})
    assert b'data-name="alice"' in page.body
    # The cookie is signed: the bare secret behind it is not accepted.
    [session_hash] = directory.sessions
    forged = await fetch(http_client, base_url, "/api/me", headers={"Cookie": f"chat_session={session_hash}"})
    problem(forged, 401, "unauthorized")


@pytest.mark.gen_test
async def test_the_sign_up_form_needs_the_xsrf_token(http_client, base_url, directory):
    body = f"name=alice&password={PASSWORD}"
    response = await fetch(http_client, base_url, "/signup", method="POST", body=body)
    assert response.code == 403
    assert await directory.accounts() == []


@pytest.mark.gen_test
async def test_sign_in_and_the_same_answer_for_a_wrong_name_or_password(http_client, base_url, signed_up):
    await signed_up("alice")
    browser = await Browser(http_client, base_url).start()
    wrong_password = await browser.form("/signin", name="alice", password="not the password")
    unknown_name = await browser.form("/signin", name="nobody", password=PASSWORD)
    assert wrong_password.code == unknown_name.code == 401
    assert b"wrong name or password" in wrong_password.body
    assert b"wrong name or password" in unknown_name.body
    assert not browser.session
    response = await browser.form("/signin", name="ALICE", password=PASSWORD)
    assert response.code == 302
    me = json.loads((await browser.api("GET", "/api/me")).body)
    assert me == {"name": "alice", "account": True, "admin": True, "guest": False}


@pytest.mark.gen_test
async def test_repeated_failures_are_throttled_with_429_and_retry_after(http_client, base_url, signed_up, clock):
    await signed_up("alice")
    browser = await Browser(http_client, base_url).start()
    for _ in range(5):
        assert (await browser.form("/signin", name="alice", password="wrong password")).code == 401
    throttled = await browser.form("/signin", name="alice", password=PASSWORD)  # even the right one
    assert throttled.code == 429
    assert throttled.headers["Retry-After"] == "1"
    clock.advance(1.0)
    assert (await browser.form("/signin", name="alice", password=PASSWORD)).code == 302


@pytest.mark.gen_test
async def test_sign_out_ends_the_session_and_closes_its_sockets(http_client, base_url, signed_up, sockets):
    browser = await signed_up("alice")
    secret_cookie = browser.session
    assert (await browser.api("GET", "/api/me")).code == 200
    response = await browser.form("/signout")
    assert response.code == 302
    assert len(sockets.ended) == 1
    browser.session = secret_cookie  # the old cookie, kept by someone
    problem(await browser.api("GET", "/api/me"), 401, "unauthorized")


@pytest.mark.gen_test
async def test_a_sign_up_error_is_shown_on_the_form(http_client, base_url, signed_up):
    await signed_up("alice")
    browser = await Browser(http_client, base_url).start()
    taken = await browser.form("/signup", name="ALICE", password=PASSWORD)
    assert taken.code == 409
    assert b'id="login-error"' in taken.body
    short = await browser.form("/signup", name="bob", password="short")
    assert short.code == 400
    assert b"at least 8" in short.body


@pytest.mark.gen_test
async def test_a_guest_may_not_take_an_accounts_name(http_client, base_url, signed_up):
    await signed_up("alice")
    response = await post_form(http_client, base_url, "/login", {"name": "Alice"})
    assert response.code == 409
    assert "chat_user" not in cookies_of(response)
    assert (await post_form(http_client, base_url, "/login", {"name": "bob"})).code == 302


@pytest.mark.gen_test
async def test_api_errors_carry_code_and_message(http_client, base_url, signed_up):
    problem(await api(http_client, base_url, "GET", "/api/me"), 401, "unauthorized")
    problem(await api(http_client, base_url, "GET", "/api/me", token="chat_nope"), 401, "unauthorized")
    problem(await api(http_client, base_url, "GET", "/api/tokens"), 401, "unauthorized")
    browser = await signed_up("alice")
    token = await new_token(browser)
    problem(await api(http_client, base_url, "POST", "/api/tokens", token, {"label": ""}), 400, "bad_request")
    problem(await api(http_client, base_url, "POST", "/api/tokens", token, body=[]), 400, "bad_json")
    problem(
        await api(http_client, base_url, "GET", "/api/rooms/~abcdefghijklmnopqrst/messages", token), 404, "not_found"
    )


@pytest.mark.gen_test
async def test_a_cookie_request_that_changes_something_needs_the_xsrf_header(http_client, base_url, signed_up):
    browser = await signed_up("alice")
    problem(await browser.api("POST", "/api/tokens", {"label": "x"}, xsrf=False), 403, "forbidden")
    assert json.loads((await browser.api("GET", "/api/tokens", xsrf=False)).body) == {"tokens": []}
    assert (await browser.api("POST", "/api/tokens", {"label": "x"})).code == 201


@pytest.mark.gen_test
async def test_a_token_is_shown_once_authenticates_and_is_revoked(http_client, base_url, signed_up, directory, sockets):
    browser = await signed_up("alice")
    response = await browser.api("POST", "/api/tokens", {"label": "backup"})
    created = json.loads(response.body)
    token, info = created["token"], created["info"]
    assert token.startswith("chat_")
    assert directory.token_hashes == [secrets.digest(token)]
    listed = json.loads((await browser.api("GET", "/api/tokens")).body)["tokens"]
    assert [t["id"] for t in listed] == [info["id"]]
    assert token not in json.dumps(listed)
    me = await api(http_client, base_url, "GET", "/api/me", token)
    assert json.loads(me.body)["name"] == "alice"
    # A Bearer request needs no XSRF token (no cookie is read for it).
    assert (await api(http_client, base_url, "POST", "/api/tokens", token, {"label": "second"})).code == 201
    gone = await api(http_client, base_url, "DELETE", f"/api/tokens/{info['id']}", token)
    assert gone.code == 204
    assert sockets.ended == [[f"token:{info['id']}"]]
    problem(await api(http_client, base_url, "GET", "/api/me", token), 401, "unauthorized")
    problem(await browser.api("DELETE", f"/api/tokens/{info['id']}"), 404, "not_found")


@pytest.mark.gen_test
async def test_an_idempotent_post_is_201_then_200_and_stored_once(http_client, base_url, signed_up, connect):
    watcher = await connect("watcher")
    await watcher.send(type="join", room="lobby")
    await watcher.recv_until("joined")
    token = await new_token(await signed_up("alice"))
    path = "/api/rooms/lobby/messages"
    first = await api(http_client, base_url, "POST", path, token, {"text": "hello"}, **{"Idempotency-Key": "k1"})
    assert first.code == 201, first.body
    again = await api(http_client, base_url, "POST", path, token, {"text": "hello"}, **{"Idempotency-Key": "k1"})
    assert again.code == 200
    assert json.loads(again.body) == json.loads(first.body)
    message = json.loads(first.body)["message"]
    assert (message["name"], message["text"], message["seq"]) == ("alice", "hello", 1)
    assert "guest" not in message
    live = await watcher.recv_until("message")
    assert live["text"] == "hello"
    third = await api(http_client, base_url, "POST", path, token, {"text": "again"})
    assert third.code == 201
    read = json.loads((await api(http_client, base_url, "GET", path, token)).body)["messages"]
    assert [m["text"] for m in read] == ["hello", "again"]


@pytest.mark.gen_test
async def test_posting_needs_an_account_and_may_not_be_banned(http_client, base_url, signed_up, directory):
    path = "/api/rooms/lobby/messages"
    problem(await api(http_client, base_url, "POST", path, body={"text": "hi"}), 401, "unauthorized")
    browser = await signed_up("alice")
    token = await new_token(browser)
    assert (await api(http_client, base_url, "POST", path, token, {"text": "hi"})).code == 201
    assert await directory.standing("lobby", 1) is Standing.MEMBER  # posting joined it durably
    await directory.set_standing("lobby", 1, Standing.BANNED, 0)
    problem(await api(http_client, base_url, "POST", path, token, {"text": "hi"}), 403, "forbidden")
    problem(await api(http_client, base_url, "POST", path, token, {"text": " "}), 403, "forbidden")
    await directory.set_standing("lobby", 1, Standing.MEMBER, 0)
    problem(await api(http_client, base_url, "POST", path, token, {"text": " "}), 400, "empty")


@pytest.mark.gen_test
async def test_a_private_room_is_not_found_to_outsiders(http_client, base_url, signed_up, directory):
    alice = await new_token(await signed_up("alice"))
    bob = await new_token(await signed_up("bob"))
    room = "~abcdefghijklmnopqrst"
    await directory.create_room(RoomInfo(room, Visibility.PRIVATE, RoomKind.ROOM, "plans"), {1: Standing.OWNER})
    path = f"/api/rooms/{room}/messages"
    assert (await api(http_client, base_url, "POST", path, alice, {"text": "secret"})).code == 201
    outsider = problem(await api(http_client, base_url, "GET", path, bob), 404, "not_found")
    unknown = problem(
        await api(http_client, base_url, "GET", "/api/rooms/~zzzzzzzzzzzzzzzzzzzz/messages", bob), 404, "not_found"
    )
    assert outsider == unknown  # never told apart
    problem(await api(http_client, base_url, "POST", path, bob, {"text": "hi"}), 404, "not_found")
    problem(await api(http_client, base_url, "GET", path), 404, "not_found")  # anonymous
    mine = json.loads((await api(http_client, base_url, "GET", "/api/rooms", alice)).body)["rooms"]
    theirs = json.loads((await api(http_client, base_url, "GET", "/api/rooms", bob)).body)["rooms"]
    assert [(r["room"], r["title"], r["visibility"], r["last_seq"]) for r in mine] == [(room, "plans", "private", 1)]
    assert theirs == []
    read = json.loads((await api(http_client, base_url, "GET", path, alice)).body)["messages"]
    assert [m["text"] for m in read] == ["secret"]


@pytest.mark.gen_test
async def test_the_room_list_shows_public_rooms_to_anyone_with_guests_on(http_client, base_url, signed_up):
    token = await new_token(await signed_up("alice"))
    await api(http_client, base_url, "POST", "/api/rooms/lobby/messages", token, {"text": "hi"})
    rooms = json.loads((await api(http_client, base_url, "GET", "/api/rooms")).body)["rooms"]
    assert rooms == [
        {"room": "lobby", "title": "lobby", "visibility": "public", "kind": "room", "members": 0, "last_seq": 1}
    ]


@pytest.mark.gen_test
@NO_GUESTS
async def test_no_guests_anonymous_callers_get_401_and_the_guest_login_403(http_client, base_url, signed_up, settings):
    problem(await api(http_client, base_url, "GET", "/api/rooms"), 401, "unauthorized")
    problem(await api(http_client, base_url, "GET", "/api/rooms/lobby/messages"), 401, "unauthorized")
    guest = await post_form(http_client, base_url, "/login", {"name": "bob"})
    assert guest.code == 403
    assert "chat_user" not in cookies_of(guest)
    token = await new_token(await signed_up("alice"))
    assert (await api(http_client, base_url, "GET", "/api/rooms", token)).code == 200


@pytest.mark.gen_test
async def test_a_password_change_keeps_this_page_and_ends_the_others(http_client, base_url, signed_up, sockets):
    here = await signed_up("alice")
    elsewhere = await Browser(http_client, base_url).start()
    await elsewhere.form("/signin", name="alice", password=PASSWORD)
    body = {"old": "wrong password", "new": "a new password"}
    problem(await here.api("POST", "/api/password", body), 401, "unauthorized")
    before = here.session
    response = await here.api("POST", "/api/password", {"old": PASSWORD, "new": "a new password"})
    assert response.code == 204
    assert here.session != before  # a fresh cookie
    assert (await here.api("GET", "/api/me")).code == 200
    problem(await elsewhere.api("GET", "/api/me"), 401, "unauthorized")
    assert len(sockets.ended) == 1  # the other session's sockets, not this page's


@pytest.mark.gen_test
async def test_admins_list_disable_and_invite(http_client, base_url, signed_up, sockets):
    admin = await signed_up("root")
    bob = await signed_up("bob")
    bob_token = await new_token(bob)
    problem(await bob.api("GET", "/api/admin/accounts"), 403, "forbidden")
    problem(await bob.api("POST", "/api/invites"), 403, "forbidden")
    problem(await api(http_client, base_url, "GET", "/api/admin/accounts"), 401, "unauthorized")
    listed = json.loads((await admin.api("GET", "/api/admin/accounts")).body)["accounts"]
    assert [(a["name"], a["admin"], a["disabled"]) for a in listed] == [("bob", False, False), ("root", True, False)]
    response = await admin.api("POST", "/api/admin/accounts/BOB", {"disabled": True})
    assert response.code == 200
    assert json.loads(response.body)["disabled"] is True
    assert sockets.disabled == [2]
    problem(await api(http_client, base_url, "GET", "/api/me", bob_token), 401, "unauthorized")
    problem(await bob.api("GET", "/api/me"), 401, "unauthorized")
    signin = await Browser(http_client, base_url).start()
    assert (await signin.form("/signin", name="bob", password=PASSWORD)).code == 403
    problem(await admin.api("POST", "/api/admin/accounts/ghost", {"disabled": True}), 404, "not_found")
    invite = await admin.api("POST", "/api/invites")
    assert invite.code == 201
    code = json.loads(invite.body)
    assert code["link"] == f"/signup?invite={code['code']}"


@pytest.mark.gen_test
@pytest.mark.parametrize("settings", [{"registration": "invite"}], indirect=True)
async def test_invite_registration_takes_a_single_use_link(http_client, base_url, signed_up, settings):
    admin = await signed_up("root")  # the first account needs no invite
    stranger = await Browser(http_client, base_url).start()
    assert (await stranger.form("/signup", name="bob", password=PASSWORD)).code == 403
    code = json.loads((await admin.api("POST", "/api/invites")).body)["code"]
    page = await fetch(http_client, base_url, f"/signup?invite={code}")
    assert page.code == 200
    assert (await stranger.form("/signup", name="bob", password=PASSWORD, invite=code)).code == 302
    other = await Browser(http_client, base_url).start()
    assert (await other.form("/signup", name="carol", password=PASSWORD, invite=code)).code == 403


@pytest.mark.gen_test
@pytest.mark.parametrize("settings", [{"registration": "closed"}], indirect=True)
async def test_closed_registration_refuses_the_form(http_client, base_url, directory, settings):
    browser = await Browser(http_client, base_url).start()
    response = await browser.form("/signup", name="root", password=PASSWORD)
    assert response.code == 403
    assert await directory.accounts() == []


@pytest.mark.gen_test
async def test_account_pages_are_for_accounts_and_admin_for_admins(http_client, base_url, signed_up):
    assert (await fetch(http_client, base_url, "/tokens")).headers["Location"] == "/"
    assert (await fetch(http_client, base_url, "/admin")).code == 404
    await signed_up("root")
    bob = await signed_up("bob")
    assert (await fetch(http_client, base_url, "/admin", headers={"Cookie": bob.cookie()})).code == 404


@pytest.mark.gen_test
async def test_a_directory_outage_answers_503(http_client, base_url, signed_up, directory):
    browser = await signed_up("alice")
    directory.down = True
    problem(await browser.api("GET", "/api/me"), 503, "unavailable")


@pytest.mark.gen_test
@pytest.mark.parametrize("settings", [{"rate": 0.5}], indirect=True)
async def test_posts_over_the_rate_wait_and_a_flood_gets_429(http_client, base_url, signed_up, app, settings):
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)  # the clock stands still: the debt grows with each post

    app.posts.sleep = sleep
    token = await new_token(await signed_up("alice"))
    path = "/api/rooms/lobby/messages"
    for _ in range(3):  # a burst of 1, then waits of 2 s and 4 s (rate 0.5/s)
        assert (await api(http_client, base_url, "POST", path, token, {"text": "hi"})).code == 201
    assert waited == [pytest.approx(2.0, abs=0.1), pytest.approx(4.0, abs=0.1)]
    flood = await api(http_client, base_url, "POST", path, token, {"text": "hi"})
    problem(flood, 429, "throttled")
    assert flood.headers["Retry-After"] == "1"
    read = json.loads((await api(http_client, base_url, "GET", path, token)).body)["messages"]
    assert len(read) == 3  # the refused one was not stored
