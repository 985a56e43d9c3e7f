"""The event log on SQLite (schema version 4): storing each event with its side
effects inside the group commit's transaction, and the reads that fold them in
(reactions, search, read markers). :class:`chat.backends.sqlite.SQLiteHistory`
calls these on its one connection."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from chat.backends.events_sql import COLUMNS, fts5_query, message, search_words, with_reactions
from chat.core.model import EventKind, Message, ReadState, SearchHit
from chat.core.validation import name_key

_INSERT = f"INSERT INTO messages ({COLUMNS}) VALUES ({', '.join('?' * 15)})"
_LIVE = "SELECT deleted FROM messages WHERE room = ? AND seq = ? AND kind = 'message'"
_DOC = "SELECT doc FROM search_docs WHERE room = ? AND seq = ?"


def row_message(row: tuple[object, ...]) -> Message:
    mentions = row[14]
    return message(row, json.loads(str(mentions)) if mentions else ())


def store_event(db: sqlite3.Connection, m: Message) -> Message:
    """Write ``m`` (its seq handed out) and its side effects; returns the event as stored.

    Inside the caller's transaction, one event after the other, so an event sees
    the ones before it in the same batch (a message and its edit, two toggles)."""
    if m.kind is EventKind.MESSAGE:
        _insert(db, m)
        db.execute("INSERT INTO search_docs (room, seq) VALUES (?, ?)", (m.room, m.seq))
        db.execute(
            "INSERT INTO messages_fts (rowid, text) SELECT doc, ?3 FROM search_docs WHERE room = ?1 AND seq = ?2",
            (m.room, m.seq, m.text),
        )
        db.executemany(
            "INSERT OR IGNORE INTO mentions (room, seq, name_key) VALUES (?, ?, ?)",
            [(m.room, m.seq, name_key(name)) for name in m.mentions],
        )
        return m
    found = db.execute(_LIVE, (m.room, m.target)).fetchone()
    live = found is not None and not found[0]
    # What the event row keeps: the text only for an edit of a live message.
    event = replace(m, text=m.text if live and m.kind is EventKind.EDIT else "", mentions=(), emoji=None, on=None)
    if m.kind is EventKind.EDIT and live:
        db.execute(
            "UPDATE messages SET text = ?, edited = ? WHERE room = ? AND seq = ?", (m.text, m.ts, m.room, m.target)
        )
        db.execute(f"UPDATE messages_fts SET text = ? WHERE rowid = ({_DOC})", (m.text, m.room, m.target))
    elif m.kind is EventKind.DELETE and live:
        _scrub(db, m.room, m.target)
    elif m.kind is EventKind.REACTION:
        key = (m.room, m.target, m.emoji, m.name)
        on = False
        if live:
            gone = db.execute(
                "DELETE FROM reactions WHERE room = ? AND target = ? AND emoji = ? AND name = ?", key
            ).rowcount
            if not gone:
                db.execute(
                    "INSERT INTO reactions (room, target, emoji, name, seq) VALUES (?, ?, ?, ?, ?)", (*key, m.seq)
                )
            on = not gone
        event = replace(event, emoji=m.emoji, on=on)
    _insert(db, event)
    return event


def _scrub(db: sqlite3.Connection, room: str, seq: int | None) -> None:
    """Delete a message: its text, its edits' text, its reactions, mentions and search entry."""
    db.execute("UPDATE messages SET text = '', deleted = TRUE, mentions = NULL WHERE room = ? AND seq = ?", (room, seq))
    db.execute("UPDATE messages SET text = '' WHERE room = ? AND target = ? AND kind = 'edit'", (room, seq))
    db.execute("DELETE FROM reactions WHERE room = ? AND target = ?", (room, seq))
    db.execute("DELETE FROM mentions WHERE room = ? AND seq = ?", (room, seq))
    db.execute(f"DELETE FROM messages_fts WHERE rowid = ({_DOC})", (room, seq))
    db.execute("DELETE FROM search_docs WHERE room = ? AND seq = ?", (room, seq))


