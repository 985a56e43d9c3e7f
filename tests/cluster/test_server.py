"""server.py as users run it: a child process, signals, restarts and kill -9."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys

import pytest
import tornado.httpserver

from chat.backends.schema import VERSION
from chat.server.options import parse_settings
from chat.server.serve import shut_down
from tests.support import REPO, ServerProcess, Socket


async def chat_socket(server: ServerProcess, name: str) -> Socket:
    sock = await Socket.connect(f"{server.url}?name={name}")
    assert (await sock.recv())["type"] == "welcome"
    await sock.send(type="join", room="lobby")
    await sock.recv_until("joined")
    return sock


@pytest.mark.gen_test(timeout=60)
async def test_sigterm_closes_every_socket_with_1001_and_exits_0(tmp_path):
    server = await ServerProcess("--db", str(tmp_path / "c.db"), "--cookie-secret", "s").start()
    alice = await chat_socket(server, "alice")
    bob = await chat_socket(server, "bob")
    await alice.send(type="say", room="lobby", text="before shutdown", ref="r")
    await bob.recv_until("message")
    assert await server.stop(signal.SIGTERM) == 0
    assert await alice.closed() == (1001, "server shutting down")
    assert (await bob.closed())[0] == 1001
    # History was flushed: a restarted server has the message and continues its seq.
    again = await ServerProcess("--db", str(tmp_path / "c.db"), "--cookie-secret", "s").start()
    try:
        carol = await Socket.connect(f"{again.url}?name=carol")
        await carol.recv()
        await carol.send(type="join", room="lobby")
        joined = await carol.recv_until("joined")
        assert [m["text"] for m in joined["history"]] == ["before shutdown"]
        carol.close()
    finally:
        await again.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_received_message_survives_kill_9(tmp_path):
    db = str(tmp_path / "c.db")
    server = await ServerProcess("--db", db, "--cookie-secret", "s").start()
    alice = await chat_socket(server, "alice")
    bob = await chat_socket(server, "bob")
    for i in range(20):
        await alice.send(type="say", room="lobby", text=f"m{i}")
    received = [await bob.recv_until("message") for _ in range(20)]
    assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
    alice.close()
    bob.close()
    again = await ServerProcess("--db", db, "--cookie-secret", "s").start()
    try:
        carol = await chat_socket(again, "carol")
        await carol.send(type="history", room="lobby", limit=200)
        history = await carol.recv_until("history")
        assert [m["seq"] for m in history["messages"]] == [m["seq"] for m in received] == list(range(1, 21))
        carol.close()
    finally:
        await again.stop()


@pytest.mark.gen_test(timeout=60)
async def test_options_come_from_the_environment_and_flags_win(tmp_path):
    server = ServerProcess(env={"CHAT_DB": str(tmp_path / "env.db"), "CHAT_COOKIE_SECRET": "s"})
    await server.start()
    await server.stop()
    assert (tmp_path / "env.db").exists()
    assert any(str(tmp_path / "env.db") in line for line in server.log)


def test_parse_settings_flag_beats_environment():
    settings = parse_settings(["--port", "9000"], {"CHAT_PORT": "7000", "CHAT_RATE": "5"})
    assert settings.port == 9000
    assert settings.rate == 5.0
    assert settings.burst == 10.0


def test_parse_settings_allow_origin_repeatable_and_from_env():
    flags = parse_settings(["--allow-origin", "https://A.example/", "--allow-origin", "https://b.example"], {})
    assert flags.allow_origin == ("https://a.example", "https://b.example")
    env = parse_settings([], {"CHAT_ALLOW_ORIGIN": "https://c.example, https://d.example"})
    assert env.allow_origin == ("https://c.example", "https://d.example")


def test_parse_settings_rejects_negative_values(capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--max-message-chars", "-1"], {})
    assert "--max-message-chars must not be negative" in capsys.readouterr().err


@pytest.mark.gen_test
async def test_help_lists_every_option():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--help", cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    for flag in [
        "--host",
        "--port",
        "--db",
        "--history-on-join",
        "--max-message-chars",
        "--max-frame-bytes",
        "--rate",
        "--max-rooms-per-connection",
        "--allow-origin",
        "--cookie-secret",
        "--log-level",
    ]:
        assert flag in out.decode()


class NeverClosing(tornado.httpserver.HTTPServer):
    """An HTTP connection that never finishes closing (a handler stuck in a request)."""

    async def close_all_connections(self) -> None:
        await asyncio.Event().wait()


@pytest.mark.gen_test
async def test_shutdown_gives_up_on_http_connections_that_never_close(app, caplog):
    # Before, the TimeoutError escaped: the worker died with a traceback and exit status 1.
    await shut_down(app, NeverClosing(app), grace=0.05)
    assert "HTTP connections did not close in time" in caplog.text


def test_the_supervisors_hold_keeps_the_port_and_takes_no_connection():
    import collections
    import socket

    import tornado.netutil

    from chat.server.supervise import hold_port

    held = hold_port("127.0.0.1", 0)
    port = held[0].getsockname()[1]
    listeners: list[socket.socket] = []
    clients: list[socket.socket] = []
    try:
        with pytest.raises(ConnectionRefusedError):  # bound, not listening: nobody is handed a connection
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # Each worker listens on a socket of its own on the held port, and the
        # kernel spreads connections over them by hash: not all to one.
        for _ in range(2):
            listeners += tornado.netutil.bind_sockets(port, "127.0.0.1", reuse_port=True)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
        accepted: collections.Counter[int] = collections.Counter()
        for i, listener in enumerate(listeners):
            while True:
                try:
                    listener.accept()[0].close()
                except BlockingIOError:
                    break
                accepted[i] += 1
        assert sum(accepted.values()) == 40  # every connection reached a listener, none the hold
        assert len(accepted) == 2, accepted
    finally:
        for sock in [*held, *listeners, *clients]:
            sock.close()


async def refused_start(*args: str) -> tuple[int, str]:
    """Run server.py with ``args``, which must not get as far as listening: (exit status, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "server.py",
        "--port",
        "0",
        "--cookie-secret",
        "s",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.gen_test(timeout=90)
async def test_a_sqlite_file_written_by_a_newer_server_stops_the_start_with_status_2(tmp_path):
    path = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.close()
    code, err = await refused_start("--db", str(path))
    assert code == 2
    assert f"server.py: cannot start: {path} has history schema version {VERSION + 1}, newer than" in err
    assert "Traceback" not in err


@pytest.mark.gen_test(timeout=90)
async def test_a_newer_postgresql_database_stops_one_process_and_every_worker_with_status_2(postgres_dsn, redis_url):
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", VERSION + 1)
    finally:
        await conn.close()
    said = f"cannot start: the PostgreSQL database has history schema version {VERSION + 1}, newer than"
    code, err = await refused_start("--db", postgres_dsn)
    assert (code, said in err, "Traceback" in err) == (2, True, False), err
    # Workers refuse the same way, and the supervisor stops rather than restarting them.
    code, err = await refused_start("--db", postgres_dsn, "--redis", redis_url, "--workers", "2")
    assert (code, said in err, "Traceback" in err, "starting it again" in err) == (2, True, False, False), err


def test_the_startup_line_names_the_store_and_the_broker_without_passwords():
    from chat.server.options import Settings
    from chat.server.serve import backends, masked

    assert backends(Settings(db="data/chat.sqlite3")) == "history: SQLite data/chat.sqlite3; broker: in-process"
    shared = Settings(db="postgresql://chat:s3cret@db:5432/chat", redis="redis://:pw@cache:6379/0", workers=4)
    assert backends(shared) == (
        "history: PostgreSQL postgresql://chat:***@db:5432/chat; broker: Redis redis://:***@cache:6379/0"
    )
    assert masked("postgresql://chat@db/chat?password=s3cret&sslmode=require") == (
        "postgresql://chat@db/chat?password=***&sslmode=require"
    )
    assert masked("postgresql://chat@db/chat") == "postgresql://chat@db/chat"
