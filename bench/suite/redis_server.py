"""The redis and joinstorm scenarios' own redis-server, spoken to over a socket, and the harness's
``/metrics`` page that puts Redis's and PostgreSQL's figures beside the server's."""

from __future__ import annotations

import dataclasses
import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from .postgres_server import PostgresServer
from .proc import descendants, tree_cpu_seconds, tree_status_bytes
from .servers import OUT, START_TIMEOUT_S, free_port, stop

# Started by the harness on a free loopback port, nothing persisted.
REDIS_SERVER = "redis-server"
# Redis's own CPU use with nothing connected is measured over this long when it starts.
REDIS_IDLE_SAMPLE_S = 2.0


def redis_command(port: int, *args: str, timeout: float = 5.0) -> str:
    """One command to the Redis on 127.0.0.1:``port``; its simple, integer or bulk-string reply."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, sock.makefile("rb") as reader:
        sock.sendall(request.encode())
        line = reader.readline()
        kind, rest = line[:1], line[1:].strip().decode()
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            return "" if int(rest) < 0 else reader.read(int(rest) + 2)[:-2].decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest}")
        raise RuntimeError(f"redis: unexpected reply {line!r}")


def redis_info(port: int, section: str = "default") -> dict[str, str]:
    """``INFO`` as a dict: used_cpu_user, used_cpu_sys (getrusage, microsecond resolution), redis_version,
    and with section ``all`` cmdstat_publish (``calls=N,usec=...``)..."""
    info = {}
    for line in redis_command(port, "INFO", section).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key] = value.strip()
    return info


def command_calls(info: dict[str, str], command: str) -> int:
    """How often Redis ran ``command``, from ``INFO all``'s ``cmdstat_<command>:calls=N,...`` (0: never)."""
    stats = dict(part.partition("=")[::2] for part in info.get(f"cmdstat_{command}", "").split(",") if part)
    return int(stats.get("calls", 0))


@dataclasses.dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    version: str
    idle_cpu: float  # cores used with no client connected (its timers), measured at start

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_cpu(info: dict[str, str]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def idle_cpu(port: int, seconds: float = REDIS_IDLE_SAMPLE_S) -> float:
    """Cores a fresh Redis uses doing nothing: the floor under its CPU per message at low rates."""
    before = redis_cpu(redis_info(port))
    time.sleep(seconds)
    return (redis_cpu(redis_info(port)) - before) / seconds


@contextmanager
def redis_started(tag: str) -> Iterator[RedisServer]:
    """A redis-server of our own on a free loopback port that persists nothing; stopped afterwards."""
    exe = shutil.which(REDIS_SERVER)
    if exe is None:
        raise RuntimeError(f"{REDIS_SERVER} not found on PATH")
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{tag}-redis-server.log"
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as scratch, log_path.open("wb") as log_file:
        port = free_port()
        command = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", scratch]
        proc = subprocess.Popen(command, cwd=scratch, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{REDIS_SERVER} exited with {proc.returncode}: see {log_path}")
                try:
                    if redis_command(port, "PING") == "PONG":
                        break
                except (OSError, RuntimeError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{REDIS_SERVER} not ready: see {log_path}") from None
                time.sleep(0.05)
            yield RedisServer(proc, port, command, redis_info(port).get("redis_version", "?"), idle_cpu(port))
        finally:
            stop(proc)


class TreeMetrics:
    """A ``/metrics`` page of the harness's own, which the load tester scrapes (``--metrics-url``) just
    before sending starts and when the drain ends, in place of ``--server-pid``, so that Redis's
    figures come with the server's:

    - ``process_cpu_seconds_total``, ``process_resident_memory_bytes``: the server process and every
      process below it (its workers), from /proc;
    - ``process_redis_cpu_seconds_total``, ``process_redis_commands_total``,
      ``process_redis_publish_total``: redis-server's CPU (``used_cpu_user`` + ``used_cpu_sys``), the
      commands it ran (those run by Lua scripts included) and its PUBLISH calls, from ``INFO all``;
    - ``process_postgres_cpu_seconds_total``: the PostgreSQL cluster's processes (the postmaster and
      every process below it: the server's connections, the WAL writer, the checkpointer), from /proc;
      ``process_postgres_statements_total`` and ``process_postgres_appends_total``: the statements
      run in the step's database (each one round trip) and the ``chat_append`` calls among them (each
      one batch), from ``pg_stat_statements``, which counts each as it ends (the cumulative
      statistics of ``pg_stat_database`` reach other sessions up to a second or more late).

    The report's ``server.cpu_seconds`` is then the whole server's CPU over the send + drain window,
    and ``server.metrics_delta`` holds Redis's over the same window.
    """

    def __init__(self) -> None:
        self.server_pid: int | None = None
        self.redis_port: int | None = None
        self.postgres: PostgresServer | None = None
        self.database: str | None = None  # the step's PostgreSQL database
        page = self.page

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    body, status = page().encode(), 200
                except (OSError, RuntimeError, psycopg.Error) as exc:
                    body, status = f"{exc}\n".encode(), 503
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/metrics"

    def __enter__(self) -> TreeMetrics:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def page(self) -> str:
        lines = []
        if self.server_pid is not None:
            lines.append(f"process_cpu_seconds_total {tree_cpu_seconds(self.server_pid)!r}")
            lines.append(f"process_resident_memory_bytes {tree_status_bytes(self.server_pid, 'VmRSS')}")
            lines.append(f"process_server_processes {len(descendants(self.server_pid))}")
        if self.redis_port is not None:
            info = redis_info(self.redis_port, "all")
            lines.append(f"process_redis_cpu_seconds_total {redis_cpu(info)!r}")
            lines.append(f"process_redis_commands_total {info['total_commands_processed']}")
            lines.append(f"process_redis_publish_total {command_calls(info, 'publish')}")
        if self.postgres is not None and self.database is not None:
            lines.append(f"process_postgres_cpu_seconds_total {tree_cpu_seconds(self.postgres.pid)!r}")
            statements = self.postgres.statements(self.database)
            lines.append(f"process_postgres_statements_total {statements.calls}")
            lines.append(f"process_postgres_appends_total {statements.appends}")
        return "\n".join(lines) + "\n"
