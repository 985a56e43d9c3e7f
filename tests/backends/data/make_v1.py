"""Writes ``chat-v1.sqlite3``: a history database in the schema released before
migrations existed (version 1: ``messages`` only, ``user_version`` 0).

Run from the commit that made it (``git log tests/backends/data``), where
:class:`chat.backends.sqlite.SQLiteHistory` still writes that schema:

    .venv/bin/python tests/backends/data/make_v1.py

``tests/backends/test_migrations.py`` migrates a copy and checks every message
against this script's plan (:func:`plan`), so the plan is kept with the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATH = HERE / "chat-v1.sqlite3"

# (room, name, text, ts, session, ref) in append order.
Row = tuple[str, str, str, int, str, str | None]


def plan() -> list[Row]:
    rows: list[Row] = [
        ("lobby", "alice", "hello", 1_700_000_000_000, "sa", "r1"),
        ("lobby", "bob", "hi alice", 1_700_000_001_000, "sb", None),
        ("lobby", "alice", "", 1_700_000_002_000, "sa", ""),  # an empty ref is a ref
        ("café", "zoë", 'crème brûlée ☕ 👩‍💻\nline two\t"q" \\', 1_700_000_003_000, "sz", "r1"),
        ("日本語", "太郎", "こんにちは世界", 1_700_000_004_000, "st", None),
        # The same (session, ref) twice, more than the idempotency window apart:
        # the released schema stored both, and a migration must keep both.
        ("lobby", "alice", "again", 1_700_000_700_000, "sa", "r1"),
    ]
    for i in range(300):
        ref = f"big-{i}" if i % 3 == 0 else None
        rows.append(("busy", f"user{i % 7}", f"message {i} ü", 1_700_001_000_000 + i * 1000, f"s{i % 5}", ref))
    return rows


async def write() -> None:
    sys.path.insert(0, str(HERE.parents[2]))
    from chat.backends.sqlite import SQLiteHistory

    PATH.unlink(missing_ok=True)
    store = SQLiteHistory(str(PATH))
    for row in plan():
        await store.append(*row)
    await store.close()
    db = sqlite3.connect(PATH)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
    db.close()


if __name__ == "__main__":
    asyncio.run(write())
