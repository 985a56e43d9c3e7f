"""The search scenario (issue 13): a year of chat, 1,000,000 messages in 1,000 rooms, stored on SQLite and
on PostgreSQL, and one-word queries over the 50 rooms a user reads, timed through the store's ``search``.

No server and no load tester: the figure is the store's own latency for the query the server makes
for a ``search`` frame, which is what the history's size affects. Each engine gets a fresh database,
filled as yesterday's data and migrated by the store (:mod:`suite.search_load`), then checked and timed
(:mod:`suite.search_measure`); the figures go to ``harness.extra["search"]``, per engine.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from chat.backends.base import StoreUnavailable
from chat.backends.postgres import STATEMENT_TIMEOUT_S, PostgresHistory
from chat.backends.sqlite import SQLiteHistory

from ..harness import Harness
from ..params import SearchBench
from ..postgres_server import PostgresServer, postgres_started
from ..search_corpus import Corpus
from ..search_load import analyze_postgres, load_postgres, load_sqlite, postgres_size, sqlite_size
from ..search_measure import searchable, time_queries

# The migration that indexes a million messages runs longer than the server's statement timeout
# allows a statement; the scenario lets it run this long, and notes that it had to.
MIGRATION_TIMEOUT_S = 1800.0
ENGINES = {"sqlite": "SQLite (FTS5)", "postgres": "PostgreSQL (tsvector, GIN)"}


class Progress:
    """Progress lines while an engine is built, with the seconds since it began; at most one a second."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.began = time.monotonic()
        self.shown = 0.0

    def __call__(self, what: str, always: bool = False) -> None:
        now = time.monotonic()
        if always or now - self.shown >= 1.0:
            self.shown = now
            print(f"  {self.engine:<10} {now - self.began:6.1f} s  {what}", flush=True)

    def timed(self, what: str, step: Callable[[], object]) -> float:
        """Run ``step``, say how long it took; returns the seconds."""
        self(what, always=True)
        started = time.monotonic()
        step()
        took = time.monotonic() - started
        self(f"{what}: {took:.1f} s", always=True)
        return took


def search_scenario(harness: Harness, params: SearchBench) -> None:
    """Both engines, one after the other, each waiting first (within the harness's budget) for the
    machine to be quiet."""
    print(
        f"search: {params.messages:,} messages in {params.rooms:,} rooms on each engine;"
        f" {params.queries * len(params.bands)} one-word queries over {params.readable} of the rooms"
    )
    corpus = Corpus(params)
    engines: dict[str, dict[str, Any]] = {}
    harness.extra["search"] = {"engines": engines, "readable": corpus.readable}
    harness.wait_for_quiet()
    engines["sqlite"] = guarded(lambda: sqlite_engine(corpus, params))
    try:
        with postgres_started(f"{harness.tag}-search") as postgres:
            harness.wait_for_quiet()
            engines["postgres"] = guarded(lambda: postgres_engine(postgres, corpus, params))
    except (RuntimeError, OSError) as exc:  # no PostgreSQL, or one that would not start
        engines["postgres"] = {"error": str(exc)}
    harness.extra["search"]["readable_messages"] = corpus.readable_messages
    for key, figures in engines.items():
        if figures.get("error"):
            print(f"  {key}: not measured: {figures['error']}")


def guarded(engine: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One engine's figures, or the error that stopped it: a failing store (or a store without search
    yet: AttributeError) is the finding to report, and the other engine still runs."""
    try:
        return engine()
    except (StoreUnavailable, sqlite3.Error, psycopg.Error, OSError, RuntimeError, AttributeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


async def measure(store: SQLiteHistory | PostgresHistory, corpus: Corpus, params: SearchBench) -> dict[str, Any]:
    progress = Progress("  queries")
    # The queries run in this process, on a machine others may be using: say how busy it was.
    busy_before = os.getloadavg()[0]
    try:
        figures = await time_queries(searchable(store), corpus, params, progress)
    finally:
        await store.close()
    figures["load_average"] = [busy_before, os.getloadavg()[0]]
    return figures


def sqlite_engine(corpus: Corpus, params: SearchBench) -> dict[str, Any]:
    progress = Progress("sqlite")
    figures: dict[str, Any] = {"version": sqlite3.sqlite_version, "messages": params.messages}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as scratch:
        path = Path(scratch) / "chat.sqlite3"
        figures["load_s"] = progress.timed("storing the messages", lambda: load_sqlite(path, corpus, progress))
        opened: list[SQLiteHistory] = []
        figures["migrate_s"] = progress.timed(
            "opening the store (it migrates and indexes them)", lambda: opened.append(SQLiteHistory(str(path)))
        )
        figures["size_bytes"] = sqlite_size(path)
        figures.update(asyncio.run(measure(opened[0], corpus, params)))
    return figures


def postgres_engine(postgres: PostgresServer, corpus: Corpus, params: SearchBench) -> dict[str, Any]:
    progress = Progress("postgres")
    figures: dict[str, Any] = {"version": postgres.version, "messages": params.messages}
    database, dsn = postgres.create_database()
    try:
        figures["load_s"] = progress.timed("storing the messages", lambda: load_postgres(dsn, corpus, progress))
        figures["migrate_s"] = progress.timed(
            "opening the store (it migrates and indexes them)", lambda: migrate_postgres(dsn, figures)
        )
        figures["analyze_s"] = progress.timed("VACUUM ANALYZE", lambda: analyze_postgres(dsn))
        figures["size_bytes"] = postgres_size(dsn)
        figures.update(asyncio.run(measure(PostgresHistory(dsn), corpus, params)))
    finally:
        postgres.drop_database(database)
    return figures


def migrate_postgres(dsn: str, figures: dict[str, Any]) -> None:
    """Open the store as a server would, which migrates the database; if its statement timeout stops
    the migration, note that and migrate with a longer one."""

    async def open_store(timeout: float) -> None:
        store = PostgresHistory(dsn, statement_timeout=timeout)
        try:
            await store.rooms()
        finally:
            await store.close()

    try:
        asyncio.run(open_store(STATEMENT_TIMEOUT_S))
    except StoreUnavailable as exc:
        figures["migration_note"] = (
            f"the store's migration stopped at its {STATEMENT_TIMEOUT_S:g} s statement timeout ({exc});"
            f" it was run again with {MIGRATION_TIMEOUT_S:g} s (the time shown includes the first attempt)"
        )
        asyncio.run(open_store(MIGRATION_TIMEOUT_S))
