from __future__ import annotations

import _posixsubprocess  # type: ignore[import-not-found]
import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
from tornado.httpclient import HTTPRequest

from chat.server.app import ChatApplication, make_app
from chat.server.options import Settings
from chat.server.serve import make_server
from tests.support import FakeClock, RedisServer, Socket

# The PostgreSQL fixtures (a throwaway cluster per session, a fresh database per test).
pytest_plugins = ["tests.support.pg_fixtures"]

TESTS = Path(__file__).resolve().parent
# What each test needs beyond this process, by folder or file (the test files
# stay free of it). `make test-fast` deselects these three markers; a test
# that needs Redis is found by the fixtures it asks for, or a "redis" parameter.
NEEDS: dict[str, str] = {
    "browser": "browser",
    "cluster": "subprocess",
    "client/test_client_cli.py": "subprocess",
    "loadtest/test_bench_baselines.py": "subprocess",
    # The report describes the machine it renders on (it runs nproc).
    "loadtest/test_bench_render.py": "subprocess",
    "loadtest/test_loadtest_e2e.py": "subprocess",
}
REDIS_FIXTURES = {"redis_url", "redis_server"}
POSTGRES_FIXTURES = {"postgres", "postgres_dsn"}
OUTSIDE = ("browser", "redis", "postgres", "subprocess")  # the markers that leave this process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(TESTS).as_posix()
        for prefix, marker in NEEDS.items():
            if where == prefix or where.startswith(prefix + "/"):
                item.add_marker(marker)
        callspec = getattr(item, "callspec", None)
        # A back-end parametrized as "redis" or "postgres" asks for its server only inside its fixture.
        params = list(callspec.params.values()) if callspec is not None else []
        fixtures = set(getattr(item, "fixturenames", ()))
        if any(value == "redis" for value in params) or REDIS_FIXTURES & fixtures:
            item.add_marker("redis")
        if any(value == "postgres" for value in params) or POSTGRES_FIXTURES & fixtures:
            item.add_marker("postgres")


@pytest.fixture(autouse=True)
def _stays_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked as leaving this process cannot start another one.

    So `make test-fast` (the tests with none of the OUTSIDE markers) is honest:
    a test that spawns a child without its marker fails here, in every run,
    rather than slowing the fast tier down. Every way to start a child
    (subprocess, asyncio, multiprocessing, fork) goes through one of these.
    """
    if any(request.node.get_closest_marker(marker) for marker in OUTSIDE):
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it (tests/conftest.py NEEDS) as subprocess")

    monkeypatch.setattr(_posixsubprocess, "fork_exec", refuse)  # multiprocessing's way
    monkeypatch.setattr(subprocess, "_fork_exec", refuse, raising=False)  # subprocess's own reference
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)


@pytest.fixture
def io_loop() -> Iterator[tornado.ioloop.IOLoop]:
    # pytest-tornado's own fixture leaves an asyncio loop behind, which
    # "warnings are errors" turns into failures.
    loop = tornado.ioloop.IOLoop(make_current=False)
    asyncio.set_event_loop(loop.asyncio_loop)
    yield loop
    # As asyncio.run() does before it closes its loop: one more turn of the loop,
    # so transports a teardown closed (a cancelled Redis command's connection is
    # closed without waiting) really close their sockets. Skipped, the sockets
    # leak, and a ResourceWarning fails whichever later test the GC runs in.
    loop.run_sync(loop.asyncio_loop.shutdown_asyncgens)
    asyncio.set_event_loop(None)
    loop.close(all_fds=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(db=str(tmp_path / "chat.sqlite3"), cookie_secret="test-secret", ping_interval=0)


@pytest.fixture
def app(settings: Settings, io_loop: tornado.ioloop.IOLoop, clock: FakeClock) -> Iterator[ChatApplication]:
    application = make_app(settings, clock=clock)
    io_loop.run_sync(application.chat.start)
    yield application
    io_loop.run_sync(application.chat.stop)


@pytest.fixture
def ws_url(http_port: int) -> Callable[..., str]:
    def url(name: str | None = "alice", **query: str) -> str:
        from urllib.parse import urlencode

        params = dict(query)
        if name is not None:
            params["name"] = name
        return f"ws://127.0.0.1:{http_port}/ws?{urlencode(params)}"

    return url


@pytest.fixture
def connect(http_server: object, ws_url: Callable[..., str]) -> Iterator[Callable[..., Awaitable[Socket]]]:
    """Open a socket as ``name`` and read its welcome (kept on ``socket.welcome``).

    With ``welcome=False`` the first frame is left unread. Every socket is
    closed at the end of the test: tornado warns about unclosed ones.
    """
    opened: list[Socket] = []

    async def open_socket(
        name: str | None = "alice", *, url: str | HTTPRequest | None = None, welcome: bool = True, **query: str
    ) -> Socket:
        sock = await Socket.connect(url or ws_url(name, **query))
        opened.append(sock)
        if welcome:
            first = await sock.recv()
            assert first["type"] == "welcome", first
            sock.welcome = first
        return sock

    yield open_socket
    for sock in opened:
        sock.close()


@pytest.fixture
def served(settings: Settings, io_loop) -> Iterator[Callable[..., tuple[ChatApplication, int]]]:
    """Start apps behind server.make_server (the real server's limits and TLS):
    ``app, port = served(**settings_changes)``."""
    running: list[tuple[ChatApplication, tornado.httpserver.HTTPServer]] = []

    def start(**changes: object) -> tuple[ChatApplication, int]:
        configured = replace(settings, **changes)  # type: ignore[arg-type]
        app = make_app(configured)
        server = make_server(app, configured)
        [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets([sock])
        running.append((app, server))
        return app, sock.getsockname()[1]

    yield start

    async def stop_all() -> None:
        for app, server in running:
            server.stop()
            await server.close_all_connections()
            await app.chat.stop()

    io_loop.run_sync(stop_all)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the test session, started on first use."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url
