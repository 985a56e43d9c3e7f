"""The history schema, versioned, the same tables on SQLite and PostgreSQL.

Each engine has its numbered steps: step ``n`` takes a database from version
``n - 1`` to ``n``. A store opening a database runs the steps it lacks in one
transaction (:func:`migrate_sqlite`; ``PostgresHistory`` for PostgreSQL), and
refuses a database newer than :data:`VERSION` with :class:`SchemaTooNew`.

- Version 1: ``messages``, the schema released before versions existed
  (a SQLite file of that release has ``user_version`` 0 and that table).
- Version 2:
  - ``rooms(room, last_seq)``: each room's newest seq, bumped in the transaction
    that stores its messages. A room's seq never goes back, even once retention
    has deleted all its messages, and on PostgreSQL the row lock on it is what
    orders concurrent writers of one room.
  - ``refs(session, ref) -> (room, seq, ts)``: one row per ref, the first message
    stored with it. Its primary key makes a retried ref a duplicate in every
    process, for as long as the message is kept. A table rather than a unique
    index on ``messages``: version 1 stored a ref again when it came back more
    than the idempotency window later, and those messages must stay as they are.
  - ``messages_ts`` replaces ``messages_refs``: retention deletes by age, and
    ``recent_refs`` filters the same index.
- Version 3: accounts and access control (:class:`chat.backends.base.Directory`,
  :mod:`chat.backends.directory_sql`):
  - ``accounts``: ``name`` as typed, ``name_key`` (:func:`chat.core.validation.name_key`)
    unique, so no two accounts differ only by case; the Argon2 hash; ``admin``, ``disabled``.
  - ``auth_sessions`` (the page's sign-ins), ``tokens`` (for scripts) and ``invites``
    (single-use sign-up codes) keep SHA-256 hashes of their secrets, never the secrets.
  - ``memberships(room, account_id) -> standing``: owner, moderator, member or banned.
  - ``rooms`` gains ``visibility``, ``kind``, ``title``, ``created`` and ``dm_key``
    (a DM's sorted account ids, unique: the same people get the same DM). Every
    room of version 2 was public and titled by its name, and so it stays.
  - ``messages.guest``: not sent by an account. Every message of version 2 was
    sent under a nickname, so they all migrate as guest messages.
  Retention deletes messages and refs only: rooms and memberships are kept.
- Version 4: one event log per room (issue 13). Every change takes the room's
  next seq in ``messages``, through the same append path:
  - ``messages`` gains ``kind`` (message, edit, delete, reaction), ``target``
    (the message an event changes), ``emoji`` and ``on`` (a reaction, and which
    way it toggled), and, on MESSAGE rows as they are now, ``edited`` (ms),
    ``deleted`` and ``mentions``. Every row of version 3 is a message.
  - ``reactions(room, target, emoji, name)``: who reacted with what, now.
  - ``mentions(room, seq, name_key)``: whom a message names, for unread badges.
  - ``read_markers(account_id, room) -> seq``: how far an account has read.
  - Full-text search over MESSAGE rows' current text: on SQLite an FTS5 table
    ``messages_fts`` (unicode61 tokenizer, no stemming: chat is multilingual)
    whose rowid is ``search_docs.doc`` for (room, seq), maintained in the append
    transaction; on PostgreSQL a generated ``tsvector`` column (config
    'simple') with a GIN index. The migration indexes every existing message.
  A deletion empties the message's text and its edits' text and removes its
  reactions, mentions and search entry in the event's transaction.

Where the version is kept: SQLite's ``PRAGMA user_version``; PostgreSQL's
``schema_version`` table (one row).
"""

from __future__ import annotations

import sqlite3

from chat.backends.base import SchemaTooNew
from chat.backends.schema_postgres import POSTGRES_STEPS

__all__ = ["POSTGRES_STEPS", "SQLITE_STEPS", "VERSION", "migrate_sqlite", "sqlite_version", "too_new"]

VERSION = 4

SQLITE_STEPS: dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session TEXT NOT NULL,
    ref TEXT,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_refs ON messages (ts) WHERE ref IS NOT NULL;
""",
    2: """
CREATE TABLE rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO rooms (room, last_seq) SELECT room, MAX(seq) FROM messages GROUP BY room;
CREATE TABLE refs (
    session TEXT NOT NULL,
    ref TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (session, ref)
) WITHOUT ROWID;
-- The first message stored with a ref is its original.
INSERT OR IGNORE INTO refs (session, ref, room, seq, ts)
    SELECT session, ref, room, seq, ts FROM messages WHERE ref IS NOT NULL ORDER BY ts, room, seq;
