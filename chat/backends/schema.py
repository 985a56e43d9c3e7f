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

Where the version is kept: SQLite's ``PRAGMA user_version``; PostgreSQL's
``schema_version`` table (one row).
"""

from __future__ import annotations

import sqlite3

from chat.backends.base import SchemaTooNew

VERSION = 2

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
