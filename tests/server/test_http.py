"""HTTP: the page, login and logout with XSRF, the JSON API, health and headers."""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
import tornado.httpclient
from tornado.httpclient import HTTPRequest, HTTPResponse

from tests.support import Socket


async def fetch(http_client, base_url: str, path: str, **kwargs) -> HTTPResponse:
    return await http_client.fetch(base_url + path, raise_error=False, follow_redirects=False, **kwargs)


def cookies_of(response: HTTPResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return jar


async def xsrf_token(http_client, base_url: str) -> tuple[str, str]:
    """The login form's XSRF field and the matching ``_xsrf`` cookie."""
    page = await fetch(http_client, base_url, "/")
    field = re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode())
    assert field, "the login form carries an XSRF token"
    return field.group(1), cookies_of(page)["_xsrf"].value


async def post_form(http_client, base_url: str, path: str, form: dict[str, str], cookie: str = "") -> HTTPResponse:
    field, xsrf_cookie = await xsrf_token(http_client, base_url)
    return await fetch(
        http_client,
        base_url,
        path,
        method="POST",
        body=urlencode({**form, "_xsrf": field}),
        headers={"Cookie": "; ".join(filter(None, [cookie, f"_xsrf={xsrf_cookie}"]))},
    )


async def login(http_client, base_url: str, name: str, cookie: str = "") -> HTTPResponse:
    return await post_form(http_client, base_url, "/login", {"name": name}, cookie)


@pytest.mark.gen_test
async def test_the_page_without_login_shows_the_name_form(http_client, base_url):
    response = await fetch(http_client, base_url, "/")
    assert response.code == 200
    assert b'action="/login"' in response.body


@pytest.mark.gen_test
async def test_pages_carry_a_strict_csp_and_nosniff(http_client, base_url):
    response = await fetch(http_client, base_url, "/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.body.decode()  # no inline script


@pytest.mark.gen_test
async def test_login_sets_a_signed_httponly_samesite_cookie_and_redirects(http_client, base_url):
    response = await login(http_client, base_url, "alice")
    assert response.code == 302
    assert response.headers["Location"] == "/"
    header = next(h for h in response.headers.get_list("Set-Cookie") if h.startswith("chat_user="))
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Secure" not in header  # plain http
    value = cookies_of(response)["chat_user"].value
    page = await fetch(http_client, base_url, "/", headers={"Cookie": f"chat_user={value}"})
    assert b'data-name="alice"' in page.body


@pytest.mark.gen_test
async def test_login_without_the_xsrf_token_is_refused(http_client, base_url):
    response = await fetch(http_client, base_url, "/login", method="POST", body="name=alice")
    assert response.code == 403


@pytest.mark.gen_test
async def test_a_bad_name_is_shown_on_the_form(http_client, base_url):
    response = await login(http_client, base_url, " ")
    assert response.code == 400
    assert b'id="login-error"' in response.body


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["a\x00b", "\x00bob", "a\x1bb"])
async def test_a_name_with_a_control_character_is_refused_with_bad_name(http_client, base_url, name):
    # Tornado's get_body_argument turned these into "a b", "bob"...: logged in.
    response = await login(http_client, base_url, name)
    assert response.code == 400
    assert b'id="login-error"' in response.body
    assert b"control characters" in response.body
    assert b"\xef\xbf\xbd" in response.body  # shown again with U+FFFD in its place
    assert "chat_user" not in cookies_of(response)


@pytest.mark.gen_test
async def test_a_name_that_is_not_utf8_is_refused_with_bad_name(http_client, base_url):
    field, xsrf_cookie = await xsrf_token(http_client, base_url)
    response = await fetch(
        http_client,
        base_url,
        "/login",
        method="POST",
        body=f"name=b%FFb&_xsrf={field}",
        headers={"Cookie": f"_xsrf={xsrf_cookie}"},
    )
    assert response.code == 400
    assert b'id="login-error"' in response.body
    assert "chat_user" not in cookies_of(response)


@pytest.mark.gen_test
async def test_a_taken_name_is_shown_on_the_form(http_client, base_url, connect):
    await connect("alice")
    response = await login(http_client, base_url, "ALICE")
    assert response.code == 409
    assert b"in use" in response.body


@pytest.mark.gen_test
async def test_a_forged_cookie_is_ignored(http_client, base_url):
    page = await fetch(http_client, base_url, "/", headers={"Cookie": 'chat_user="{\\"name\\":\\"x\\"}"'})
    assert b'action="/login"' in page.body


