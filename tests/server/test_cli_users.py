"""`server.py users ...` and `server.py tokens ...`: accounts made and tokens printed on the
command line work on the server (in this process: manage() runs in a thread, as its own asyncio.run)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator

import pytest
import tornado.ioloop
from argon2 import PasswordHasher, profiles

from chat.backends.sqlite import SQLiteHistory
from chat.core.passwords import Passwords
from chat.server.app import ChatApplication, make_app
from chat.server.main import main, manage
from chat.server.options import Settings
from tests.server.test_http import fetch
from tests.server.test_http_accounts import Browser
from tests.support import FakeClock
from tests.support.fake_directory import FakeDirectory

CHEAP = Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST))
PASSWORD = "a long enough password"


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def app(
    settings: Settings, io_loop: tornado.ioloop.IOLoop, clock: FakeClock, directory: FakeDirectory
) -> Iterator[ChatApplication]:
    application = make_app(settings, clock=clock, directory=directory, passwords=CHEAP)
    io_loop.run_sync(application.chat.start)
    yield application
    io_loop.run_sync(application.chat.stop)


async def run(directory: FakeDirectory, *argv: str, stdin: str = "") -> tuple[int, str]:
    """Run the command in a thread (it runs its own event loop); its status and stdout."""
    out = io.StringIO()
    status = await asyncio.to_thread(
        manage, list(argv), {}, directory=directory, passwords=CHEAP, stdin=io.StringIO(stdin), stdout=out
    )
    return status, out.getvalue()


@pytest.mark.gen_test
async def test_users_add_reads_the_password_from_stdin_and_the_account_signs_in(http_client, base_url, directory):
    status, _ = await run(directory, "users", "add", "root", "--password-stdin", stdin=PASSWORD + "\n")
    assert status == 0
    status, _ = await run(directory, "users", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    assert status == 0
    browser = await Browser(http_client, base_url).start()
    assert (await browser.form("/signin", name="bob", password=PASSWORD)).code == 302
    me = json.loads((await browser.api("GET", "/api/me")).body)
    assert me == {"name": "bob", "account": True, "admin": False, "guest": False}
    status, listing = await run(directory, "users", "list")
    assert listing.splitlines() == ["2\tbob", "1\troot\tadmin"]


@pytest.mark.gen_test
async def test_users_add_refuses_a_short_password_and_a_taken_name(directory, capsys):
    assert (await run(directory, "users", "add", "bob", "--password-stdin", stdin="short\n"))[0] == 1
    assert "at least 8" in capsys.readouterr().err
    assert (await run(directory, "users", "add", "bob", "--password-stdin", stdin=PASSWORD))[0] == 0
    assert (await run(directory, "users", "add", "BOB", "--password-stdin", stdin=PASSWORD))[0] == 1
    assert "taken" in capsys.readouterr().err


@pytest.mark.gen_test
async def test_tokens_create_prints_only_the_token_and_it_authenticates(http_client, base_url, directory, capsys):
    await run(directory, "users", "add", "alice", "--password-stdin", stdin=PASSWORD)
    status, printed = await run(directory, "tokens", "create", "alice", "--label", "backup")
    assert status == 0
    [token] = printed.splitlines()  # nothing else on stdout
    assert token.startswith("chat_")
    assert token not in capsys.readouterr().err
    me = await fetch(http_client, base_url, "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert json.loads(me.body)["name"] == "alice"
    status, listing = await run(directory, "tokens", "list", "alice")
    assert token not in listing
    assert listing.startswith("1\tbackup\tactive")
    assert (await run(directory, "tokens", "revoke", "alice", "1"))[0] == 0
    revoked = await fetch(http_client, base_url, "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.code == 401
    assert (await run(directory, "tokens", "revoke", "alice", "1"))[0] == 1  # once
    assert (await run(directory, "tokens", "create", "nobody", "--label", "x"))[0] == 1


@pytest.mark.gen_test
async def test_users_disable_refuses_the_accounts_tokens_and_enable_restores_them(http_client, base_url, directory):
    await run(directory, "users", "add", "alice", "--password-stdin", stdin=PASSWORD)
    _, printed = await run(directory, "tokens", "create", "alice", "--label", "x")
    auth = {"Authorization": f"Bearer {printed.strip()}"}
    assert (await run(directory, "users", "disable", "alice"))[0] == 0
    assert (await fetch(http_client, base_url, "/api/me", headers=auth)).code == 401
    assert (await run(directory, "users", "enable", "ALICE"))[0] == 0
    assert (await fetch(http_client, base_url, "/api/me", headers=auth)).code == 200
    assert (await run(directory, "users", "disable", "ghost"))[0] == 1


def test_the_server_command_without_a_subcommand_still_parses_server_options(monkeypatch):
    served: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        served.append(settings)

    monkeypatch.setattr("chat.server.main.serve", fake_serve)
    assert main(["--port", "0", "--no-guests", "--registration", "invite"]) == 0
    assert (served[0].port, served[0].guests, served[0].registration) == (0, False, "invite")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path) -> str:
    """The server's --db on either engine (a fresh database)."""
    if not hasattr(SQLiteHistory, "directory"):
        pytest.skip("needs the stores' directory() (store helper)")
    if request.param == "postgres":
        return request.getfixturevalue("postgres_dsn")
    return str(tmp_path / "chat.sqlite3")


def test_users_add_then_tokens_create_on_the_servers_database(db):
    status = manage(["users", "add", "root", "--password-stdin", "--db", db], {}, stdin=io.StringIO(PASSWORD))
    assert status == 0
    out = io.StringIO()
    assert manage(["tokens", "create", "root", "--label", "x", "--db", db], {}, stdout=out) == 0
    assert out.getvalue().startswith("chat_")
    out = io.StringIO()
    assert manage(["users", "list"], {"CHAT_DB": db}, stdout=out) == 0
    assert out.getvalue() == "1\troot\tadmin\n"


@pytest.mark.gen_test
async def test_with_redis_disabling_tells_every_server_on_the_control_channel(directory, redis_url):
    from chat.backends.redis import keys
    from chat.backends.redis.connection import connect
    from chat.backends.redis.subscription import CONTROL_PREFIX

    await run(directory, "users", "add", "alice", "--password-stdin", stdin=PASSWORD)
    await run(directory, "users", "add", "bob", "--password-stdin", stdin=PASSWORD)
    await directory.create_session("a-session-hash", 2, 0)
    client = connect(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.CTL)
    try:
        assert (await run(directory, "users", "disable", "bob", "--redis", redis_url))[0] == 0

        async def published() -> list[dict[str, object]]:
            events = []
            async for message in pubsub.listen():
                if message["type"] == "message":
                    assert message["data"].startswith(CONTROL_PREFIX)
                    events.append(json.loads(message["data"][len(CONTROL_PREFIX) :])["event"])
                    return events
            return events

        events = await asyncio.wait_for(published(), 10)
        # One event closes every socket of the account, its sessions' too (as "account_disabled").
        assert events == [{"t": "disable", "account": 2}]
        assert "a-session-hash" not in directory.sessions
    finally:
        await pubsub.aclose()
        await client.aclose()
