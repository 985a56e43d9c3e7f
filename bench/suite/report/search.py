"""Section 8: search latency over a million stored messages, on each engine, overall and by how common the word is."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from ..params import SearchBench
from ..search_corpus import SENDERS, band_label, message_share
from ..search_measure import percentile
from ..text import fmt, table

if TYPE_CHECKING:
    from .model import Report

ENGINE_LABELS = {"sqlite": "SQLite (FTS5)", "postgres": "PostgreSQL (tsvector, GIN)"}
HEADING = "8. Search over 1,000,000 stored messages"


def engines(report: Report) -> dict[str, dict[str, Any]]:
    """Each engine's figures as the scenario recorded them (an ``error`` if it was not measured)."""
    found: dict[str, dict[str, Any]] = report.extra.get("search", {}).get("engines", {})
    return found


def latencies(figures: dict[str, Any], band: str | None = None) -> list[float]:
    return [float(q["ms"]) for q in figures.get("queries", []) if band is None or q["band"] == band]


def engine_p50_p99(figures: dict[str, Any]) -> tuple[float | None, float | None]:
    ms = latencies(figures)
    return percentile(ms, 0.50), percentile(ms, 0.99)


def checked(figures: dict[str, Any]) -> str:
    queries = len(figures.get("queries", []))
    if figures.get("mismatches"):
        return f"**{figures['mismatches']} of {queries} wrong**"
    return f"all {queries} right"


def engine_rows(found: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for key, figures in found.items():
        if figures.get("error"):
            continue
        p50, p99 = engine_p50_p99(figures)
        rows.append(
            [
                ENGINE_LABELS.get(key, key),
                str(figures.get("version", "?")),
                fmt(figures.get("messages")),
                fmt(figures.get("load_s"), 0),
                fmt(figures.get("migrate_s"), 0),
                fmt(figures.get("analyze_s"), 0),
                fmt(figures.get("size_bytes"), 0, 1 / 2**20),
                fmt(len(figures.get("queries", []))),
                f"**{fmt(p50, 1)}**",
                f"**{fmt(p99, 1)}**",
                fmt(max(latencies(figures), default=None), 1),
                checked(figures),
                " → ".join(f"{x:.1f}" for x in figures.get("load_average", [])) or "-",
            ]
        )
    return rows


def band_rows(params: SearchBench, found: dict[str, dict[str, Any]]) -> list[list[str]]:
    measured = {k: f for k, f in found.items() if not f.get("error")}
    rows = []
    for first, last in params.bands:
        band = band_label(first, min(last, params.vocabulary))
        queries = [q for f in measured.values() for q in f.get("queries", []) if q["band"] == band]
        hits = [int(q["hits"]) for q in queries]
        row = [
            band,
            fmt(statistics.median(hits) if hits else None),
            f"{fmt(min(hits, default=None))}-{fmt(max(hits, default=None))}",
        ]
        for figures in measured.values():
            ms = latencies(figures, band)
            row.append(f"{len(ms)}: {fmt(percentile(ms, 0.5), 1)} / {fmt(percentile(ms, 0.99), 1)}")
        rows.append(row)
    return rows


def search_section(report: Report) -> str:
    found = engines(report)
    if "search" not in report.only or not found:
        return "Not run" + (
            " (this suite predates issue 13's search scenario)." if "search" not in report.only else "."
        )
    params = report.suite.search
    extra = report.extra.get("search", {})
    readable_messages = extra.get("readable_messages")
    middle = params.vocabulary // 2
    lines = [
        f"Each engine gets a fresh database holding {params.messages:,} messages in {params.rooms:,} rooms: a year of"
        f" chat ({params.span_days:g} days), {params.words_min}-{params.words_max} words a message drawn from a"
        f" vocabulary of {params.vocabulary:,} made-up words by a Zipf law (exponent {params.zipf:g}: the commonest"
        f" word is in {message_share(params, 1):.0%} of the messages, the word of rank {middle:,} in about"
        f" {message_share(params, middle) * params.messages:,.0f} of them), rooms busy by a"
        f" Zipf law too (exponent {params.room_zipf:g}), {SENDERS:,} senders; all drawn from seed {params.seed}."
        " The messages are written as yesterday's data (schema version 3, `executemany` on SQLite, `COPY` on"
        " PostgreSQL) and the store, opened as a server opens it, migrates them to version 4, which indexes"
        " every message with the store's own SQL (*migration s*). PostgreSQL is then `VACUUM ANALYZE`d, as"
        " autovacuum would have done on a running server, so the planner knows the tables.",
        "",
        f"Each query is one word, timed around `store.search(word, rooms, None, {params.limit})` as the server"
        f" calls it for a `search` frame, over the {params.readable} rooms a user reads (a sample of the rooms,"
        f" busy and quiet, holding {fmt(readable_messages)} messages), one query at a time, {params.queries} words"
        " from each band of ranks below, shuffled together. Every answer is checked against the corpus (the"
        f" right number of results, at most {params.limit}, none from another room, newest first, the word marked"
        " in the snippet); before them, messages appended through the store are searched for too.",
        "",
        table(
            [
                "engine",
                "version",
                "messages",
                "storing s",
                "migration s",
                "analyze s",
                "size MB",
                "queries",
                "p50 ms",
                "p99 ms",
                "max ms",
                "answers",
                "load average",
            ],
            engine_rows(found),
        ),
        "",
        "*load average*: the machine's 1-minute load average as the queries began and ended (2 cores; other"
        " work on the machine lengthens the latencies).",
        "",
        "By how common the word is (*hits*: the messages of the user's rooms that hold it; per engine: queries,"
        " p50 / p99 ms):",
        "",
        table(
            ["word ranks", "median hits", "hits"]
            + [ENGINE_LABELS.get(k, k) for k, f in found.items() if not f.get("error")],
            band_rows(params, found),
        ),
        "",
    ]
    lines += notes(found)
    return "\n".join(lines)


def notes(found: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for key, figures in found.items():
        label = ENGINE_LABELS.get(key, key)
        if figures.get("error"):
            out.append(f"- {label}: not measured: {figures['error']}.")
            continue
        if figures.get("migration_note"):
            out.append(f"- {label}: {figures['migration_note']}.")
        if figures.get("cut_short"):
            out.append(f"- {label}: the queries were stopped at the scenario's time budget.")
        out += [f"- {label}: {p}." for p in figures.get("problems", [])]
    if all(not f.get("error") and not f.get("mismatches") and not f.get("problems") for f in found.values()):
        out.insert(0, "- Every answer was right on both engines.")
    return out


def search_figures(report: Report) -> dict[str, tuple[int, int, float | None, float | None, int]]:
    """Per measured engine: (messages, queries, p50 ms, p99 ms, wrong answers), for the target."""
    result = {}
    for key, figures in engines(report).items():
        if figures.get("error") or not figures.get("queries"):
            continue
        p50, p99 = engine_p50_p99(figures)
        result[key] = (int(figures["messages"]), len(figures["queries"]), p50, p99, int(figures.get("mismatches", 0)))
    return result
