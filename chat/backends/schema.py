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

# PostgreSQL: the same tables. ``chat_append`` stores one batch in one call
# (see chat.backends.postgres for why a function).
POSTGRES_STEPS: dict[int, str] = {
    1: """
CREATE TABLE messages (
    room TEXT NOT NULL,
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts BIGINT NOT NULL,
    session TEXT NOT NULL,
    ref TEXT,
    PRIMARY KEY (room, seq)
);
CREATE INDEX messages_refs ON messages (ts) WHERE ref IS NOT NULL;
""",
    2: """
CREATE TABLE rooms (room TEXT PRIMARY KEY, last_seq BIGINT NOT NULL);
INSERT INTO rooms (room, last_seq) SELECT room, MAX(seq) FROM messages GROUP BY room;
CREATE TABLE refs (
    session TEXT NOT NULL,
    ref TEXT NOT NULL,
    room TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (session, ref)
);
INSERT INTO refs (session, ref, room, seq, ts)
    SELECT DISTINCT ON (session, ref) session, ref, room, seq, ts
    FROM messages WHERE ref IS NOT NULL ORDER BY session, ref, ts, room, seq;
CREATE INDEX refs_ts ON refs (ts);
CREATE INDEX messages_ts ON messages (ts);
DROP INDEX messages_refs;

-- One batch: claim its refs, bump its rooms' counters, store its messages,
-- and return, per position in the arrays, the stored message (fresh) or the
-- original of a ref already stored (not fresh). Duplicates take no seq.
CREATE FUNCTION chat_append(
    p_room TEXT[], p_name TEXT[], p_text TEXT[], p_ts BIGINT[], p_session TEXT[], p_ref TEXT[]
) RETURNS TABLE (
    pos BIGINT, room TEXT, seq BIGINT, name TEXT, text TEXT, ts BIGINT, session TEXT, ref TEXT, fresh BOOLEAN
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    claimed BIGINT[];
BEGIN
    -- Refs first, in one order: two batches claiming the same refs cannot
    -- deadlock, and a ref another transaction is storing waits for its commit.
    WITH wanted AS (
        SELECT t.session, t.ref, min(t.pos) AS pos
        FROM unnest(p_session, p_ref) WITH ORDINALITY AS t(session, ref, pos)
        WHERE t.ref IS NOT NULL
        GROUP BY t.session, t.ref
    ), won AS (
        INSERT INTO refs AS r (session, ref, room, seq, ts)
        SELECT w.session, w.ref, '', 0, 0 FROM wanted w ORDER BY w.session, w.ref
        ON CONFLICT DO NOTHING
        RETURNING r.session, r.ref
    )
    SELECT coalesce(array_agg(w.pos), '{}') INTO claimed
    FROM wanted w JOIN won ON won.session = w.session AND won.ref = w.ref;

    RETURN QUERY
    WITH input AS (
        SELECT t.*
        FROM unnest(p_room, p_name, p_text, p_ts, p_session, p_ref)
            WITH ORDINALITY AS t(room, name, text, ts, session, ref, pos)
        WHERE t.ref IS NULL OR t.pos = ANY (claimed)
    ), counts AS (
        SELECT i.room, count(*) AS n FROM input i GROUP BY i.room
    ), bumped AS (
        -- The row lock on each room's counter orders its writers; rooms are
        -- locked in one order, so batches of many rooms cannot deadlock.
        INSERT INTO rooms AS r (room, last_seq)
        SELECT c.room, c.n FROM counts c ORDER BY c.room
        ON CONFLICT (room) DO UPDATE SET last_seq = r.last_seq + excluded.last_seq
        RETURNING r.room, r.last_seq
    ), numbered AS (
        SELECT i.*, b.last_seq - c.n + row_number() OVER (PARTITION BY i.room ORDER BY i.pos) AS seq
        FROM input i JOIN counts c ON c.room = i.room JOIN bumped b ON b.room = i.room
    ), stored AS (
        INSERT INTO messages (room, seq, name, text, ts, session, ref)
        SELECT n.room, n.seq, n.name, n.text, n.ts, n.session, n.ref FROM numbered n
    ), noted AS (
        UPDATE refs SET room = n.room, seq = n.seq, ts = n.ts
        FROM numbered n
        WHERE n.ref IS NOT NULL AND refs.session = n.session AND refs.ref = n.ref
    )
    SELECT n.pos, n.room, n.seq, n.name, n.text, n.ts, n.session, n.ref, true FROM numbered n;

    RETURN QUERY
    SELECT t.pos, m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref, false
    FROM unnest(p_session, p_ref) WITH ORDINALITY AS t(session, ref, pos)
    JOIN refs r ON r.session = t.session AND r.ref = t.ref
    LEFT JOIN messages m ON m.room = r.room AND m.seq = r.seq
    WHERE t.ref IS NOT NULL AND NOT (t.pos = ANY (claimed));
END
$$;
""",
    3: """
CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL
);
CREATE TABLE auth_sessions (
    hash TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    created BIGINT NOT NULL,
    last_used BIGINT NOT NULL
);
CREATE INDEX auth_sessions_account ON auth_sessions (account_id);
CREATE TABLE tokens (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    label TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    last_used BIGINT,
    revoked BIGINT
);
CREATE INDEX tokens_account ON tokens (account_id);
CREATE TABLE invites (
    hash TEXT PRIMARY KEY,
    created_by BIGINT NOT NULL REFERENCES accounts (id),
    created BIGINT NOT NULL,
    used_by BIGINT REFERENCES accounts (id),
    used_at BIGINT
);
ALTER TABLE rooms
    ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm')),
    ADD COLUMN title TEXT NOT NULL DEFAULT '',
    ADD COLUMN created BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN dm_key TEXT;
UPDATE rooms SET title = room,
    created = coalesce((SELECT ts FROM messages m WHERE m.room = rooms.room AND m.seq = 1), 0);
CREATE UNIQUE INDEX rooms_dm ON rooms (dm_key) WHERE dm_key IS NOT NULL;
CREATE TABLE memberships (
    room TEXT NOT NULL REFERENCES rooms (room),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    standing TEXT NOT NULL CHECK (standing IN ('owner', 'moderator', 'member', 'banned')),
    since BIGINT NOT NULL,
    PRIMARY KEY (room, account_id)
);
CREATE INDEX memberships_account ON memberships (account_id);
-- Instant however long the history (a constant default is not written into old rows).
ALTER TABLE messages ADD COLUMN guest BOOLEAN NOT NULL DEFAULT TRUE;

-- chat_append as in version 2, with each message's guest flag (and a room's
-- new row titled by its name): the arguments change, so it is a new function.
DROP FUNCTION chat_append(TEXT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[]);
CREATE FUNCTION chat_append(
    p_room TEXT[], p_name TEXT[], p_text TEXT[], p_ts BIGINT[], p_session TEXT[], p_ref TEXT[], p_guest BOOLEAN[]
) RETURNS TABLE (
    pos BIGINT, room TEXT, seq BIGINT, name TEXT, text TEXT, ts BIGINT, session TEXT, ref TEXT, guest BOOLEAN,
    fresh BOOLEAN
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    claimed BIGINT[];
BEGIN
    -- Refs first, in one order: two batches claiming the same refs cannot
    -- deadlock, and a ref another transaction is storing waits for its commit.
    WITH wanted AS (
        SELECT t.session, t.ref, min(t.pos) AS pos
        FROM unnest(p_session, p_ref) WITH ORDINALITY AS t(session, ref, pos)
        WHERE t.ref IS NOT NULL
        GROUP BY t.session, t.ref
    ), won AS (
        INSERT INTO refs AS r (session, ref, room, seq, ts)
        SELECT w.session, w.ref, '', 0, 0 FROM wanted w ORDER BY w.session, w.ref
        ON CONFLICT DO NOTHING
        RETURNING r.session, r.ref
    )
    SELECT coalesce(array_agg(w.pos), '{}') INTO claimed
    FROM wanted w JOIN won ON won.session = w.session AND won.ref = w.ref;

    RETURN QUERY
    WITH input AS (
        SELECT t.*
        FROM unnest(p_room, p_name, p_text, p_ts, p_session, p_ref, p_guest)
            WITH ORDINALITY AS t(room, name, text, ts, session, ref, guest, pos)
        WHERE t.ref IS NULL OR t.pos = ANY (claimed)
    ), counts AS (
        SELECT i.room, count(*) AS n, min(i.ts) AS ts FROM input i GROUP BY i.room
    ), bumped AS (
        -- The row lock on each room's counter orders its writers; rooms are
        -- locked in one order, so batches of many rooms cannot deadlock.
        INSERT INTO rooms AS r (room, last_seq, title, created)
        SELECT c.room, c.n, c.room, c.ts FROM counts c ORDER BY c.room
        ON CONFLICT (room) DO UPDATE SET last_seq = r.last_seq + excluded.last_seq
        RETURNING r.room, r.last_seq
    ), numbered AS (
        SELECT i.*, b.last_seq - c.n + row_number() OVER (PARTITION BY i.room ORDER BY i.pos) AS seq
        FROM input i JOIN counts c ON c.room = i.room JOIN bumped b ON b.room = i.room
    ), stored AS (
        INSERT INTO messages (room, seq, name, text, ts, session, ref, guest)
        SELECT n.room, n.seq, n.name, n.text, n.ts, n.session, n.ref, n.guest FROM numbered n
    ), noted AS (
        UPDATE refs SET room = n.room, seq = n.seq, ts = n.ts
        FROM numbered n
        WHERE n.ref IS NOT NULL AND refs.session = n.session AND refs.ref = n.ref
    )
    SELECT n.pos, n.room, n.seq, n.name, n.text, n.ts, n.session, n.ref, n.guest, true FROM numbered n;

    RETURN QUERY
    SELECT t.pos, m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref, m.guest, false
    FROM unnest(p_session, p_ref) WITH ORDINALITY AS t(session, ref, pos)
    JOIN refs r ON r.session = t.session AND r.ref = t.ref
    LEFT JOIN messages m ON m.room = r.room AND m.seq = r.seq
    WHERE t.ref IS NOT NULL AND NOT (t.pos = ANY (claimed));
END
$$;

-- A server of version 2 still running while another migrated (a rolling
-- upgrade) calls the function it knows: its messages, all under nicknames,
-- are stored as guest messages until it is replaced.
CREATE FUNCTION chat_append(
    p_room TEXT[], p_name TEXT[], p_text TEXT[], p_ts BIGINT[], p_session TEXT[], p_ref TEXT[]
) RETURNS TABLE (
    pos BIGINT, room TEXT, seq BIGINT, name TEXT, text TEXT, ts BIGINT, session TEXT, ref TEXT, fresh BOOLEAN
) LANGUAGE sql AS $$
    SELECT a.pos, a.room, a.seq, a.name, a.text, a.ts, a.session, a.ref, a.fresh
    FROM chat_append(p_room, p_name, p_text, p_ts, p_session, p_ref, array_fill(true, ARRAY[cardinality(p_room)])) a
$$;
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
