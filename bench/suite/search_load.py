"""Storing the search scenario's history fast, and with the search index the store itself would build.

A million appends through the store would take most of an hour; instead the history is written as
yesterday's data: a database of schema version 3 (made by the store's own steps,
:data:`chat.backends.schema.SQLITE_STEPS` and ``POSTGRES_STEPS``, 1 to 3), filled in one transaction
(``executemany`` on SQLite, ``COPY`` on PostgreSQL). Opening the store then migrates it to the current
version, and that migration builds the search index of the messages already stored: every message is
indexed by the store's own SQL, as it would be on a server upgraded with a year of history. The scenario
then appends a few messages through the store (indexed in its append transaction) and checks that search
finds those and the migrated ones alike.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from chat.backends.schema import POSTGRES_STEPS, POSTGRES_VERSION_TABLE, SQLITE_STEPS

from .search_corpus import Corpus, Row

# The schema version the history is written in: the one before issue 13's search index.
FROM_VERSION = 3
COLUMNS = "room, seq, name, text, ts, session, ref, guest"
Progress = Callable[[str], None]


def sqlite_statements(script: str) -> list[str]:
    """A step's statements, one by one (``executescript`` would commit first); steps 1 to 3 have no triggers."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class RoomCounters:
    """Each room's last seq and first message's time, for its ``rooms`` row."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.created: dict[str, int] = {}

    def add(self, chunk: list[Row]) -> None:
        for row in chunk:
            self.last[row[0]] = row[1]
            self.created.setdefault(row[0], row[4])

    def rows(self) -> list[tuple[str, int, str, int]]:
        return [(room, last, room, self.created[room]) for room, last in sorted(self.last.items())]


def load_sqlite(path: Path, corpus: Corpus, progress: Progress) -> None:
    """A new SQLite file at schema version 3 holding the corpus (the store migrates it when it opens it)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN")
        for step in range(1, FROM_VERSION + 1):
            for statement in sqlite_statements(SQLITE_STEPS[step]):
                db.execute(statement)
        rooms = RoomCounters()
        insert = f"INSERT INTO messages ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        for chunk in corpus.rows():
            db.executemany(insert, chunk)
            rooms.add(chunk)
            progress(f"{sum(rooms.last.values()):,} messages")
        db.executemany("INSERT INTO rooms (room, last_seq, title, created) VALUES (?, ?, ?, ?)", rooms.rows())
        db.execute(f"PRAGMA user_version = {FROM_VERSION}")
        db.execute("COMMIT")
    finally:
        db.close()


def load_postgres(dsn: str, corpus: Corpus, progress: Progress) -> None:
    """The corpus in an empty PostgreSQL database at schema version 3, in one transaction."""
    with psycopg.connect(dsn) as conn:
        for step in range(1, FROM_VERSION + 1):
            conn.execute(POSTGRES_STEPS[step].encode())  # no parameters: the whole script in one round trip
        conn.execute(POSTGRES_VERSION_TABLE.encode())
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (FROM_VERSION,))
        rooms = RoomCounters()
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY messages ({COLUMNS}) FROM STDIN".encode()) as copy:
                for chunk in corpus.rows():
                    for row in chunk:
                        copy.write_row(row)
                    rooms.add(chunk)
                    progress(f"{sum(rooms.last.values()):,} messages")
            cursor.executemany(
                "INSERT INTO rooms (room, last_seq, title, created) VALUES (%s, %s, %s, %s)", rooms.rows()
            )


def analyze_postgres(dsn: str) -> float:
    """``VACUUM ANALYZE`` the database; returns the seconds it took.

    The planner needs the new tables' statistics to choose between the GIN index and the time index;
    on a server that has been running, autovacuum gathered them long ago. Done here so that they do
    not arrive in the middle of the timed queries instead."""
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def postgres_size(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def sqlite_size(path: Path) -> int:
    """The file and its write-ahead log."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
