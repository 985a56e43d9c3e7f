"""TLS: https and wss with --certfile/--keyfile, and clients that trust a CA file."""

from __future__ import annotations

import re
import ssl
from urllib.parse import urlencode

import pytest
import tornado.httpclient
import trustme

from chat.client import ChatClient
from tests.support import Socket


@pytest.fixture
def tls_files(tmp_path) -> dict[str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(files["cert"]), append=True)
    return {k: str(v) for k, v in files.items()}


def trusting(cafile: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile)
    return context


@pytest.mark.gen_test
async def test_wss_serves_the_protocol(served, tls_files):
    _, port = served(certfile=tls_files["cert"], keyfile=tls_files["key"])
    request = tornado.httpclient.HTTPRequest(
        f"wss://127.0.0.1:{port}/ws?name=alice", ssl_options=trusting(tls_files["ca"])
    )
    sock = await Socket.connect(request)
    try:
        assert (await sock.recv())["type"] == "welcome"
        await sock.send(type="join", room="lobby")
        assert (await sock.recv_until("joined"))["room"] == "lobby"
    finally:
        sock.close()


@pytest.mark.gen_test
async def test_an_untrusted_certificate_is_refused_by_the_client(served, tls_files):
    _, port = served(certfile=tls_files["cert"], keyfile=tls_files["key"])
    with pytest.raises(ssl.SSLError):
        await Socket.connect(f"wss://127.0.0.1:{port}/ws?name=alice")


@pytest.mark.gen_test
async def test_chat_client_with_cafile_chats_over_wss(served, tls_files):
    _, port = served(certfile=tls_files["cert"], keyfile=tls_files["key"])
    async with ChatClient(f"wss://127.0.0.1:{port}/ws", name="bot", cafile=tls_files["ca"]) as client:
        await client.join("lobby")
        message = await client.say("lobby", "over tls")
        assert message["seq"] == 1


@pytest.mark.gen_test
async def test_cookies_are_secure_under_tls(served, tls_files):
    _, port = served(certfile=tls_files["cert"], keyfile=tls_files["key"])
    client = tornado.httpclient.AsyncHTTPClient()
    base = f"https://127.0.0.1:{port}"
    page = await client.fetch(base + "/", ssl_options=trusting(tls_files["ca"]))
    xsrf_header = next(h for h in page.headers.get_list("Set-Cookie") if h.startswith("_xsrf="))
    assert "Secure" in xsrf_header
    assert "HttpOnly" in xsrf_header
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode())
    assert token
    response = await client.fetch(
        base + "/login",
        method="POST",
        body=urlencode({"name": "alice", "_xsrf": token.group(1)}),
        headers={"Cookie": xsrf_header.split(";")[0]},
        follow_redirects=False,
        raise_error=False,
        ssl_options=trusting(tls_files["ca"]),
    )
    assert response.code == 302
    login = next(h for h in response.headers.get_list("Set-Cookie") if h.startswith("chat_user="))
    assert "Secure" in login
    assert "HttpOnly" in login
    assert "SameSite=Lax" in login
