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

-- One call commits the writes of several sessions (group commit across sessions: one
-- round trip and one WAL flush for everything the instance has ready). For each write,
-- in the order given (sorted by session_id, so two instances never deadlock): lock the
-- head, check it is the seq the writer built on, insert its events at head+1…, update
-- the list row, the search docs and the counters. Returns the head found for each:
-- `base` means written; -1 no such session; anything else, another writer got there
-- first (nothing of that one is written; the others are).
CREATE FUNCTION sessionlog_write_batch(p jsonb) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    w jsonb;
    sid text;
    h bigint;
    base bigint;
    n integer;
    found bigint[] := '{}';
BEGIN
    FOR w IN SELECT value FROM jsonb_array_elements(p) LOOP
        sid := w->>'sid';
        base := (w->>'base')::bigint;
        n := jsonb_array_length(w->'events');
        SELECT head INTO h FROM sessions WHERE session_id = sid FOR UPDATE;
        IF h IS NULL THEN
            found := found || (-1)::bigint;
            CONTINUE;
        END IF;
        found := found || h;
        IF h <> base OR n = 0 THEN
            CONTINUE;
        END IF;
        INSERT INTO events (session_id, seq, event_id, message_id, body)
            SELECT sid, base + e.i, e.v->>'id', e.v->>'mid', e.v->>'body'
            FROM jsonb_array_elements(w->'events') WITH ORDINALITY AS e(v, i);
        UPDATE sessions SET head = base + n, last_updated = w->>'last_updated',
            type = w->>'type', tags = ARRAY(SELECT jsonb_array_elements_text(w->'tags')),
            pinned = (w->>'pinned')::boolean, archived = (w->>'archived')::boolean,
            messages = (w->>'messages')::integer, summary = w->>'summary'
            WHERE session_id = sid;
        INSERT INTO docs (session_id, doc_id, tsv, body, position)
            SELECT sid, d->>'doc_id',
                setweight(to_tsvector('simple', d->>'text'), (d->>'weight')::"char"),
                d->>'text', (d->>'position')::integer
            FROM jsonb_array_elements(w->'docs') AS d
            ON CONFLICT (session_id, doc_id) DO UPDATE
                SET tsv = EXCLUDED.tsv, body = EXCLUDED.body, position = EXCLUDED.position;
        INSERT INTO counter_deltas (session_id, archived, type, n, messages)
            SELECT sid, (c->>'archived')::boolean, c->>'type', (c->>'n')::integer,
                (c->>'messages')::integer
            FROM jsonb_array_elements(w->'counts') AS c;
    END LOOP;
    RETURN found;
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
