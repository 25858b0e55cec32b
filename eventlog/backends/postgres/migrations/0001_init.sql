-- sessionlog schema, version 1. Every key leads with session_id, so the tables can be
-- distributed by session (Citus, partitioning by hash of session_id) without change.
-- The events table is the truth; sessions, docs, snapshots and the counters are derived
-- from it, written in the same transaction as the events they follow.

CREATE TABLE sessions (
    session_id   text PRIMARY KEY,
    head         bigint  NOT NULL,           -- last seq: the row lock on it serialises writers
    snap_seq     bigint  NOT NULL DEFAULT 0, -- seq the snapshot covers (0: none)
    started_at   text    NOT NULL,           -- ISO 8601 UTC with ms and Z: sorts as text
    last_updated text    NOT NULL,
    type         text    NOT NULL,
    tags         text[]  NOT NULL DEFAULT '{}',
    pinned       boolean NOT NULL DEFAULT false,
    archived     boolean NOT NULL DEFAULT false,
    messages     integer NOT NULL DEFAULT 0,
    summary      text    NOT NULL            -- the list row, as JSON (model.Summary)
);
-- the list order (pinned first, newest first), led by archived like its usual filter
CREATE INDEX sessions_order ON sessions (archived, pinned DESC, last_updated DESC, session_id);
CREATE INDEX sessions_order_all ON sessions (pinned DESC, last_updated DESC, session_id);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_tags ON sessions USING gin (tags);
CREATE INDEX sessions_uncompacted ON sessions ((head - snap_seq));

CREATE TABLE events (
    session_id text   NOT NULL,
    seq        bigint NOT NULL,
    event_id   text   NOT NULL,
    message_id text,                          -- set on message.appended only
    body       text   NOT NULL,               -- the journal line (SPEC §2), byte for byte
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, event_id)
);
CREATE UNIQUE INDEX events_message ON events (session_id, message_id)
    WHERE message_id IS NOT NULL;

-- Full-text search: one row per completed message (doc_id = message_id) and one for the
-- title (doc_id = ''), written when a message completes or is edited, never per delta.
CREATE TABLE docs (
    session_id text     NOT NULL,
    doc_id     text     NOT NULL,
    tsv        tsvector NOT NULL,
    PRIMARY KEY (session_id, doc_id)
);
CREATE INDEX docs_tsv ON docs USING gin (tsv);

CREATE TABLE snapshots (
    session_id text PRIMARY KEY,
    seq        bigint NOT NULL,
    body       text   NOT NULL                -- the canonical session JSON at seq
);

-- Session ids ever generated or imported here: a new session never reuses one.
CREATE TABLE used_ids (session_id text PRIMARY KEY);

