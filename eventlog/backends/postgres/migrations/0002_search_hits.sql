-- Version 2: search hits say which message matched, with a snippet (ts_headline needs
-- the text, and the page jumps to the message's position); tags filter without case
-- (sessions.tags holds them casefolded; the summary keeps each spelling); the week's
-- count reads an index alone; and the functions no longer NOTIFY: a NOTIFY inside the
-- writing transaction holds the database-wide notify lock through its commit, so
-- writers hint after commit, batched (hints.py). Rows written by version 1 get their
-- search text and position from `sessionlog reindex`.

ALTER TABLE docs ADD COLUMN body text NOT NULL DEFAULT '';
ALTER TABLE docs ADD COLUMN position integer;  -- the message's index; NULL: the title
UPDATE sessions SET tags = (SELECT coalesce(array_agg(DISTINCT lower(t)), '{}') FROM unnest(tags) t);

-- the week's count and `until` read (archived, started_at) alone; with archived unset the
-- list asks for `archived IN (false, true)`, which the same index answers, so the index
-- on started_at alone goes: one index fewer to update on every write
CREATE INDEX sessions_archived_started ON sessions (archived, started_at);
DROP INDEX sessions_started;
-- compaction's work list: only sessions far past their snapshot have an entry, so a
-- write to any other session leaves this index alone (the old one changed on every write)
DROP INDEX sessions_uncompacted;
CREATE INDEX sessions_to_compact ON sessions (session_id) WHERE head - snap_seq >= 200;

DROP FUNCTION sessionlog_start(text, text, text, text, text, text, text, text);
DROP FUNCTION sessionlog_delete(text, text);
DROP FUNCTION sessionlog_write(text, bigint, text[], text[], text[], text, text, text[], boolean,
    boolean, integer, text, text[], text[], text[], boolean[], text[], integer[], integer[], text);

CREATE FUNCTION sessionlog_write(
    p_sid text, p_base bigint, p_ids text[], p_mids text[], p_bodies text[],
    p_last_updated text, p_type text, p_tags text[], p_pinned boolean, p_archived boolean,
    p_messages integer, p_summary text,
    p_doc_ids text[], p_doc_texts text[], p_doc_weights text[], p_doc_positions integer[],
    p_cnt_archived boolean[], p_cnt_types text[], p_cnt_n integer[], p_cnt_msgs integer[]
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
        INSERT INTO docs (session_id, doc_id, tsv, body, position)
            SELECT p_sid, d, setweight(to_tsvector('simple', t), w::"char"), t, p
            FROM unnest(p_doc_ids, p_doc_texts, p_doc_weights, p_doc_positions) AS x(d, t, w, p)
            ON CONFLICT (session_id, doc_id) DO UPDATE
                SET tsv = EXCLUDED.tsv, body = EXCLUDED.body, position = EXCLUDED.position;
    END IF;
    IF p_cnt_n IS NOT NULL THEN
        INSERT INTO counter_deltas (session_id, archived, type, n, messages)
            SELECT p_sid, a, t, c, m FROM unnest(p_cnt_archived, p_cnt_types, p_cnt_n, p_cnt_msgs)
                AS x(a, t, c, m);
    END IF;
    RETURN h;
END $$;

CREATE FUNCTION sessionlog_start(
    p_sid text, p_event_id text, p_body text, p_started_at text, p_type text,
    p_summary text, p_title text
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
        INSERT INTO docs (session_id, doc_id, tsv, body)
            VALUES (p_sid, '', setweight(to_tsvector('simple', p_title), 'A'), p_title);
    END IF;
    INSERT INTO counter_deltas (session_id, archived, type, n, messages)
        VALUES (p_sid, false, p_type, 1, 0);
    RETURN true;
END $$;

CREATE FUNCTION sessionlog_delete(p_sid text) RETURNS boolean LANGUAGE plpgsql AS $$
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
    RETURN true;
END $$;