CREATE INDEX refs_ts ON refs (ts);
CREATE INDEX messages_ts ON messages (ts);
DROP INDEX messages_refs;
""",
    3: """
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created INTEGER NOT NULL
);
CREATE TABLE auth_sessions (
    hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX auth_sessions_account ON auth_sessions (account_id);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    label TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    last_used INTEGER,
    revoked INTEGER
);
CREATE INDEX tokens_account ON tokens (account_id);
CREATE TABLE invites (
    hash TEXT PRIMARY KEY,
    created_by INTEGER NOT NULL REFERENCES accounts (id),
    created INTEGER NOT NULL,
    used_by INTEGER REFERENCES accounts (id),
    used_at INTEGER
) WITHOUT ROWID;
ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private'));
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm'));
ALTER TABLE rooms ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN dm_key TEXT;
-- A public room is titled by its name; created: its first message, if retention kept it.
UPDATE rooms SET title = room,
    created = coalesce((SELECT ts FROM messages m WHERE m.room = rooms.room AND m.seq = 1), 0);
CREATE UNIQUE INDEX rooms_dm ON rooms (dm_key) WHERE dm_key IS NOT NULL;
CREATE TABLE memberships (
    room TEXT NOT NULL REFERENCES rooms (room),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    standing TEXT NOT NULL CHECK (standing IN ('owner', 'moderator', 'member', 'banned')),
    since INTEGER NOT NULL,
    PRIMARY KEY (room, account_id)
) WITHOUT ROWID;
CREATE INDEX memberships_account ON memberships (account_id);
-- Every message so far was sent under a nickname. A default rather than a
-- rebuilt table: adding the column is instant however long the history; every
-- insert from now on says what it is.
ALTER TABLE messages ADD COLUMN guest BOOLEAN NOT NULL DEFAULT TRUE;
""",
    4: """
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message'
    CHECK (kind IN ('message', 'edit', 'delete', 'reaction'));
ALTER TABLE messages ADD COLUMN target INTEGER;
ALTER TABLE messages ADD COLUMN emoji TEXT;
ALTER TABLE messages ADD COLUMN "on" BOOLEAN;
ALTER TABLE messages ADD COLUMN edited INTEGER;
ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
-- A JSON array of names, NULL for none (SQLite has no arrays).
ALTER TABLE messages ADD COLUMN mentions TEXT;
-- A deletion finds the edits of its target.
CREATE INDEX messages_target ON messages (room, target) WHERE target IS NOT NULL;
CREATE TABLE reactions (
    room TEXT NOT NULL,
    target INTEGER NOT NULL,
    emoji TEXT NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (room, target, emoji, name)
) WITHOUT ROWID;
CREATE TABLE mentions (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name_key TEXT NOT NULL,
    PRIMARY KEY (room, seq, name_key)
) WITHOUT ROWID;
CREATE TABLE read_markers (
    account_id INTEGER NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (account_id, room)
) WITHOUT ROWID;
-- messages has no rowid (WITHOUT ROWID): this gives each indexed message one.
CREATE TABLE search_docs (doc INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL, UNIQUE (room, seq));
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, tokenize = 'unicode61');
INSERT INTO search_docs (room, seq) SELECT room, seq FROM messages ORDER BY ts, room, seq;
INSERT INTO messages_fts (rowid, text)
    SELECT d.doc, m.text FROM search_docs d JOIN messages m ON m.room = d.room AND m.seq = d.seq;
""",
}

POSTGRES_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"


def too_new(found: int, where: str) -> SchemaTooNew:
    return SchemaTooNew(
        f"{where} has history schema version {found}, newer than this server's {VERSION}:"
        " run a newer server, or restore a backup made for this one"
    )


def sqlite_version(db: sqlite3.Connection) -> int:
    """The file's version; 0 for an empty file, 1 for one of the release before versions."""
    found: int = db.execute("PRAGMA user_version").fetchone()[0]
    if found == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone():
        return 1
    return found


def migrate_sqlite(db: sqlite3.Connection, where: str) -> int:
    """Bring ``db`` (autocommit mode) to :data:`VERSION` in one transaction; returns the version it had."""
    db.execute("BEGIN IMMEDIATE")  # the write lock first: no other process migrates at the same time
    try:
        found = sqlite_version(db)
        if found > VERSION:
            raise too_new(found, where)
        for step in range(found + 1, VERSION + 1):
            # executescript would commit first: run the statements one by one.
            for statement in _statements(SQLITE_STEPS[step]):
                db.execute(statement)
        if found != VERSION:
            db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if found == 0:
        # A new file: version 2 dropped version 1's index, leaving a free page.
        # Give it back (instant while empty), so the file holds only what it uses.
        db.execute("VACUUM")
    return found


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
