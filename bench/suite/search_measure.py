"""Timing one engine's search, and checking what it answers against the corpus.

Every timed query is checked: it must return min(limit, hits) messages (the corpus counted each word's
messages in the user's rooms), none from a room the user does not read, newest first. Before them,
a sample appended through the store is searched for (a store indexes what it appends in the append's
transaction, and the migration indexed the rest): found in the rooms the user reads, never in another,
with its match marked in the snippet like a migrated message's.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the report reads this module too, and bench/run.py --render needs no chat package
    from chat.core.model import Message, SearchHit

from .params import SearchBench
from .search_corpus import Corpus

# A word no message of the corpus holds (its letters make no syllable of the vocabulary).
MARKER = "zqxprobe"
SAMPLE = 30
# Mismatches kept, with what was wanted and what came back, for the report.
MISMATCHES_KEPT = 5


@runtime_checkable
class SearchStore(Protocol):
    """What the scenario uses of :class:`chat.backends.base.HistoryStore`."""

    def append(
        self, room: str, name: str, text: str, ts: int, session: str, ref: str | None, *, guest: bool = False
    ) -> asyncio.Future[Message]: ...

    async def search(self, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]: ...


def searchable(store: object) -> SearchStore:
    """``store`` as a store that searches; a store of before issue 13 is an AttributeError, reported."""
    if not isinstance(store, SearchStore):
        raise AttributeError(f"{type(store).__name__} has no search")
    return store


def problems(hits: Sequence[SearchHit], rooms: Sequence[str], wanted: int, word: str) -> list[str]:
    """What is wrong with ``hits`` for a query of ``word`` expected to return ``wanted`` messages of ``rooms``."""
    found = []
    if len(hits) != wanted:
        found.append(f"{len(hits)} results, not {wanted}")
    allowed = set(rooms)
    outside = sorted({h.room for h in hits if h.room not in allowed})
    if outside:
        found.append(f"results from rooms not asked for: {', '.join(outside)}")
    order = [(h.ts, h.seq) for h in hits]
    if order != sorted(order, reverse=True):
        found.append("not newest first")
    unmarked = [h for h in hits if f"[{word}]" not in h.snippet.lower()]
    if unmarked:
        found.append(f"{len(unmarked)} snippets without [{word}], e.g. {unmarked[0].snippet!r}")
    return found


async def check_sample(store: SearchStore, corpus: Corpus) -> list[str]:
    """Append ``SAMPLE`` messages naming MARKER through the store, one of them in a room the user does not
    read, and search for MARKER: the others, newest first, and not that one. Returns what was wrong."""
    rooms = corpus.readable
    other = next(r for r in (f"room-{i:04d}" for i in range(corpus.params.rooms + 1)) if r not in rooms)
    futures = []
    for i in range(SAMPLE):
        # The newest in the other room: a store that leaked it would answer it first.
        room = other if i == SAMPLE - 1 else rooms[i % len(rooms)]
        text = f"{MARKER} sample {i}"
        futures.append(store.append(room, "bench", text, corpus.last_ts + 1000 * (i + 1), "bench-sample", None))
    await asyncio.gather(*futures)
    hits = await store.search(MARKER, list(rooms), None, SAMPLE)
    return [f"the appended sample: {p}" for p in problems(hits, rooms, SAMPLE - 1, MARKER)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) by the nearest rank: a latency that was measured, not interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[rank - 1]


async def time_queries(
    store: SearchStore,
    corpus: Corpus,
    params: SearchBench,
    progress: Callable[[str], None] = lambda _: None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The sample check, then every query of ``corpus.queries()`` timed within ``params.budget_s``:
    ``{"queries": [{band, word, rank, hits, returned, ms}...], "mismatches": n, "problems": [...],
    "cut_short": bool}``."""
    found = await check_sample(store, corpus)
    queries: list[dict[str, Any]] = []
    mismatches = 0
    cut_short = False
    rooms = list(corpus.readable)
    deadline = time.monotonic() + params.budget_s
    for band, word, rank in corpus.queries():
        if time.monotonic() > deadline:
            cut_short = True
            break
        started = clock()
        hits = await store.search(word, rooms, None, params.limit)
        ms = (clock() - started) * 1000
        expected = corpus.counts[word]
        wrong = problems(hits, rooms, min(params.limit, expected), word)
        if wrong:
            mismatches += 1
            if len(found) < MISMATCHES_KEPT:
                found.append(f"{word!r} (rank {rank:,}, {expected:,} messages): " + "; ".join(wrong))
        queries.append({"band": band, "word": word, "rank": rank, "hits": expected, "returned": len(hits), "ms": ms})
        if len(queries) % 50 == 0:
            progress(f"{len(queries)} queries")
    return {"queries": queries, "mismatches": mismatches, "problems": found, "cut_short": cut_short}
