"""The PostgreSQL steps of :mod:`chat.backends.schema` (the same tables as SQLite's;
kept apart for their length: ``chat_append`` is defined here, version by version)."""

from __future__ import annotations

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
    4: """
ALTER TABLE messages
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'edit', 'delete', 'reaction')),
    ADD COLUMN target BIGINT,
    ADD COLUMN emoji TEXT,
    ADD COLUMN "on" BOOLEAN,
    ADD COLUMN edited BIGINT,
    ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN mentions TEXT[] NOT NULL DEFAULT '{}';
-- A MESSAGE row's current text, for search ('simple': no stemming, chat is
-- multilingual). Generated, so an edit or a deletion updates it with the text;
-- adding it rewrites the table once, which indexes every existing message.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (CASE WHEN kind = 'message' THEN to_tsvector('simple', text) END) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
CREATE INDEX messages_target ON messages (room, target) WHERE target IS NOT NULL;
CREATE TABLE reactions (
    room TEXT NOT NULL,
    target BIGINT NOT NULL,
    emoji TEXT NOT NULL,
    name TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (room, target, emoji, name)
);
CREATE TABLE mentions (
    room TEXT NOT NULL,
    seq BIGINT NOT NULL,
    name_key TEXT NOT NULL,
    PRIMARY KEY (room, seq, name_key)
);
CREATE TABLE read_markers (
    account_id BIGINT NOT NULL,
    room TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (account_id, room)
);

-- chat_append as in version 3, for every kind of event: each event's side
-- effects run in the same call, in seq order, after the room's counter row is
-- locked (so they are ordered with every other writer of the room). ``p_mentions``
-- and ``p_mention_keys``: per message, a JSON array of names and of their
-- name keys (NULL: none). Rows come back as they are now.
CREATE FUNCTION chat_append(
    p_room TEXT[], p_name TEXT[], p_text TEXT[], p_ts BIGINT[], p_session TEXT[], p_ref TEXT[], p_guest BOOLEAN[],
    p_kind TEXT[], p_target BIGINT[], p_emoji TEXT[], p_mentions TEXT[], p_mention_keys TEXT[]
) RETURNS TABLE (
    pos BIGINT, room TEXT, seq BIGINT, name TEXT, text TEXT, ts BIGINT, session TEXT, ref TEXT, guest BOOLEAN,
    kind TEXT, target BIGINT, emoji TEXT, "on" BOOLEAN, edited BIGINT, deleted BOOLEAN, mentions TEXT[],
    fresh BOOLEAN
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    claimed BIGINT[];
    f_pos BIGINT[];
    f_room TEXT[];
    f_seq BIGINT[];
    e RECORD;
    live BOOLEAN;
    gone BIGINT;
BEGIN
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

    WITH input AS (
        SELECT t.*
        FROM unnest(p_room, p_name, p_text, p_ts, p_session, p_ref, p_guest, p_kind, p_target, p_emoji, p_mentions)
            WITH ORDINALITY AS t(room, name, text, ts, session, ref, guest, kind, target, emoji, mentions, pos)
        WHERE t.ref IS NULL OR t.pos = ANY (claimed)
    ), counts AS (
        SELECT i.room, count(*) AS n, min(i.ts) AS ts FROM input i GROUP BY i.room
    ), bumped AS (
        INSERT INTO rooms AS r (room, last_seq, title, created)
        SELECT c.room, c.n, c.room, c.ts FROM counts c ORDER BY c.room
        ON CONFLICT (room) DO UPDATE SET last_seq = r.last_seq + excluded.last_seq
        RETURNING r.room, r.last_seq
    ), numbered AS (
        SELECT i.*, b.last_seq - c.n + row_number() OVER (PARTITION BY i.room ORDER BY i.pos) AS seq
        FROM input i JOIN counts c ON c.room = i.room JOIN bumped b ON b.room = i.room
    ), stored AS (
        INSERT INTO messages (room, seq, name, text, ts, session, ref, guest, kind, target, emoji, mentions)
        SELECT n.room, n.seq, n.name, CASE WHEN n.kind IN ('message', 'edit') THEN n.text ELSE '' END, n.ts,
            n.session, n.ref, n.guest, n.kind, n.target, n.emoji,
            ARRAY(SELECT jsonb_array_elements_text(coalesce(n.mentions, '[]')::jsonb))
        FROM numbered n
    ), noted AS (
        UPDATE refs SET room = n.room, seq = n.seq, ts = n.ts
        FROM numbered n
        WHERE n.ref IS NOT NULL AND refs.session = n.session AND refs.ref = n.ref
    )
    SELECT coalesce(array_agg(n.pos ORDER BY n.pos), '{}'), coalesce(array_agg(n.room ORDER BY n.pos), '{}'),
        coalesce(array_agg(n.seq ORDER BY n.pos), '{}')
    INTO f_pos, f_room, f_seq FROM numbered n;

    INSERT INTO mentions (room, seq, name_key)
    SELECT DISTINCT f.room, f.seq, k.key
    FROM unnest(f_pos, f_room, f_seq) AS f(pos, room, seq)
    CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(p_mention_keys[f.pos], '[]')::jsonb) AS k(key)
    WHERE p_kind[f.pos] = 'message';

    -- The changes, one after the other: one sees those before it (a message
    -- and its edit in one batch, two toggles). A target that is not a live
    -- message changes nothing.
    FOR e IN
        SELECT f.room AS room, f.seq AS seq, p_kind[f.pos] AS kind, p_target[f.pos] AS target,
            p_emoji[f.pos] AS emoji, p_name[f.pos] AS name, p_text[f.pos] AS text, p_ts[f.pos] AS ts
        FROM unnest(f_pos, f_room, f_seq) AS f(pos, room, seq)
        WHERE p_kind[f.pos] <> 'message'
        ORDER BY f.room, f.seq
    LOOP
        SELECT NOT m.deleted INTO live
            FROM messages m WHERE m.room = e.room AND m.seq = e.target AND m.kind = 'message';
        live := coalesce(live, false);
        IF e.kind = 'edit' THEN
            IF live THEN
                UPDATE messages m SET text = e.text, edited = e.ts WHERE m.room = e.room AND m.seq = e.target;
            ELSE
                UPDATE messages m SET text = '' WHERE m.room = e.room AND m.seq = e.seq;
            END IF;
        ELSIF e.kind = 'delete' THEN
            IF live THEN
                UPDATE messages m SET text = '', deleted = true, mentions = '{}'
                    WHERE m.room = e.room AND m.seq = e.target;
                UPDATE messages m SET text = '' WHERE m.room = e.room AND m.target = e.target AND m.kind = 'edit';
                DELETE FROM reactions r WHERE r.room = e.room AND r.target = e.target;
                DELETE FROM mentions x WHERE x.room = e.room AND x.seq = e.target;
            END IF;
        ELSE
            gone := 0;
            IF live THEN
                DELETE FROM reactions r
                    WHERE r.room = e.room AND r.target = e.target AND r.emoji = e.emoji AND r.name = e.name;
                GET DIAGNOSTICS gone = ROW_COUNT;
                IF gone = 0 THEN
                    INSERT INTO reactions (room, target, emoji, name, seq)
                        VALUES (e.room, e.target, e.emoji, e.name, e.seq);
                END IF;
            END IF;
            UPDATE messages m SET "on" = (live AND gone = 0) WHERE m.room = e.room AND m.seq = e.seq;
        END IF;
    END LOOP;

    RETURN QUERY
    SELECT f.pos, m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref, m.guest, m.kind, m.target, m.emoji, m."on",
        m.edited, m.deleted, m.mentions, true
    FROM unnest(f_pos, f_room, f_seq) AS f(pos, room, seq)
    JOIN messages m ON m.room = f.room AND m.seq = f.seq;

    RETURN QUERY
    SELECT t.pos, m.room, m.seq, m.name, m.text, m.ts, m.session, m.ref, m.guest, m.kind, m.target, m.emoji, m."on",
        m.edited, m.deleted, m.mentions, false
    FROM unnest(p_session, p_ref) WITH ORDINALITY AS t(session, ref, pos)
    JOIN refs r ON r.session = t.session AND r.ref = t.ref
    LEFT JOIN messages m ON m.room = r.room AND m.seq = r.seq
    WHERE t.ref IS NOT NULL AND NOT (t.pos = ANY (claimed));
END
$$;

-- A server of version 3 still running while another migrated (a rolling
-- upgrade) calls the function it knows (and the version 2 wrapper calls it):
-- its rows are messages without mentions.
CREATE OR REPLACE FUNCTION chat_append(
    p_room TEXT[], p_name TEXT[], p_text TEXT[], p_ts BIGINT[], p_session TEXT[], p_ref TEXT[], p_guest BOOLEAN[]
) RETURNS TABLE (
    pos BIGINT, room TEXT, seq BIGINT, name TEXT, text TEXT, ts BIGINT, session TEXT, ref TEXT, guest BOOLEAN,
    fresh BOOLEAN
) LANGUAGE sql AS $$
    SELECT a.pos, a.room, a.seq, a.name, a.text, a.ts, a.session, a.ref, a.guest, a.fresh
    FROM chat_append(
        p_room, p_name, p_text, p_ts, p_session, p_ref, p_guest,
        array_fill('message'::text, ARRAY[cardinality(p_room)]), array_fill(NULL::bigint, ARRAY[cardinality(p_room)]),
        array_fill(NULL::text, ARRAY[cardinality(p_room)]), array_fill(NULL::text, ARRAY[cardinality(p_room)]),
        array_fill(NULL::text, ARRAY[cardinality(p_room)])
    ) a
$$;
""",
}
