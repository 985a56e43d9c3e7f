"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, a temporary directory, a free loopback port.

``initdb`` refuses to run as root, so as root the cluster is made and run as
the ``postgres`` user (Debian's package creates it); as anyone else, as that
user. Durability is off (``fsync=off``): a test's data need not survive a
power cut, and with it on every commit waits for the disk.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support import free_port

START_TIMEOUT_S = 60.0


def postgres_bindir() -> Path | None:
    """Where initdb and postgres are: on PATH, or Debian's versioned directory (newest first)."""
    # Resolved through symlinks: a link to initdb on PATH need not have pg_isready beside it.
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]), reverse=True)
    return Path(found[0]).parent if found else None


class PostgresServer:
    """``start()`` makes a cluster and runs it, ``stop()`` stops it (it can start again), ``remove()`` deletes it."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: `make postgres` installs Debian's")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chat-pg-"))
        self.data = self.root / "data"
        self._user: str | None = None
        self._databases = 0
        self.running = False
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            args, user=self._user, cwd=self.root, capture_output=True, check=True, timeout=START_TIMEOUT_S
        )

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        # pg_ctl -w returns once the server accepts connections (or failed to start).
        try:
            self._run(
                self._pg_ctl, "start", "-w", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-o", options
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"postgres did not start: {exc.stdout!r}\n{self.log()}") from exc
        self.running = True
        return self

    @property
    def _pg_ctl(self) -> str:
        return str(self.bindir / "pg_ctl")

    @property
    def url(self) -> str:
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its DSN."""
        self._databases += 1
        name = f"chat_{self._databases}"
        self.psql(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, self.dsn(database)],
            capture_output=True,
            check=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        return out.stdout.strip()

    def stop(self, mode: str = "fast") -> None:
        """``fast`` rolls back what is open and stops; ``immediate`` is a crash (recovery at the next start)."""
        if self.running:
            self._run(self._pg_ctl, "stop", "-w", "-m", mode, "-D", str(self.data))
            self.running = False

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.remove()
