"""``--spawn-server``: the chat server (``python -m chat.server.main``) as a child process, for one run.

It listens on a free port with a throwaway history file, no rate limit
(``--rate 0``: a load test's senders go far past a person's 20 frames a
second), no cap on sockets per client address (they all come from this
machine) and a fixed cookie secret (so it writes nothing under ``data/``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

# The folder that holds the ``chat`` package this process runs: a source
# checkout or site-packages. The child imports the same code from there.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
# Starting takes well under a second; allow for a loaded machine.
START_TIMEOUT_S = 30.0
# The server closes its sockets and exits within 5 s of SIGTERM; then it is killed.
STOP_TIMEOUT_S = 10.0
READY_LINE = "chat server on"


class ServerFailed(Exception):
    """The server did not start; the message holds the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def server_command() -> list[str]:
    """The command that starts the chat server under this interpreter, from a checkout or an install."""
    return [sys.executable, "-m", "chat.server.main"]


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with this process's ``chat`` package first on the child's import path.

    From a source checkout that is not installed, ``-m chat.server.main`` would
    otherwise find no ``chat`` (the child runs in a throwaway folder).
    """
    path = [str(PACKAGE_PARENT), *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**environ, "PYTHONPATH": os.pathsep.join(path)}


class SpawnedServer:
    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.extra_args = extra_args
        self.proc: asyncio.subprocess.Process | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=50)  # the end of its log, for errors
        self._dir = tempfile.mkdtemp(prefix="chat-loadtest-")
        self._drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> SpawnedServer:
        args = ["--port", str(self.port), "--db", str(Path(self._dir) / "chat.sqlite3"), "--rate", "0"]
        # Every client of a load test comes from one machine: no cap per address.
        args += ["--max-connections-per-ip", "0", "--cookie-secret", "loadtest", *self.extra_args]
        self.proc = await asyncio.create_subprocess_exec(
            *server_command(),
            *args,
            cwd=self._dir,
            env=server_env(os.environ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await self._wait_ready()
        except TimeoutError:
            await self.stop()
            raise ServerFailed("the server did not start in time:\n" + "".join(self.log)) from None
        # Keep reading its log, or a chatty server would block on a full pipe.
        self._drain = asyncio.create_task(self._read_log())
        return self

    async def _wait_ready(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                await self.proc.wait()
                self._cleanup()
                raise ServerFailed(f"the server exited with {self.proc.returncode}:\n" + "".join(self.log))
            self.log.append(line)
            if READY_LINE in line:
                return

    async def _read_log(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    async def stop(self) -> int | None:
        """SIGTERM, wait, kill if it hangs; its exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            await self._drain
        self._cleanup()
        return self.proc.returncode

    def _cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
