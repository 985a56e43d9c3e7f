"""``python -m chat.client`` as a user runs it: a subprocess against the test server."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import stat
import sys
from pathlib import Path

import pytest
import tornado.testing

from chat.client import ChatClient, session_file

ROOT = Path(__file__).resolve().parents[2]
# A child interpreter starts and imports Tornado first: generous on a busy machine.
TIMEOUT_S = 20.0


@pytest.fixture
def url(http_server: object, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/ws"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The children keep their session files here, never in the real ~/.config, and run as guests."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    # A token in the developer's shell would make every guest run here an account's.
    monkeypatch.delenv("CHAT_TOKEN", raising=False)
    return home


async def start(*args: str, stdin: bool = False, umask: int = -1) -> asyncio.subprocess.Process:
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
        umask=umask,
    )


async def run(*args: str, stdin: str | None = None, umask: int = -1) -> tuple[int, str, str]:
    proc = await start(*args, stdin=stdin is not None, umask=umask)
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
async def test_a_session_token_that_starts_with_a_dash_is_passed_as_is(app, url):
    # The session id is base64url: one token in 64 starts with "-". argparse took
    # such a token for an option and exited 2 (usage error), so the tests that
    # pass a fresh token with --session failed one run in 64.
    session_id = "-dash-first-session-id"
    token = app.chat.signer.token(session_id)
    async with ChatClient(url, "carol", session=token) as carol:
        assert carol.session == token
        code, _, err = await run(url, "--name", "carol", "--session", token, "--room", "lobby", "--send", "-hi")
    assert code == 0, err
    [message] = await app.chat.store.after("lobby", 0, 10)
    assert (message.name, message.text, message.session) == ("carol", "-hi", session_id)


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
    for option in ("--name", "--token", "--room", "--send", "--tail", "--session"):
        assert option in out


@pytest.mark.gen_test(timeout=60)
async def test_a_url_that_is_not_a_chat_server_is_a_usage_error():
    code, _, err = await run("ftp://127.0.0.1/ws", "--name", "carol", "--room", "lobby", "--send", "hi")
    assert code == 2
    assert "not a ws://" in err
    assert "Traceback" not in err


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


# -- the session file: consecutive runs are one session ------------------------------


def kept_files(config_home: Path) -> list[Path]:
    folder = config_home / "chat" / "sessions"
    return sorted(folder.iterdir()) if folder.exists() else []


def kept_token(path: Path | None) -> str:
    assert path is not None
    return str(json.loads(path.read_text())["session"])


@pytest.mark.gen_test(timeout=240)
async def test_a_loop_of_sends_with_one_name_all_succeed_as_one_session(app, url):
    # Without the session file the second run exits 2 with name_taken: the first
    # run's session holds the name for 60 s after its socket closed.
    for i in range(20):
        code, out, err = await run(url, "--name", "scripter", "--room", "ops", "--send", f"deploy {i}")
        assert code == 0, f"run {i}: {err}"
        assert json.loads(out)["text"] == f"deploy {i}"
    messages = await app.chat.store.after("ops", 0, 100)
    assert [(m.seq, m.name, m.text) for m in messages] == [(i + 1, "scripter", f"deploy {i}") for i in range(20)]
    assert len({m.session for m in messages}) == 1


@pytest.mark.gen_test(timeout=240)
async def test_a_loop_of_sends_with_a_token_all_succeed_as_the_account(app, url, config_home, monkeypatch):
    account = await app.accounts.add_user("scripter", "correct horse battery")
    token, info = await app.accounts.create_token(account, "ci")
    monkeypatch.setenv("CHAT_TOKEN", token)  # as the README does: export CHAT_TOKEN=...
    for i in range(20):
        code, out, err = await run(url, "--room", "ops", "--send", f"deploy {i}")
        assert code == 0, f"run {i}: {err}"
        assert json.loads(out)["text"] == f"deploy {i}"
    messages = await app.chat.store.after("ops", 0, 100)
    assert [(m.seq, m.name, m.text, m.guest) for m in messages] == [
        (i + 1, "scripter", f"deploy {i}", False) for i in range(20)
    ]
    assert {m.session for m in messages} == {f"token:{info.id}"}  # the server's key for the token
    assert kept_files(config_home) == []  # a token needs no session file


@pytest.mark.gen_test(timeout=60)
async def test_a_revoked_token_exits_two_with_unauthorized(app, url):
    account = await app.accounts.add_user("scripter", "correct horse battery")
    token, info = await app.accounts.create_token(account, "ci")
    await app.accounts.revoke_token(account, info.id)
    code, out, err = await run(url, "--token", token, "--room", "ops", "--send", "hi")
    assert (code, out) == (2, "")
    assert "error: unauthorized" in err
    assert await stored(app, "ops") == []


@pytest.mark.gen_test(timeout=60)
async def test_the_session_file_is_private_from_creation(app, url, config_home):
    # Run with umask 0: were the file created with the default mode and
    # restricted afterwards, or the folders made with it, others could read them.
    code, _, err = await run(url, "--name", "scripter", "--room", "ops", "--send", "hi", umask=0)
    assert code == 0, err
    [path] = kept_files(config_home)
    assert path == session_file(url, "scripter")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    [message] = await app.chat.store.after("ops", 0, 10)
    assert app.chat.resolve_session(kept_token(path))[0] == message.session


@pytest.mark.gen_test(timeout=60)
async def test_the_session_flag_wins_over_the_file(app, url, config_home):
    async with ChatClient(url, "carol") as carol:
        assert carol.session is not None
        path = session_file(url, "carol")
        assert path is not None
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"session": "a token from another server"}))
        code, _, err = await run(url, "--name", "carol", "--room", "lobby", "--send", "kept token")
        assert (code, "name_taken" in err) == (2, True)  # the kept token is not carol's session
        code, _, err = await run(url, "--name", "carol", "--session", carol.session, "--room", "lobby", "--send", "hi")
        assert code == 0, err
        assert kept_token(path) == carol.session  # the next run without --session resumes it
        code, _, err = await run(url, "--name", "carol", "--room", "lobby", "--send", "again")
        assert code == 0, err
    assert await stored(app) == [("carol", "hi"), ("carol", "again")]


@pytest.mark.gen_test(timeout=60)
async def test_each_name_keeps_its_own_session(app, url, config_home):
    for name in ("scripter", "other"):
        code, _, err = await run(url, "--name", name, "--room", "ops", "--send", f"from {name}")
        assert code == 0, err
    files = kept_files(config_home)
    assert set(files) == {session_file(url, "scripter"), session_file(url, "other")}
    sessions = {m.name: m.session for m in await app.chat.store.after("ops", 0, 10)}
    assert {app.chat.resolve_session(kept_token(path))[0] for path in files} == set(sessions.values())
    assert len(set(sessions.values())) == 2


def test_the_session_file_is_per_server_and_per_name_as_the_server_compares_names(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    here = session_file("ws://127.0.0.1:8888/ws", "scripter", env)
    assert here is not None
    assert here.parent == tmp_path / "chat" / "sessions"
    # The same server written another way, the same name in another case: one file.
    assert session_file("http://127.0.0.1:8888", " Scripter ", env) == here
    assert session_file("ws://127.0.0.1:8888/ws?x=1", "SCRIPTER", env) == here
    others = {
        session_file("ws://127.0.0.1:8889/ws", "scripter", env),
        session_file("wss://127.0.0.1:8888/ws", "scripter", env),
        session_file("ws://chat.example:8888/ws", "scripter", env),
        session_file("ws://127.0.0.1:8888/ws", "scripter2", env),
    }
    assert here not in others
    assert len(others) == 4


def test_without_xdg_config_home_the_file_is_under_dot_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for env in ({}, {"XDG_CONFIG_HOME": ""}, {"XDG_CONFIG_HOME": "relative/dir"}):  # a relative one is ignored
        path = session_file("ws://127.0.0.1:8888/ws", "scripter", env)
        assert path is not None
        assert path.parent == tmp_path / ".config" / "chat" / "sessions"
