"""The redis and joinstorm scenarios' own PostgreSQL: a throwaway cluster, a fresh database per step, and
the figures the harness reads from it (its statements, from ``pg_stat_statements``).

Made the way tests/support/postgres.py makes the tests' (the bench cannot import ``tests``): Debian's
binaries (on PATH, or the newest /usr/lib/postgresql/*/bin), ``initdb`` in a temporary directory, a
free loopback port, and as root the ``postgres`` user (``initdb`` refuses to run as root). Unlike the
tests' cluster, this one keeps PostgreSQL's durability on (``fsync``, ``synchronous_commit`` and
``full_page_writes`` at their defaults): every commit waits for its WAL to reach the disk, as in a
real deployment, so the bench measures what a batch costs there. ``pg_stat_statements`` is loaded to
count the statements (round trips) each step's server runs.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from .servers import OUT, START_TIMEOUT_S, free_port

# Every setting the cluster runs with besides its port and where it listens; durability stays at
# PostgreSQL's defaults on purpose (fsync, synchronous_commit and full_page_writes on).
SETTINGS = (
    "shared_preload_libraries=pg_stat_statements",
    "pg_stat_statements.track=top",
    "max_connections=100",
)
# The statement that stores a batch (chat/backends/postgres.py: one call per batch).
APPEND_CALL = "%chat_append(%"


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's versioned directory (newest first)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]), reverse=True)
    return Path(found[0]).parent if found else None


@dataclasses.dataclass(frozen=True)
class Statements:
    """What ``pg_stat_statements`` counted in one database: every top-level statement run (each one
    round trip), and the ``chat_append`` calls among them (each one batch)."""

    calls: int
    appends: int


class PostgresServer:
    """A running throwaway cluster: ``create_database()`` for each step, ``statements()`` and
    ``pid`` (the postmaster, the root of its processes) for the figures."""

    def __init__(self, bindir: Path, root: Path, port: int, user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.user = user
        self.data = root / "data"
        self.version = "?"
        self._databases = 0
        self._lock = threading.Lock()  # the harness's /metrics thread and the scenario share the connection
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def command(self) -> list[str]:
        """How it was started, for the report (``pg_ctl`` options with the port and directory as placeholders)."""
        return ["pg_ctl", "start", "-D", "TMP", "-o", " ".join(f"-c {s}" for s in SETTINGS)]

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str) -> None:
        subprocess.run(args, user=self.user, cwd=self.root, capture_output=True, check=True, timeout=START_TIMEOUT_S)

    def connect(self) -> None:
        """The harness's own connection, to the ``postgres`` database: its statements are not counted
        with any step's (those are counted in the step's own database)."""
        self._conn = psycopg.connect(self.dsn("postgres"), autocommit=True)
        self._sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.version = str(self._one("SHOW server_version")[0])

    def _sql(self, sql: str, *args: object) -> None:
        self._one(sql, *args, fetch=False)

    def _one(self, sql: str, *args: object, fetch: bool = True) -> tuple[object, ...]:
        """Run ``sql`` on the harness's connection; its first row. A failure is a RuntimeError, as the
        scenarios expect of a service that went away."""
        if self._conn is None:
            raise RuntimeError("postgres: not connected")
        try:
            with self._lock:
                cursor = self._conn.execute(sql.encode(), args or None)
                row = cursor.fetchone() if fetch else ()
        except psycopg.Error as exc:
            raise RuntimeError(f"postgres: {exc}") from exc
        if row is None:
            raise RuntimeError(f"postgres: no row from {sql}")
        return row

    def create_database(self) -> tuple[str, str]:
        """A fresh, empty database for one step: (its name, its DSN)."""
        self._databases += 1
        name = f"bench_{self._databases}"
        self._sql(f"CREATE DATABASE {name}")
        return name, self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Once the step's server has stopped: its data is not needed again."""
        self._sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def statements(self, database: str) -> Statements:
        calls, appends = self._one(
            "SELECT coalesce(sum(s.calls), 0), coalesce(sum(s.calls) FILTER (WHERE s.query LIKE %s), 0)"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
            APPEND_CALL,
            database,
        )
        return Statements(int(str(calls)), int(str(appends)))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextmanager
def postgres_started(tag: str) -> Iterator[PostgresServer]:
    """A cluster of our own on a free loopback port, its data in a temporary directory; removed afterwards."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (`make postgres` installs Debian's)")
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{tag}-postgres.log"
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bindir, root, free_port(), user)
    started = False
    try:
        try:
            server.run(str(bindir / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
            options = [f"-p {server.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={root}"]
            options += [f"-c {s}" for s in SETTINGS]
            # pg_ctl -w returns once the server accepts connections (or failed to start).
            server.run(
                str(bindir / "pg_ctl"), "start", "-w", "-D", str(server.data), "-l", str(root / "postgres.log"),
                "-o", " ".join(options),
            )  # fmt: skip
            started = True
            server.connect()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, psycopg.Error) as exc:
            raise RuntimeError(f"postgres did not start: {exc}") from exc
        yield server
    finally:
        server.close()
        if started:
            subprocess.run(
                [str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(server.data)],
                user=user,
                cwd=root,
                capture_output=True,
                check=False,
                timeout=START_TIMEOUT_S,
            )
        if (root / "postgres.log").exists():
            shutil.copyfile(root / "postgres.log", log_path)
        shutil.rmtree(root, ignore_errors=True)
