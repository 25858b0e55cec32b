"""The list index's SQLite schema and row format, shared by the ``Index`` (which writes
and reads it) and the cold start's worker processes (which build rows for it)."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from typing import Final

import msgspec

from ...model import Summary
from .listing import folded_tags

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    sid INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE,
    started_at TEXT NOT NULL, last_updated TEXT NOT NULL, type TEXT NOT NULL,
    pinned INTEGER NOT NULL, archived INTEGER NOT NULL, message_count INTEGER NOT NULL,
    title TEXT NOT NULL, tags BLOB NOT NULL, seq INTEGER NOT NULL, journal TEXT NOT NULL,
    size INTEGER NOT NULL, summary BLOB NOT NULL
);
-- the list order, for archived = 0/1 and for both (archived IS NULL in the request)
CREATE INDEX IF NOT EXISTS sessions_order
    ON sessions (archived, pinned DESC, last_updated DESC, session_id);
CREATE INDEX IF NOT EXISTS sessions_order_all
    ON sessions (pinned DESC, last_updated DESC, session_id);
-- covering indexes: aggregates and page keys over a date range read no table rows;
-- sessions_today / _this_week only touch the recent end of sessions_started
CREATE INDEX IF NOT EXISTS sessions_started ON sessions
    (archived, started_at, type, message_count, pinned, last_updated, session_id);
CREATE INDEX IF NOT EXISTS sessions_updated
    ON sessions (archived, last_updated, started_at, type, message_count);
-- tag is casefolded: "Work" and "work" are one tag (the summary keeps the spelling)
CREATE TABLE IF NOT EXISTS tags (sid INTEGER, tag TEXT, PRIMARY KEY (sid, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (tag, sid);
CREATE TABLE IF NOT EXISTS totals (
    archived INTEGER, type TEXT, n INTEGER, messages INTEGER, PRIMARY KEY (archived, type)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS sessions_ins AFTER INSERT ON sessions BEGIN
    INSERT INTO totals VALUES (new.archived, new.type, 1, new.message_count)
    ON CONFLICT DO UPDATE SET n = n + 1, messages = messages + excluded.messages;
END;
CREATE TRIGGER IF NOT EXISTS sessions_del AFTER DELETE ON sessions BEGIN
    UPDATE totals SET n = n - 1, messages = messages - old.message_count
    WHERE archived = old.archived AND type = old.type;
END;
CREATE TRIGGER IF NOT EXISTS sessions_upd AFTER UPDATE OF archived, type, message_count
ON sessions BEGIN
    UPDATE totals SET n = n - 1, messages = messages - old.message_count
    WHERE archived = old.archived AND type = old.type;
    INSERT INTO totals VALUES (new.archived, new.type, 1, new.message_count)
    ON CONFLICT DO UPDATE SET n = n + 1, messages = messages + excluded.messages;
END;
-- sessions whose full-text docs are not written yet (a large cold start lists them
-- first and fills their docs after; see Index.apply_rows)
CREATE TABLE IF NOT EXISTS undocumented (sid INTEGER PRIMARY KEY);
CREATE VIRTUAL TABLE IF NOT EXISTS docs
    USING fts5 (title, body, tokenize = 'unicode61 remove_diacritics 2');
"""

COLUMNS = ("session_id", "started_at", "last_updated", "type", "pinned", "archived",
            "message_count", "title", "tags", "seq", "journal", "size", "summary")  # fmt: skip
UPSERT = (
    f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (session_id) DO UPDATE SET ({', '.join(COLUMNS[1:])}) = "
    f"({', '.join('excluded.' + c for c in COLUMNS[1:])}) RETURNING sid"
)
# a list row without docs (apply_rows): kept if an append made it newer meanwhile
UPSERT_ROW = UPSERT.replace(" RETURNING sid", " WHERE excluded.seq >= sessions.seq")
# the sid of a row apply_rows wrote (not one an append made newer)
ROW_SID = "SELECT sid FROM sessions WHERE session_id = ? AND seq = ?"

# Any change to the schema or to Summary (stored as msgpack) changes this, and an index
# file written under another version is dropped on open (stored() is then empty, so the
# store's start-up reconcile re-indexes every journal).
SCHEMA_VERSION = 1 + zlib.crc32((SCHEMA + repr(Summary.__struct_fields__)).encode()) % 2**30
_encode = msgspec.msgpack.Encoder().encode
decode_tags = msgspec.msgpack.Decoder(list[str]).decode
TAGS_AT: Final = 8  # positions in COLUMNS (and in a Row)
SEQ_AT: Final = 9
NO_TAGS = _encode([])


# a ``sessions`` row without its sid, in COLUMNS order (see list_row)
Row = tuple[str, str, str, str, bool, bool, int, str, bytes, int, str, int, bytes]


def list_row(summary: Summary, journal: str, size: int) -> Row:
    """The ``sessions`` row of a session (``COLUMNS`` order): plain values and bytes,
    so a cold start's worker processes build it and this process only inserts it."""
    s = summary
    return (s.session_id, s.started_at, s.last_updated, s.type, s.pinned, s.archived,
            s.message_count, s.title, _encode(sorted(set(s.tags))), s.seq, journal, size,
            _encode(s))  # fmt: skip


def row_tags(row: Row) -> set[str]:
    """The folded tags of a ``list_row`` (its tags column decoded)."""
    blob = row[TAGS_AT]
    return set() if blob == NO_TAGS else folded_tags(decode_tags(blob))


def statements(sql: str) -> Iterator[str]:
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
