"""Issue 13's search scenario: the corpus it stores, how it checks and times a store's answers, and the
section and target it reports, from figures; and, on a small corpus, both real stores end to end (the
history written as schema version 3, migrated and indexed by the store, then searched)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from suite.params import SearchBench, Suite
from suite.report.model import Report
from suite.report.search import HEADING, search_section
from suite.search_corpus import Corpus, Row, band_label
from suite.search_load import load_postgres, load_sqlite
from suite.search_measure import MARKER, percentile, searchable, time_queries
from suite.targets import MET, MISSED, judge

from chat.backends.postgres import PostgresHistory
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Message, SearchHit

SMALL = SearchBench(
    messages=3000, rooms=40, readable=8, vocabulary=400, queries=6, bands=((1, 10), (11, 100), (101, 400)), seed=5
)


def all_rows(corpus: Corpus) -> list[Row]:
    return [row for chunk in corpus.rows() for row in chunk]


class FakeStore:
    """Searches the corpus's rows the plain way: what a right answer is. ``leak``: answers from every room;
    ``drop``: loses the newest hit of every query."""

    def __init__(self, rows: list[Row], *, leak: bool = False, drop: bool = False) -> None:
        self.rows = list(rows)
        self.leak = leak
        self.drop = drop

    def append(
        self, room: str, name: str, text: str, ts: int, session: str, ref: str | None, *, guest: bool = False
    ) -> asyncio.Future[Message]:
        seq = 1 + max((r[1] for r in self.rows if r[0] == room), default=0)
        self.rows.append((room, seq, name, text, ts, session, ref, guest))
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        future.set_result(Message(room, seq, name, text, ts, session, ref, guest))
        return future

    async def search(self, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]:
        found = [r for r in self.rows if (self.leak or r[0] in rooms) and query in r[3].split()]
        found.sort(key=lambda r: (r[4], r[1]), reverse=True)
        if self.drop:
            found = found[1:]
        marked = [" ".join(f"[{w}]" if w == query else w for w in r[3].split()) for r in found]
        return [SearchHit(r[0], r[1], r[2], r[4], m, r[7]) for r, m in zip(found, marked, strict=True)][:limit]


def test_the_corpus_is_the_same_every_time_and_counts_the_users_rooms_words():
    corpus = Corpus(SMALL)
    rows = all_rows(corpus)
    assert rows == all_rows(Corpus(SMALL))
    assert len(rows) == SMALL.messages
    assert len(corpus.readable) == SMALL.readable
    # Seqs count per room from 1 by exactly 1, in time order, as the store hands them out.
    seqs: dict[str, list[int]] = {}
    for row in rows:
        seqs.setdefault(row[0], []).append(row[1])
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    assert [r[4] for r in rows] == sorted(r[4] for r in rows)
    readable = [r for r in rows if r[0] in corpus.readable]
    assert corpus.readable_messages == len(readable)
    assert corpus.counts == Counter(w for r in readable for w in set(r[3].split()))
    # Zipf: the commonest word is in far more messages than a word of the last band.
    assert corpus.counts[corpus.words[0]] > 20 * max(1, corpus.counts[corpus.words[-1]])
    assert MARKER not in corpus.words


def test_queries_draw_as_many_words_from_every_band_shuffled_together():
    queries = Corpus(SMALL).queries()
    bands = [band_label(first, last) for first, last in SMALL.bands]
    assert Counter(band for band, _, _ in queries) == dict.fromkeys(bands, SMALL.queries)
    for band, word, rank in queries:
        first, last = SMALL.bands[bands.index(band)]
        assert first <= rank <= last
        assert Corpus(SMALL).words[rank - 1] == word
    assert [b for b, _, _ in queries] != sorted(b for b, _, _ in queries)


def test_percentiles_are_measured_values_by_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_right_answers_are_timed_and_pass_every_check():
    corpus = Corpus(SMALL)
    store = FakeStore(all_rows(corpus))
    ticks = iter(range(10_000))
    result = asyncio.run(time_queries(store, corpus, SMALL, clock=lambda: next(ticks) / 1000))
    assert result["mismatches"] == 0
    assert result["problems"] == []
    assert len(result["queries"]) == 3 * SMALL.queries
    assert all(q["ms"] == pytest.approx(1.0) for q in result["queries"])
    for q in result["queries"]:
        assert q["returned"] == min(SMALL.limit, corpus.counts[q["word"]]) == min(SMALL.limit, q["hits"])
    # The sample went through the store's append: in a room the user reads, and one in another.
    sample = [r for r in store.rows if MARKER in r[3]]
    assert len(sample) == 30
    assert sum(r[0] not in corpus.readable for r in sample) == 1


def test_answers_from_other_rooms_or_missing_a_message_are_reported():
    corpus = Corpus(SMALL)
    leaky = asyncio.run(time_queries(FakeStore(all_rows(corpus), leak=True), corpus, SMALL))
    assert leaky["mismatches"] > 0
    assert any("rooms not asked for" in p for p in leaky["problems"])
    assert leaky["problems"][0].startswith("the appended sample:")
    dropping = asyncio.run(time_queries(FakeStore(all_rows(corpus), drop=True), corpus, SMALL))
    # A word in at most `limit` messages of the user's rooms comes back one short.
    assert dropping["mismatches"] == sum(1 for q in dropping["queries"] if 0 < q["hits"] <= SMALL.limit)
    assert any("results, not" in p for p in dropping["problems"])


def engine(ms: list[float], *, messages: int = 1_000_000, mismatches: int = 0) -> dict[str, Any]:
    bands = [band_label(first, last) for first, last in Suite().search.bands]
    queries = [
        {"band": bands[i % 3], "word": f"w{i}", "rank": i + 1, "hits": 1000 // (i + 1), "returned": 20, "ms": v}
        for i, v in enumerate(ms)
    ]
    return {
        "version": "x",
        "messages": messages,
        "load_s": 10.0,
        "migrate_s": 30.0,
        "size_bytes": 300 * 2**20,
        "queries": queries,
        "mismatches": mismatches,
        "problems": ["'w1' (rank 2, 500 messages): 19 results, not 20"] if mismatches else [],
        "cut_short": False,
    }


def report_of(engines: dict[str, dict[str, Any]], only: tuple[str, ...] = ("search",)) -> Report:
    started = datetime.datetime(2026, 12, 1, 12, 0)
    extra = {"search": {"engines": engines, "readable": [], "readable_messages": 41_000}}
    return Report([], Suite(), [], started, (0.0, 0.0, 0.0), 60.0, only=only, extra=extra)


def search_rows(report: Report) -> list[list[str]]:
    return [row.row() for row in judge(report, issue=13)]


def test_the_section_shows_p50_and_p99_per_engine_and_by_band():
    sqlite = [float(v) for v in range(1, 101)]  # p50 50, p99 99
    postgres = [v / 10 for v in range(1, 201)]  # p50 10.0, p99 19.8
    text = search_section(report_of({"sqlite": engine(sqlite), "postgres": engine(postgres)}))
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    assert rows["SQLite (FTS5)"][8:10] == ["**50.0**", "**99.0**"]
    assert rows["PostgreSQL (tsvector, GIN)"][8:10] == ["**10.0**", "**19.8**"]
    assert rows["SQLite (FTS5)"][11].startswith("all 100 right")
    assert "ranks 1-100" in rows
    assert "ranks 2,001-20,000" in rows
    assert "41,000 messages" in text
    assert "Every answer was right on both engines." in text


def test_the_target_is_met_by_both_engines_over_a_million_with_every_answer_right():
    both = report_of({"sqlite": engine([5.0, 7.0]), "postgres": engine([2.0, 3.0])})
    [row] = search_rows(both)
    assert row[2] == MET
    assert "SQLite (FTS5) p50 5.0 ms, p99 7.0 ms over 1,000,000" in row[1]
    wrong = report_of({"sqlite": engine([5.0], mismatches=1), "postgres": engine([2.0])})
    assert search_rows(wrong)[0][2] == MISSED
    assert "wrong" in search_section(wrong)
    small = report_of({"sqlite": engine([5.0], messages=20_000), "postgres": engine([2.0], messages=20_000)})
    assert search_rows(small)[0][2] == MISSED
    one = report_of({"sqlite": engine([5.0]), "postgres": {"error": "postgres did not start"}})
    assert search_rows(one)[0][2] == MISSED
    assert "not measured: postgres did not start" in search_section(one)
    # A suite that did not run the scenario has no row, and says so in the section.
    assert search_rows(report_of({}, only=("burst",))) == []
    assert search_section(report_of({}, only=("burst",))).startswith("Not run")
    assert HEADING == "8. Search over 1,000,000 stored messages"


def test_the_section_notes_a_migration_that_needed_more_time_and_queries_cut_short():
    slow = engine([2.0]) | {"migration_note": "the store's migration stopped at its 5 s statement timeout"}
    cut = engine([5.0]) | {"cut_short": True}
    text = search_section(report_of({"sqlite": cut, "postgres": slow}))
    assert "- PostgreSQL (tsvector, GIN): the store's migration stopped at its 5 s statement timeout." in text
    assert "- SQLite (FTS5): the queries were stopped at the scenario's time budget." in text
    assert "- Every answer was right on both engines." in text
    wrong = search_section(report_of({"sqlite": engine([5.0], mismatches=1), "postgres": slow}))
    assert "Every answer was right" not in wrong


def test_a_saved_suite_with_the_search_parameters_reads_back(tmp_path: Path):
    from suite.report.model import load_saved

    report = report_of({"sqlite": engine([5.0])})
    report.suite = dataclasses.replace(Suite(), search=SMALL)
    saved = tmp_path / "runs.json"
    import json

    saved.write_text(json.dumps(report.saved()))
    again = load_saved(saved)
    assert again.suite.search == SMALL
    assert again.extra["search"]["engines"]["sqlite"]["queries"][0]["ms"] == 5.0


def test_sqlite_migrates_the_written_history_and_finds_what_the_corpus_holds(tmp_path: Path):
    corpus = Corpus(SMALL)
    path = tmp_path / "chat.sqlite3"
    load_sqlite(path, corpus, lambda _: None)

    async def run() -> dict[str, Any]:
        store = SQLiteHistory(str(path))
        try:
            return await time_queries(searchable(store), corpus, SMALL)
        finally:
            await store.close()

    result = asyncio.run(run())
    assert result["problems"] == []
    assert result["mismatches"] == 0
    assert len(result["queries"]) == 3 * SMALL.queries


def test_postgres_migrates_the_written_history_and_finds_what_the_corpus_holds(postgres_dsn: str):
    corpus = Corpus(SMALL)
    load_postgres(postgres_dsn, corpus, lambda _: None)

    async def run() -> dict[str, Any]:
        store = PostgresHistory(postgres_dsn)
        try:
            return await time_queries(searchable(store), corpus, SMALL)
        finally:
            await store.close()

    result = asyncio.run(run())
    assert result["problems"] == []
    assert result["mismatches"] == 0
    assert len(result["queries"]) == 3 * SMALL.queries