-- List totals without a count(*) over every session: writers insert deltas (no row
-- is shared between two sessions' writers, so no lock contention); the list sums
-- `totals` plus the pending deltas, and `sessionlog_rollup` folds deltas in.
CREATE TABLE counter_deltas (
    session_id text    NOT NULL,
    id         bigserial,
    archived   boolean NOT NULL,
    type       text    NOT NULL,
    n          integer NOT NULL,
    messages   integer NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE TABLE totals (
    archived boolean NOT NULL,
    type     text    NOT NULL,
    n        bigint  NOT NULL,
    messages bigint  NOT NULL,
    PRIMARY KEY (archived, type)
);

-- One write: lock the head, check it is the one the caller built on, insert the events,
-- update the list row and search docs, queue counter deltas and the wake-up. Called as
-- one statement in autocommit, so the append is one round trip, committed on return.
-- Returns the head found: p_base means written; -1 means no such session; any other
-- value means another writer got there first (the caller catches up and rebuilds).
CREATE FUNCTION sessionlog_write(
    p_sid text, p_base bigint, p_ids text[], p_mids text[], p_bodies text[],
    p_last_updated text, p_type text, p_tags text[], p_pinned boolean, p_archived boolean,
    p_messages integer, p_summary text,
    p_doc_ids text[], p_doc_texts text[], p_doc_weights text[],
    p_cnt_archived boolean[], p_cnt_types text[], p_cnt_n integer[], p_cnt_msgs integer[],
    p_hint text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    h bigint;
    n integer := coalesce(array_length(p_bodies, 1), 0);
BEGIN
    SELECT head INTO h FROM sessions WHERE session_id = p_sid FOR UPDATE;
    IF h IS NULL THEN
        RETURN -1;
    END IF;
    IF h <> p_base OR n = 0 THEN
        RETURN h;
    END IF;
    INSERT INTO events (session_id, seq, event_id, message_id, body)
        SELECT p_sid, p_base + i, p_ids[i], p_mids[i], p_bodies[i]
        FROM generate_series(1, n) AS i;
    UPDATE sessions SET head = p_base + n, last_updated = p_last_updated, type = p_type,
        tags = p_tags, pinned = p_pinned, archived = p_archived, messages = p_messages,
        summary = p_summary
        WHERE session_id = p_sid;
    IF p_doc_ids IS NOT NULL THEN
        INSERT INTO docs (session_id, doc_id, tsv)
            SELECT p_sid, d, setweight(to_tsvector('simple', t), w::"char")
            FROM unnest(p_doc_ids, p_doc_texts, p_doc_weights) AS x(d, t, w)
            ON CONFLICT (session_id, doc_id) DO UPDATE SET tsv = EXCLUDED.tsv;
    END IF;
    IF p_cnt_n IS NOT NULL THEN
        INSERT INTO counter_deltas (session_id, archived, type, n, messages)
            SELECT p_sid, a, t, c, m FROM unnest(p_cnt_archived, p_cnt_types, p_cnt_n, p_cnt_msgs)
                AS x(a, t, c, m);
    END IF;
    PERFORM pg_notify('sessionlog', p_hint);  -- delivered at commit, never before
    RETURN h;
END $$;

-- Fold pending counter deltas into totals (one caller at a time).
CREATE FUNCTION sessionlog_rollup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('sessionlog_rollup')) THEN
        RETURN;
    END IF;
    WITH moved AS (DELETE FROM counter_deltas RETURNING archived, type, n, messages),
    sums AS (SELECT archived, type, sum(n) AS n, sum(messages) AS messages
             FROM moved GROUP BY 1, 2)
    INSERT INTO totals (archived, type, n, messages) SELECT * FROM sums
    ON CONFLICT (archived, type) DO UPDATE
        SET n = totals.n + EXCLUDED.n, messages = totals.messages + EXCLUDED.messages;
END $$;

-- A new session: its id reserved for good, its row, its first event, title doc, count.
-- Returns false (writing nothing) if the id was ever used here.
CREATE FUNCTION sessionlog_start(
    p_sid text, p_event_id text, p_body text, p_started_at text, p_type text,
    p_summary text, p_title text, p_hint text
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO used_ids VALUES (p_sid) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO sessions (session_id, head, started_at, last_updated, type, summary)
        VALUES (p_sid, 1, p_started_at, p_started_at, p_type, p_summary);
    INSERT INTO events (session_id, seq, event_id, body) VALUES (p_sid, 1, p_event_id, p_body);
    IF p_title <> '' THEN
        INSERT INTO docs VALUES (p_sid, '', setweight(to_tsvector('simple', p_title), 'A'));
    END IF;
    INSERT INTO counter_deltas (session_id, archived, type, n, messages)
        VALUES (p_sid, false, p_type, 1, 0);
    PERFORM pg_notify('sessionlog', p_hint);
    RETURN true;
END $$;

-- Delete a session whole, in one transaction (crash-atomic by construction).
CREATE FUNCTION sessionlog_delete(p_sid text, p_hint text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r sessions%ROWTYPE;
BEGIN
    SELECT * INTO r FROM sessions WHERE session_id = p_sid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO counter_deltas (session_id, archived, type, n, messages)
        VALUES (p_sid, r.archived, r.type, -1, -r.messages);
    DELETE FROM events WHERE session_id = p_sid;
    DELETE FROM docs WHERE session_id = p_sid;
    DELETE FROM snapshots WHERE session_id = p_sid;
    DELETE FROM sessions WHERE session_id = p_sid;
    PERFORM pg_notify('sessionlog', p_hint);
    RETURN true;
END $$;
