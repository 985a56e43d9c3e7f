"""The event log on PostgreSQL (schema version 4): the arguments of
``chat_append`` (whose body, in :mod:`chat.backends.schema`, runs the side
effects), rows read back with their reactions, search and read markers, for
:class:`chat.backends.postgres.PostgresHistory`."""

from __future__ import annotations

import json
from typing import Any

from chat.backends.events_sql import COLUMNS, search_words, with_reactions
from chat.backends.events_sql import message as _message
from chat.core.model import EventKind, Message, SearchHit
from chat.core.validation import name_key

APPEND_SQL = f"SELECT pos, {COLUMNS}, fresh FROM chat_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_NAMES = [c.strip().strip('"') for c in COLUMNS.split(",")]
# Every column of a row read back, and its reactions (in the order they were
# added) from the same snapshot: one statement, one round trip.
READ = (
    ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))
    + ", (SELECT json_agg(json_build_array(r.emoji, r.name) ORDER BY r.seq) FROM reactions r"
    " WHERE r.room = m.room AND r.target = m.seq AND m.kind = 'message') AS reacted"
)

SET_READ = (
    "INSERT INTO read_markers AS k (account_id, room, seq)"
    " VALUES ($1, $2, GREATEST(0, LEAST($3, COALESCE((SELECT last_seq FROM rooms WHERE room = $2), 0))))"
    " ON CONFLICT (account_id, room) DO UPDATE SET seq = GREATEST(k.seq, excluded.seq) RETURNING k.seq"
)


def append_columns(batch: list[Message]) -> tuple[list[Any], ...]:
    """``chat_append``'s twelve arrays for ``batch``."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(12))
    for m in batch:
        mentions = json.dumps(list(m.mentions)) if m.mentions else None
        keys = json.dumps([name_key(n) for n in m.mentions]) if m.mentions else None
        values = (
            m.room,
            m.name,
            m.text,
            m.ts,
            m.session,
            m.ref,
            m.guest,
            str(m.kind),
            m.target,
            m.emoji,
            mentions,
            keys,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


def message(row: Any) -> Message:
    """A row of ``COLUMNS`` (and ``reacted``, if read with :data:`READ`)."""
    m = _message([row[c] for c in _NAMES], row["mentions"] or ())
    reacted = row.get("reacted")
    if reacted and m.kind is EventKind.MESSAGE:
        return with_reactions([m], [(m.seq, emoji, name) for emoji, name in json.loads(reacted)])[0]
    return m


def search_sql(query: str, rooms: list[str], before: int | None, limit: int) -> tuple[str, tuple[object, ...]]:
    """The statement and its arguments; ("", ()) when there is nothing to search.

    ``plainto_tsquery`` reads its argument as plain words, never as tsquery
    syntax; the words are ours already (:func:`search_words`)."""
    words = search_words(query)
    if not words or not rooms or limit <= 0:
        return "", ()
    return (
        "SELECT m.room, m.seq, m.name, m.ts, m.guest,"
        " ts_headline('simple', m.text, q, 'StartSel=[, StopSel=], MaxWords=16, MinWords=6') AS snippet"
        " FROM messages m, plainto_tsquery('simple', $1) q"
        " WHERE m.search @@ q AND m.room = ANY ($2::text[]) AND m.ts < $3"
        " ORDER BY m.ts DESC, m.seq DESC LIMIT $4",
        (" ".join(words), rooms, before if before is not None else 2**62, limit),
    )


def hit(row: Any) -> SearchHit:
    return SearchHit(row["room"], row["seq"], row["name"], row["ts"], row["snippet"], row["guest"])


def read_state_sql(account: int, name: str, rooms: list[str]) -> tuple[str, tuple[object, ...]]:
    # An account's messages carry its name exactly as the account holds it.
    mine = "NOT (NOT m.guest AND m.name = $3)"
    return (
        "SELECT r.room, coalesce(k.seq, 0) AS read,"
        " (SELECT count(*) FROM messages m WHERE m.room = r.room AND m.seq > coalesce(k.seq, 0)"
        f"  AND m.kind = 'message' AND NOT m.deleted AND {mine}) AS unread,"
        " (SELECT count(*) FROM mentions x JOIN messages m ON m.room = x.room AND m.seq = x.seq"
        f"  WHERE x.room = r.room AND x.seq > coalesce(k.seq, 0) AND x.name_key = $4 AND NOT m.deleted AND {mine})"
        " AS mentions"
        " FROM unnest($2::text[]) AS r(room) LEFT JOIN read_markers k ON k.account_id = $1 AND k.room = r.room",
        (account, rooms, name, name_key(name)),
    )