def _insert(db: sqlite3.Connection, m: Message) -> None:
    mentions = json.dumps(list(m.mentions), ensure_ascii=False) if m.mentions else None
    db.execute(
        _INSERT,
        (m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref, m.guest, str(m.kind), m.target, m.emoji, m.on,
         m.edited, m.deleted, mentions),
    )  # fmt: skip


def fold_reactions(db: sqlite3.Connection, room: str, messages: list[Message]) -> list[Message]:
    """``messages`` (of ``room``) with their reactions, in one range read."""
    seqs = [m.seq for m in messages if m.kind is EventKind.MESSAGE]
    if not seqs:
        return messages
    rows = db.execute(
        "SELECT target, emoji, name FROM reactions WHERE room = ? AND target BETWEEN ? AND ? ORDER BY seq",
        (room, min(seqs), max(seqs)),
    ).fetchall()
    return with_reactions(messages, rows)


def expire_events(db: sqlite3.Connection, cutoff_ms: int, chunk: int) -> int:
    """Retention's chunk: the oldest events and everything kept about them; returns how many."""
    gone = db.execute("SELECT room, seq FROM messages WHERE ts < ? LIMIT ?", (cutoff_ms, chunk)).fetchall()
    for statement in (
        "DELETE FROM reactions WHERE room = ? AND target = ?",
        "DELETE FROM mentions WHERE room = ? AND seq = ?",
        f"DELETE FROM messages_fts WHERE rowid = ({_DOC})",
        "DELETE FROM search_docs WHERE room = ? AND seq = ?",
        "DELETE FROM messages WHERE room = ? AND seq = ?",
    ):
        db.executemany(statement, gone)
    return len(gone)


def search(db: sqlite3.Connection, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]:
    words = search_words(query)
    if not words or not rooms or limit <= 0:
        return []
    rows = db.execute(
        "SELECT m.room, m.seq, m.name, m.ts, m.guest, snippet(messages_fts, 0, '[', ']', '…', 16)"
        " FROM messages_fts JOIN search_docs d ON d.doc = messages_fts.rowid"
        " JOIN messages m ON m.room = d.room AND m.seq = d.seq"
        " WHERE messages_fts MATCH ? AND d.room IN (SELECT value FROM json_each(?)) AND m.ts < ?"
        " ORDER BY m.ts DESC, m.seq DESC LIMIT ?",
        (fts5_query(words), json.dumps(rooms), before if before is not None else 2**62, limit),
    ).fetchall()
    return [SearchHit(room, seq, name, ts, snippet, bool(guest)) for room, seq, name, ts, guest, snippet in rows]


def set_read(db: sqlite3.Connection, account: int, room: str, seq: int, last: int) -> int:
    """Move the marker forward, never past the room's ``last`` seq."""
    row = db.execute(
        "INSERT INTO read_markers (account_id, room, seq) VALUES (?, ?, ?)"
        " ON CONFLICT (account_id, room) DO UPDATE SET seq = max(seq, excluded.seq) RETURNING seq",
        (account, room, max(0, min(seq, last))),
    ).fetchone()
    return int(row[0])


def read_state(db: sqlite3.Connection, account: int, name: str, rooms: list[str]) -> dict[str, ReadState]:
    # An account's messages carry its name exactly as the account holds it.
    states = {}
    key = name_key(name)
    for room in rooms:
        found = db.execute("SELECT seq FROM read_markers WHERE account_id = ? AND room = ?", (account, room)).fetchone()
        read = int(found[0]) if found else 0
        unread = db.execute(
            "SELECT count(*) FROM messages WHERE room = ? AND seq > ? AND kind = 'message' AND NOT deleted"
            " AND NOT (NOT guest AND name = ?)",
            (room, read, name),
        ).fetchone()[0]
        mentions = db.execute(
            "SELECT count(*) FROM mentions x JOIN messages m ON m.room = x.room AND m.seq = x.seq"
            " WHERE x.room = ? AND x.seq > ? AND x.name_key = ? AND NOT m.deleted AND NOT (NOT m.guest AND m.name = ?)",
            (room, read, key, name),
        ).fetchone()[0]
        states[room] = ReadState(read, int(unread), int(mentions))
    return states
