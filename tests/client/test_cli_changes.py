"""The command line's issue-13 side, in-process against the fake server: ``--tail`` prints
every event of the room as a JSON line; ``--edit``, ``--delete`` and ``--react`` change one message."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

import pytest
import tornado.web

from chat.client import ChatClient, cli
from chat.client.cli import (
    EXIT_OK,
    EXIT_REFUSED,
    build_parser,
    check_args,
    format_event,
    parse_args,
    presence_lines,
    run_cli,
)
from tests.client.fake_server import FakeChat, fake_app

TOKEN = "chat_scripter-token"
OTHER = "chat_other-token"
TIMEOUT_S = 10.0


@pytest.fixture
def chat() -> FakeChat:
    return FakeChat(tokens={TOKEN: "scripter", OTHER: "other"})


@pytest.fixture
def app(chat: FakeChat) -> tornado.web.Application:
    return fake_app(chat)


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


def settle(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args(parser, argv)
    check_args(parser, args, {"CHAT_TOKEN": TOKEN})
    return args


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.gen_test
async def test_tail_prints_every_event_of_the_room_as_a_json_line(chat, url, monkeypatch):
    printed_lines: asyncio.Queue[str] = asyncio.Queue()

    def capture(line: str, stream: TextIO) -> None:
        if stream is sys.stdout:
            printed_lines.put_nowait(line)

    monkeypatch.setattr(cli, "_print", capture)
    tail = asyncio.ensure_future(run_cli(settle([url, "--room", "ops", "--tail"])))
    try:
        await asyncio.wait_for(chat.wait_for(lambda: any(f["type"] == "join" for f in chat.received)), TIMEOUT_S)
        async with ChatClient(url, token=OTHER) as other:
            await other.join("ops")
            message = await other.say("ops", "helo")
            await other.edit("ops", message["seq"], "hello")
            await other.react("ops", message["seq"], "🎉")
            await other.delete("ops", message["seq"])
        # The tailing account marked the room read on another device.
        chat.socket_of("scripter").send(type="read", room="ops", seq=4, unread=0, mentions=0)
        chat.socket_of("scripter").send(type="presence", room="ops", name="other", event="leave")
        chat.socket_of("scripter").send(type="read", room="elsewhere", seq=9, unread=0, mentions=0)
        chat.socket_of("scripter").send(type="message", room="ops", seq=5, name="other", text="last", ts=0)
        printed = [json.loads(await asyncio.wait_for(printed_lines.get(), TIMEOUT_S)) for _ in range(6)]
    finally:
        tail.cancel()
    assert [(e["type"], e["seq"]) for e in printed] == [
        ("message", 1),
        ("edit", 2),
        ("reaction", 3),
        ("delete", 4),
        ("read", 4),
        ("message", 5),
    ]
    assert (printed[1]["text"], printed[2]["emoji"], printed[2]["on"]) == ("hello", "🎉", True)


@pytest.mark.gen_test
async def test_edit_delete_and_react_print_the_stored_event_and_exit_zero(chat, url, capsys):
    assert await run_cli(settle([url, "--room", "ops", "--send", "helo"])) == EXIT_OK
    assert await run_cli(settle([url, "--room", "ops", "--edit", "1", "--text", "hello"])) == EXIT_OK
    assert await run_cli(settle([url, "--room", "ops", "--react", "1", "--emoji", "👍"])) == EXIT_OK
    assert await run_cli(settle([url, "--room", "ops", "--delete", "1"])) == EXIT_OK
    printed = lines(capsys.readouterr().out)
    assert [(e["type"], e["seq"], e.get("target")) for e in printed] == [
        ("message", 1, None),
        ("edit", 2, 1),
        ("reaction", 3, 1),
        ("delete", 4, 1),
    ]
    assert (printed[1]["text"], printed[2]["emoji"]) == ("hello", "👍")


@pytest.mark.gen_test
async def test_an_edit_of_someone_elses_message_exits_two_with_the_servers_code(chat, url, capsys):
    async with ChatClient(url, token=OTHER) as other:
        await other.join("ops")
        await other.say("ops", "mine")
    status = await run_cli(settle([url, "--room", "ops", "--edit", "1", "--text", "yours now"]))
    assert status == EXIT_REFUSED
    assert "error: forbidden" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--edit", "3"], "--edit SEQ and --text go together"),
        (["--send", "hi", "--text", "x"], "--edit SEQ and --text go together"),
        (["--react", "3"], "--react SEQ and --emoji go together"),
    ],
)
def test_a_change_without_its_value_is_a_usage_error(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exited:
        settle(["ws://127.0.0.1:1/ws", "--room", "ops", *argv])
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_interactive_lines_for_changes_to_messages():
    assert format_event({"type": "edit", "name": "bo", "target": 3, "text": "fixed"}) == "* bo edited #3: fixed"
    assert format_event({"type": "delete", "name": "bo", "target": 3}) == "* bo deleted #3"
    assert format_event({"type": "reaction", "name": "bo", "target": 3, "emoji": "👍", "on": False}) == (
        "* bo took back 👍 on #3"
    )
    assert format_event({"type": "message", "name": "bo", "text": "hi"}) is None


def test_presence_lines_for_one_change_and_for_a_busy_rooms_changes_together():
    assert presence_lines({"type": "presence", "room": "ops", "event": "join", "name": "bo"}) == ["* bo joins ops"]
    together = {
        "type": "presence",
        "room": "ops",
        "changes": [{"event": "join", "name": "bo"}, {"event": "leave", "name": "al"}],
    }
    assert presence_lines(together) == ["* bo joins ops", "* al leaves ops"]