@pytest.mark.gen_test
async def test_the_login_cookie_opens_a_socket_under_its_name(http_client, base_url, http_port, connect):
    response = await login(http_client, base_url, "alice")
    value = cookies_of(response)["chat_user"].value
    origin = f"http://127.0.0.1:{http_port}"
    request = HTTPRequest(f"ws://127.0.0.1:{http_port}/ws", headers={"Cookie": f"chat_user={value}", "Origin": origin})
    sock = await connect(url=request)
    assert sock.welcome["name"] == "alice"
    # A second login of the same person (same cookie) keeps the name.
    again = await login(http_client, base_url, "alice", cookie=f"chat_user={value}")
    assert again.code == 302


@pytest.mark.gen_test
async def test_cross_site_socket_hijacking_with_the_cookie_is_refused(http_client, base_url, http_port):
    response = await login(http_client, base_url, "alice")
    value = cookies_of(response)["chat_user"].value
    request = HTTPRequest(
        f"ws://127.0.0.1:{http_port}/ws",
        headers={"Cookie": f"chat_user={value}", "Origin": "https://evil.example"},
    )
    with pytest.raises(tornado.httpclient.HTTPClientError) as exc:
        await Socket.connect(request)
    assert exc.value.code == 403


@pytest.mark.gen_test
async def test_logout_clears_the_cookie_and_frees_the_name(http_client, base_url, connect):
    response = await login(http_client, base_url, "alice")
    cookie = f"chat_user={cookies_of(response)['chat_user'].value}"
    out = await post_form(http_client, base_url, "/logout", {}, cookie)
    assert out.code == 302
    assert any(h.startswith("chat_user=;") or 'chat_user=""' in h for h in out.headers.get_list("Set-Cookie"))
    other = await connect("alice")  # a different session may take the name now
    assert other.welcome["name"] == "alice"


@pytest.mark.gen_test
async def test_api_rooms_and_messages(http_client, base_url, connect):
    sock = await connect("alice")
    await sock.send(type="join", room="lobby")
    await sock.recv_until("joined")
    for i in range(5):
        await sock.send(type="say", room="lobby", text=f"m{i + 1}")
        await sock.recv_until("message")
    rooms = json.loads((await fetch(http_client, base_url, "/api/rooms")).body)
    # Rooms gained a title, visibility and kind with accounts (issue 12).
    assert rooms == {
        "rooms": [
            {"room": "lobby", "title": "lobby", "visibility": "public", "kind": "room", "members": 1, "last_seq": 5}
        ]
    }
    page = json.loads((await fetch(http_client, base_url, "/api/rooms/lobby/messages?before=5&limit=2")).body)
    assert [m["text"] for m in page["messages"]] == ["m3", "m4"]
    # A guest sent them: marked so (issue 12). Never the session or the ref.
    assert set(page["messages"][0]) == {"type", "room", "seq", "name", "text", "ts", "guest"}


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["?limit=x", "?before=-1", "?limit=0"])
async def test_api_messages_rejects_bad_parameters(http_client, base_url, query):
    response = await fetch(http_client, base_url, "/api/rooms/lobby/messages" + query)
    assert response.code == 400
    assert json.loads(response.body)["error"] == "bad_request"


@pytest.mark.gen_test
async def test_api_messages_rejects_a_bad_room(http_client, base_url):
    response = await fetch(http_client, base_url, "/api/rooms/No%20Way/messages")
    assert response.code == 400
    assert json.loads(response.body)["error"] == "bad_room"


@pytest.mark.gen_test
async def test_healthz_counts_connections_and_rooms(http_client, base_url, connect):
    sock = await connect("alice")
    await sock.send(type="join", room="lobby")
    await sock.recv_until("joined")
    response = await fetch(http_client, base_url, "/healthz")
    assert response.code == 200
    assert json.loads(response.body) == {"status": "ok", "connections": 1, "rooms": 1}


@pytest.mark.gen_test
@pytest.mark.parametrize(("path", "content_type"), [("/", "text/html"), ("/healthz", "application/json")])
async def test_head_answers_like_get_without_a_body(http_client, base_url, path, content_type):
    # Uptime checks use HEAD; it answered 405.
    got = await fetch(http_client, base_url, path)
    head = await fetch(http_client, base_url, path, method="HEAD")
    assert (head.code, got.code) == (200, 200)
    assert head.body == b""
    assert head.headers["Content-Type"].startswith(content_type)
    assert int(head.headers["Content-Length"]) == len(got.body) > 0
    assert head.headers["Content-Security-Policy"] == got.headers["Content-Security-Policy"]
