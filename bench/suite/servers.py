"""The servers the suite drives: how each is started, when it is ready, and how it is stopped."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .proc import descendants

# Every server runs from the repository root; logs and run reports go under bench/out/.
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
# A server gets this long to log its ready line; ours opens SQLite first.
START_TIMEOUT_S = 20.0
# And this long to exit on SIGTERM (it closes every socket first) before SIGKILL.
STOP_TIMEOUT_S = 15.0


@dataclasses.dataclass(frozen=True)
class ServerKind:
    key: str
    label: str
    ready: str  # a line holding this in the server's log means it accepts connections
    argv: Callable[[int, Path], list[str]]  # (port, scratch dir) -> command, run from the repo root
    ready_count: int = 1  # that many such lines: one per worker process
    fanout_only: bool = False  # runs in the burst and the fixed loads only


def _ours(port: int, scratch: Path) -> list[str]:
    return [
        *python(),
        "server.py",
        "--port",
        str(port),
        "--db",
        str(scratch / "chat.sqlite3"),
        "--rate",
        "0",
        "--cookie-secret",
        "bench",
        # The load tester's sockets come from 8 loopback addresses: the default cap of 1,000 sockets
        # per client address (a defence for real deployments) would refuse most of them.
        "--max-connections-per-ip",
        "0",
    ]


SERVERS: dict[str, ServerKind] = {
    "ours": ServerKind("ours", "ours (server.py)", "chat server on", _ours),
    "naive": ServerKind(
        "naive",
        "naive Tornado",
        "listening",
        lambda port, _scratch: [*python(), "bench/naive_tornado.py", "--port", str(port)],
    ),
    "websockets": ServerKind(
        "websockets",
        "websockets broadcast()",
        "listening",
        lambda port, _scratch: [*python(), "bench/websockets_broadcast.py", "--port", str(port)],
    ),
    # The floor: one bare sock.send(frame) per member, the frame built once. It runs in the burst and
    # the fixed loads only: it is there to show what fan-out itself costs, not memory or sockets held.
    "floor": ServerKind(
        "floor",
        "floor (bare send loop)",
        "listening",
        lambda port, _scratch: [*python(), "bench/floor.py", "--port", str(port)],
        fanout_only=True,
    ),
}


def python() -> list[str]:
    """This interpreter, as a path relative to the repo root when it lives there (shorter commands)."""
    exe = Path(sys.executable)
    try:
        return [str(exe.relative_to(ROOT))]
    except ValueError:
        return [str(exe)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class RunningServer:
    kind: ServerKind
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    log_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@contextmanager
def started(kind: ServerKind, tag: str) -> Iterator[RunningServer]:
    """Start ``kind`` on a free port with its log in bench/out/logs/; stop it afterwards."""
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{tag}-{kind.key}.log"
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch, log_path.open("wb") as log_file:
        port = free_port()
        command = kind.argv(port, Path(scratch))
        # The log goes to a file, not a pipe: a pipe nobody reads would stall a chatty server.
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        server = RunningServer(kind, proc, port, command, log_path)
        try:
            wait_ready(server)
            yield server
        finally:
            stop(proc)


def wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind.label} exited with {server.proc.returncode}: see {server.log_path}")
        if server.log_path.read_text(errors="replace").count(server.kind.ready) >= server.kind.ready_count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.kind.label} not ready after {START_TIMEOUT_S:.0f} s: see {server.log_path}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code.

    The SIGKILL goes to every process below it too: a supervisor killed alone would leave its
    workers running (and holding the port).
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            below = descendants(proc.pid)[1:]
            proc.kill()
            for pid in below:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    return proc.wait()


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """One of the redis scenario's server configurations: ours on SQLite alone, or on PostgreSQL with
    Redis, in N processes (``--workers``: more than one needs both, since issue 11)."""

    key: str
    label: str
    redis: bool
    workers: int
    postgres: bool = False  # history in a PostgreSQL database (its DSN given to argv); else SQLite
    what: str = ""  # the configuration in words, for the report
    # Ran before issue 11 (history in SQLite :memory: or in Redis streams): kept to render saved suites.
    legacy: bool = False

    def argv(self, redis_url: str, db: str = "") -> Callable[[int, Path], list[str]]:
        """The command, given Redis's URL and the PostgreSQL DSN (unused by a SQLite configuration)."""

        def command(port: int, scratch: Path) -> list[str]:
            if self.postgres:
                store = db
            elif self.legacy:
                store = ":memory:"  # as they ran: Redis there persisted nothing either (--save '')
            else:
                store = str(scratch / "chat.sqlite3")  # a file, as deployed: WAL, synchronous=NORMAL
            words = [*python(), "server.py", "--port", str(port), "--db", store, "--rate", "0"]
            words += ["--cookie-secret", "bench", "--max-connections-per-ip", "0"]
            if self.redis:
                words += ["--redis", redis_url]
            if self.workers > 1:
                words += ["--workers", str(self.workers)]
            return words

        return command

    def kind(self, redis_url: str, db: str = "") -> ServerKind:
        # Each worker logs the ready line; connections made before all are up would all go to the first.
        return ServerKind(self.key, self.label, "chat server on", self.argv(redis_url, db), ready_count=self.workers)


# Issue 11's three: one process on SQLite, one on PostgreSQL + Redis, two workers on PostgreSQL + Redis.
SCALE_CONFIGS: dict[str, ScaleConfig] = {
    c.key: c
    for c in (
        ScaleConfig(
            "sqlite", "1 process on SQLite", redis=False, workers=1,
            what="one process on SQLite (a file in a scratch directory: WAL, `synchronous=NORMAL`, the default)",
        ),
        ScaleConfig(
            "pg-redis", "1 process on PostgreSQL + Redis", redis=True, workers=1, postgres=True,
            what="one process on PostgreSQL with `--redis`",
        ),
        ScaleConfig(
            "pg-redis-2w", "2 workers on PostgreSQL + Redis", redis=True, workers=2, postgres=True,
            what="`--workers 2` on PostgreSQL with `--redis`",
        ),
    )
}  # fmt: skip
# What the redis scenario ran before issue 11, for rendering the suites saved then (--render).
LEGACY_SCALE_CONFIGS: dict[str, ScaleConfig] = {
    c.key: c
    for c in (
        ScaleConfig(
            "single", "1 process, no Redis", redis=False, workers=1, legacy=True,
            what="one process without Redis (history in SQLite `:memory:`)",
        ),
        ScaleConfig(
            "redis", "1 process + Redis", redis=True, workers=1, legacy=True,
            what="one process with `--redis` (history in Redis streams, as before issue 11)",
        ),
        ScaleConfig(
            "redis-2w", "2 workers + Redis", redis=True, workers=2, legacy=True,
            what="`--redis --workers 2` (history in Redis streams)",
        ),
    )
}  # fmt: skip
# Every configuration a saved suite may hold, the current ones first.
ALL_SCALE_CONFIGS: dict[str, ScaleConfig] = {**SCALE_CONFIGS, **LEGACY_SCALE_CONFIGS}
