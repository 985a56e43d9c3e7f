"""``python -m chat.client`` as a user runs it: a subprocess against the test server."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import pytest
import tornado.testing

from chat.client import ChatClient

ROOT = Path(__file__).resolve().parent.parent
# A child interpreter starts and imports Tornado first: generous on a busy machine.
TIMEOUT_S = 20.0


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


async def start(*args: str, stdin: bool = False) -> asyncio.subprocess.Process:
    # asyncio's subprocess API keeps the test's loop, and so the server, running.
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat.client",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await start(*args, stdin=stdin is not None)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), TIMEOUT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def stored(app, room: str = "lobby") -> list[tuple[str, str]]:
    return [(m.name, m.text) for m in await app.chat.store.after(room, 0, 100)]


@pytest.mark.gen_test(timeout=60)
async def test_send_exits_zero_once_the_message_is_stored(app, url):
    code, out, err = await run(url, "--name", "carol", "--room", "lobby", "--send", "hello from the shell")
    assert code == 0, err
    message = json.loads(out)
    assert (message["seq"], message["name"], message["text"]) == (1, "carol", "hello from the shell")
    assert await stored(app) == [("carol", "hello from the shell")]


@pytest.mark.gen_test(timeout=60)
async def test_send_with_a_server_error_exits_two_and_prints_it(app, url):
    code, out, err = await run(url, "--name", "carol", "--room", "lobby", "--send", "x" * 4001)
    assert code == 2
    assert "too_long" in err
    assert out == ""
    assert await stored(app) == []


@pytest.mark.gen_test(timeout=60)
async def test_send_with_a_taken_name_exits_two(app, url):
    async with ChatClient(url, "carol"):
        code, _, err = await run(url, "--name", "carol", "--room", "lobby", "--send", "hi")
    assert code == 2
    assert "name_taken" in err
    assert await stored(app) == []


@pytest.mark.gen_test(timeout=60)
async def test_send_with_the_session_token_shares_the_name(app, url):
    async with ChatClient(url, "carol") as carol:
        assert carol.session is not None
        code, _, err = await run(url, "--name", "carol", "--session", carol.session, "--room", "lobby", "--send", "hi")
    assert code == 0, err
    assert await stored(app) == [("carol", "hi")]


@pytest.mark.gen_test(timeout=60)
async def test_send_to_an_unreachable_server_exits_one():
    sock, port = tornado.testing.bind_unused_port()
    sock.close()  # nothing listens there now
    code, _, err = await run(f"ws://127.0.0.1:{port}/ws", "--name", "carol", "--room", "lobby", "--send", "hi")
    assert code == 1
    assert "cannot reach" in err


@pytest.mark.gen_test(timeout=60)
async def test_tail_prints_each_message_as_a_json_line_until_interrupted(url):
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        proc = await start(url, "--name", "tailer", "--room", "lobby", "--tail")
        try:
            while True:  # the tail has joined once alice sees its presence
                event = await asyncio.wait_for(alice.__anext__(), TIMEOUT_S)
                if event["type"] == "presence" and event["name"] == "tailer":
                    break
            for i in range(3):
                await alice.say("lobby", f"line {i}\nwith a break")
            assert proc.stdout is not None
            lines = [await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S) for _ in range(3)]
            frames = [json.loads(line) for line in lines]
            assert [(f["type"], f["seq"], f["name"], f["text"]) for f in frames] == [
                ("message", i + 1, "alice", f"line {i}\nwith a break") for i in range(3)
            ]
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err


@pytest.mark.gen_test(timeout=60)
async def test_interactive_sends_stdin_lines_and_prints_messages(app, url):
    async with ChatClient(url, "bob") as bob:
        await bob.join("lobby")
        await bob.say("lobby", "hi from bob")
        code, out, err = await run(url, "--name", "carol", "--room", "lobby", stdin="hello\n\nsecond line\n")
    assert code == 0, err
    lines = out.splitlines()
    assert [re.sub(r"^\[\d\d:\d\d\] ", "", line) for line in lines] == [
        "bob: hi from bob",  # the room's recent history, then the live messages
        "carol: hello",
        "carol: second line",
    ]
    assert all(re.match(r"^\[\d\d:\d\d\] ", line) for line in lines)
    assert await stored(app) == [("bob", "hi from bob"), ("carol", "hello"), ("carol", "second line")]


@pytest.mark.gen_test(timeout=60)
async def test_interactive_reports_a_refused_line_and_goes_on(app, url):
    code, _, err = await run(url, "--name", "carol", "--room", "lobby", stdin="x" * 4001 + "\nok\n")
    assert code == 0, err
    assert "too_long" in err
    assert await stored(app) == [("carol", "ok")]


@pytest.mark.gen_test(timeout=60)
async def test_help_describes_the_modes():
    code, out, _ = await run("--help")
    assert code == 0
    for option in ("--name", "--room", "--send", "--tail", "--session"):
        assert option in out


@pytest.mark.gen_test(timeout=60)
async def test_tail_since_prints_the_earlier_messages_first(url):
    async with ChatClient(url, "alice") as alice:
        await alice.join("lobby")
        for text in ("old 1", "old 2"):
            await alice.say("lobby", text)
        proc = await start(url, "--name", "tailer", "--room", "lobby", "--tail", "--since", "0")
        try:
            assert proc.stdout is not None
            lines = [await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S) for _ in range(2)]
            assert [json.loads(line)["text"] for line in lines] == ["old 1", "old 2"]
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 130
