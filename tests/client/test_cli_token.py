"""The command line with a token (``--token`` or ``$CHAT_TOKEN``), in-process against the fake server."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest
import tornado.web

from chat.client.cli import EXIT_OK, EXIT_REFUSED, build_parser, check_args, parse_args, run_cli
from tests.client.fake_server import FakeChat, fake_app

TOKEN = "chat_scripter-token"
TIMEOUT_S = 10.0


@pytest.fixture
def chat() -> FakeChat:
    return FakeChat(tokens={TOKEN: "scripter", "chat_other": "other"})


@pytest.fixture
def app(chat: FakeChat) -> tornado.web.Application:
    return fake_app(chat)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def settle(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args(parser, argv)
    check_args(parser, args, env or {})
    return args


BASE = ["ws://127.0.0.1:1/ws", "--room", "ops", "--send", "hi"]


def test_the_token_flag_wins_over_the_environment():
    assert settle([*BASE, "--token", "chat_flag"], {"CHAT_TOKEN": "chat_env"}).token == "chat_flag"
    assert settle(BASE, {"CHAT_TOKEN": "chat_env"}).token == "chat_env"
    # An empty flag turns the variable off: a guest run in a shell that exports one.
    assert settle([*BASE, "--token", "", "--name", "bot"], {"CHAT_TOKEN": "chat_env"}).token is None
    assert settle([*BASE, "--name", "bot"], {"CHAT_TOKEN": ""}).token is None


def test_with_a_token_no_name_is_needed_and_without_one_it_is(capsys):
    assert settle([*BASE, "--token", "chat_x"]).name is None
    with pytest.raises(SystemExit) as exited:
        settle(BASE)
    assert exited.value.code == 2
    assert "--name is needed to chat as a guest" in capsys.readouterr().err


def test_a_session_with_a_token_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        settle([*BASE, "--session", "s"], {"CHAT_TOKEN": "chat_env"})
    assert exited.value.code == 2
    assert "--session resumes a guest" in capsys.readouterr().err


@pytest.mark.gen_test
async def test_send_with_a_token_signs_in_by_header_and_keeps_no_session_file(chat, url, capsys, config_home):
    status = await run_cli(settle([url, "--room", "ops", "--send", "deploy 1"], {"CHAT_TOKEN": TOKEN}))
    out, err = capsys.readouterr()
    assert status == EXIT_OK, err
    message = json.loads(out)
    assert (message["name"], message["text"], message["seq"]) == ("scripter", "deploy 1", 1)
    [dial] = chat.dials
    assert (dial.authorization, dial.query) == (f"Bearer {TOKEN}", {})
    assert not config_home.exists()


@pytest.mark.gen_test
async def test_twenty_sends_with_a_token_all_exit_zero(chat, url, capsys):
    for i in range(20):
        status = await run_cli(settle([url, "--token", TOKEN, "--room", "ops", "--send", f"deploy {i}"]))
        assert status == EXIT_OK, capsys.readouterr().err
    texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert texts == [f"deploy {i}" for i in range(20)]
    assert {d.authorization for d in chat.dials} == {f"Bearer {TOKEN}"}


@pytest.mark.gen_test
async def test_a_refused_token_exits_two_and_says_unauthorized(chat, url, capsys):
    status = await run_cli(settle([url, "--token", "chat_revoked", "--room", "ops", "--send", "hi"]))
    assert status == EXIT_REFUSED
    assert "error: unauthorized" in capsys.readouterr().err
    assert len(chat.dials) == 1
    assert not any(f["type"] == "say" for f in chat.received)


@pytest.mark.gen_test
async def test_tail_ends_with_exit_two_when_the_account_is_banned_from_the_room(chat, url, capsys):
    tail = asyncio.ensure_future(run_cli(settle([url, "--token", TOKEN, "--room", "ops", "--tail"])))
    await asyncio.wait_for(chat.wait_for(lambda: any(f["type"] == "join" for f in chat.received)), TIMEOUT_S)
    socket = chat.socket_of("scripter")
    socket.send(type="removed", room="elsewhere", reason="removed")  # another room: the tail goes on
    socket.send(type="message", room="ops", seq=1, name="bob", text="still here", ts=0)
    socket.send(type="removed", room="ops", reason="banned")
    assert await asyncio.wait_for(tail, TIMEOUT_S) == EXIT_REFUSED
    out, err = capsys.readouterr()
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["still here"]
    assert "error: banned: you were banned from ops" in err
