"""The derived list index: session summaries plus full-text search, in SQLite.

Nothing here is a source of truth: the file can be deleted at any time and rebuilt from
the journals (``Index.rebuild``), and ``stored()`` lets the store find rows that fell
behind. Layout of the file:

- ``sessions``: one row per session; the exact ``Summary`` as a msgpack blob (so a list
  page is a decode, not a re-assembly) plus the columns that filters and ordering need.
- ``tags``: (sid, tag) pairs, indexed both ways, so a tag filter is an index lookup.
- ``totals``: running COUNT/SUM per (archived, type), kept by triggers in the same
  transaction, so the default page does not aggregate over every row.
- ``docs``: FTS5 over message contents and titles. A doc's rowid is ``sid << 32 | slot``
  (slot 0 = title, slot i+1 = message i). Messages are never removed and keep their
  position, so the rowid is derivable and no key table or lookup is needed; a session's
  docs are one rowid range.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ...events import Event, MessageAppended, MessageCompleted, MessageDelta, MessageEdited
from ...model import Message, Session, Summary, summarize
from ...requests import ListRequest
from ...results import ListResult
from . import listing
from .index_schema import (
    ROW_SID,
    SCHEMA,
    SCHEMA_VERSION,
    SEQ_AT,
    TAGS_AT,
    UPSERT,
    UPSERT_ROW,
    Row,
    list_row,
    row_tags,
    statements,
)
from .listing import SLOT_BITS, folded_tags

_REBUILD_BATCH = 2000

_MESSAGE_EVENTS = (MessageAppended, MessageDelta, MessageCompleted, MessageEdited)
_DEL, _INS = 0, 1
_DocOp = tuple[int, tuple[Any, ...]]  # (_DEL, (lo, hi)) or (_INS, (rowid, title, body))


def _default_journal(session: Session) -> str:
    return f"sessions/{session.started_at[:10]}/{session.session_id}.jsonl"


class Index:
    """Derived, rebuildable list/search index in SQLite; never the source of truth."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._lock = threading.Lock()
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes, so two
        # processes queue on busy_timeout instead of failing a read->write upgrade)
        self._db = sqlite3.connect(
            os.fspath(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = OFF")  # derived data: a crash costs a rebuild
        self._db.execute("PRAGMA cache_size = -65536")
        # a rebuild's big transactions would otherwise leave a WAL as big as the index
        self._db.execute("PRAGMA journal_size_limit = 67108864")
        with self._tx():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            self._create(drop=version not in (0, SCHEMA_VERSION))

    def _create(self, drop: bool) -> None:
        if drop:
            for name in ("docs", "undocumented", "totals", "tags", "sessions"):
                self._db.execute(f"DROP TABLE IF EXISTS {name}")
        # not executescript: it would COMMIT the transaction we are in
        for stmt in statements(SCHEMA):
            self._db.execute(stmt)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
        self._db.execute(begin)
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writes ---------------------------------------------------------------------

    def apply(self, items: Iterable[tuple[Session, Sequence[Event], str, int]]) -> None:
        """Index sessions after new events, in one transaction: (session after the events,
        the new events, journal path relative to the data dir, journal size in bytes)."""
        with self._lock, self._tx():
            ops: list[_DocOp] = []
            for session, events, journal, size in items:
                self._apply_one(session, events, journal, size, ops, rebuilding=False)
            self._write_docs(ops)

    def apply_damaged(self, items: Iterable[tuple[Session, str, int, str]]) -> None:
        """List sessions whose journal cannot be read, so they never silently vanish:
        (a stand-in session with what is known, journal path, size, what is wrong)."""
        with self._lock, self._tx():
            ops: list[_DocOp] = []
            for session, journal, size, damaged in items:
                self._apply_one(session, (), journal, size, ops, rebuilding=False, damaged=damaged)
            self._write_docs(ops)

    def _apply_one(
        self,
        session: Session,
        events: Sequence[Event],
        journal: str,
        size: int,
        ops: list[_DocOp],
        *,
        rebuilding: bool,
        damaged: str = "",
    ) -> None:
        """Upsert the row and tags; append the full-text changes to ``ops``."""
        db = self._db
        old = db.execute(
            "SELECT seq, title, tags, message_count FROM sessions WHERE session_id = ?",
            (session.session_id,),
        ).fetchone()
        if old is not None and (
            (events and session.seq < old[0]) or (rebuilding and session.seq <= old[0])
        ):
            # an older state arriving late (a racing writer, or a rebuild overtaken by
            # apply): the row already holds newer truth. An empty-events apply is a
            # reconcile against the journal and always wins.
            return
        full = (
            old is None
            or rebuilding
            # a reconcile (no events) re-reads the journal, which may differ at the same
            # seq (a corrupt line dropped): reindex it all, so the docs only ever cover
            # positions below message_count (incremental writes rely on that)
            or not events
            or (events and (events[0].seq > old[0] + 1 or events[-1].seq != session.seq))
        )
        summary = summarize(session)
        summary.damaged = damaged
        sid = self._upsert(summary, journal, size, old)
        if (
            old is not None
            and db.execute(
                "DELETE FROM undocumented WHERE sid = ? RETURNING sid", (sid,)
            ).fetchall()
        ):
            full = True  # its docs were never written: write them all now
        base = sid << SLOT_BITS
        if full:
            _all_docs(ops, base, session, replace=old is not None)
            return
        if old[1] != session.title:
            ops.append((_DEL, (base, base)))
            if session.title:
                ops.append((_INS, (base, session.title, "")))
        # every message an event touched is re-indexed from its current state in
        # `session`, so deltas never hit FTS and the result equals a full reindex
        touched = {
            e.data.message_id for e in events if e.seq > old[0] and isinstance(e, _MESSAGE_EVENTS)
        }
        for pos, m in _locate(session.messages, touched):
            if m.status == "complete":  # a streaming message is indexed once it completes
                if pos < old[3]:  # positions past the old row's messages were never indexed
                    ops.append((_DEL, (base + pos + 1, base + pos + 1)))
                if m.content:
                    ops.append((_INS, (base + pos + 1, "", m.content)))

    def _upsert(self, summary: Summary, journal: str, size: int, old: Any) -> int:
        """Write the row and tags of a session; returns its sid. ``old`` is the row's
        (seq, title, tags, message_count) before, or None."""
        db = self._db
        row = list_row(summary, journal, size)
        tags = row[TAGS_AT]
        # fetchall, not fetchone: it resets the statement, so the cached one is reused
        sid: int = db.execute(UPSERT, row).fetchall()[0][0]
        if old is None or old[2] != tags:
            if old is not None:
                db.execute("DELETE FROM tags WHERE sid = ?", (sid,))
            db.executemany(
                "INSERT INTO tags VALUES (?, ?)", ((sid, t) for t in folded_tags(summary.tags))
            )
        return sid

    def apply_rows(self, rows: Sequence[Row]) -> None:
        """List sessions now and write their full-text docs later (``undocumented`` /
        ``write_docs``): a cold start of a large copied store lists every session in
        seconds; search finds them as their docs are written. ``rows`` are made by
        ``list_row`` (in the cold start's worker processes). A row that an append made
        newer meanwhile is kept. Statements run per batch, not per row: this is the cold
        start's one serial part."""
        keys = [(r[0], r[SEQ_AT]) for r in rows]  # (session_id, seq)
        tagged = [(t, *key) for r, key in zip(rows, keys, strict=True) for t in row_tags(r)]
        with self._lock, self._tx():
            db = self._db
            db.executemany(UPSERT_ROW, rows)
            db.executemany(f"DELETE FROM tags WHERE sid = ({ROW_SID})", keys)
            if tagged:
                db.executemany(f"INSERT OR IGNORE INTO tags SELECT sid, ? FROM ({ROW_SID})", tagged)
            db.executemany(f"INSERT OR IGNORE INTO undocumented {ROW_SID}", keys)

    def undocumented(self, after: int = 0, limit: int = 500) -> list[tuple[int, str, str, int]]:
        """(sid, session_id, journal, seq) of sessions whose docs are still to write,
        in sid order from ``after`` on."""
        with self._lock:
            return self._db.execute(
                "SELECT u.sid, s.session_id, s.journal, s.seq FROM undocumented u "
                "JOIN sessions s USING (sid) WHERE u.sid > ? ORDER BY u.sid LIMIT ?",
                (after, limit),
            ).fetchall()

    def write_docs(self, items: Iterable[tuple[int, Session]]) -> int:
        """Write the docs of undocumented sessions (sid, session as read from its
        journal); one whose row has moved on meanwhile is left (the apply that moved it
        wrote its docs). Returns how many were written."""
        n = 0
        with self._lock, self._tx():
            db = self._db
            ops: list[_DocOp] = []
            for sid, session in items:
                row = db.execute("SELECT seq FROM sessions WHERE sid = ?", (sid,)).fetchone()
                if row is None or row[0] != session.seq:
                    continue
                if not db.execute(
                    "DELETE FROM undocumented WHERE sid = ? RETURNING sid", (sid,)
                ).fetchall():
                    continue
                _all_docs(ops, sid << SLOT_BITS, session, replace=True)
                n += 1
            self._write_docs(ops)
        return n

    def _write_docs(self, ops: list[_DocOp]) -> None:
        # Runs after every other write of the transaction: FTS5 flushes its in-memory
        # pending terms to a new segment whenever another statement opens a savepoint
        # (any write with triggers does), which made interleaved writes ~8x slower.
        # All deletes, then all inserts in rowid order (about 3x cheaper than
        # alternating); the last insert of a rowid wins, as it would in sequence.
        dels = [args for kind, args in ops if kind == _DEL]
        ins = {args[0]: args for kind, args in ops if kind == _INS}
        if dels:
            self._db.executemany("DELETE FROM docs WHERE rowid BETWEEN ? AND ?", dels)
        if ins:
            self._db.executemany(
                "INSERT INTO docs (rowid, title, body) VALUES (?, ?, ?)",
                (ins[k] for k in sorted(ins)),
            )

    def remove(self, session_id: str) -> None:
        """Forget a session (its row, tags and full-text docs)."""
        with self._lock, self._tx():
            rows = self._db.execute(
                "DELETE FROM sessions WHERE session_id = ? RETURNING sid", (session_id,)
            ).fetchall()
            for row in rows:
                base = row[0] << SLOT_BITS
                self._db.execute("DELETE FROM tags WHERE sid = ?", (row[0],))
                self._db.execute("DELETE FROM undocumented WHERE sid = ?", (row[0],))
                self._db.execute(
                    "DELETE FROM docs WHERE rowid BETWEEN ? AND ?",
                    (base, base + (1 << SLOT_BITS) - 1),
                )

    def rebuild(
        self,
        items: Iterable[Session | tuple[Session, str, int] | tuple[Session, str, int, str]],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Clear the index and index ``items`` (sessions, or (session, journal, size), or
        that and what is damaged (see ``apply_damaged``); a bare session gets the spec's
        journal path and size 0). Commits every few
        thousand sessions, so readers meanwhile see a partial list; returns the count."""
        with self._lock, self._tx():
            self._create(drop=True)  # dropping is much faster than deleting FTS rows
        n = 0
        it = iter(items)
        while True:
            batch = [
                (*x, "")[:4] if isinstance(x, tuple) else (x, _default_journal(x), 0, "")
                for _, x in zip(range(_REBUILD_BATCH), it, strict=False)
            ]
            if not batch:
                break
            # the lock is released between batches so queries and applies are not
            # starved; _apply_one(rebuilding=True) never overwrites a newer row
            with self._lock, self._tx():
                ops: list[_DocOp] = []
                for session, journal, size, damaged in batch:
                    self._apply_one(
                        session, (), journal, size, ops, rebuilding=True, damaged=damaged
                    )
                self._write_docs(ops)
            n += len(batch)
            if progress is not None:
                progress(n)
        with self._lock:
            with self._tx():  # one merged FTS segment answers faster than many
                self._db.execute("INSERT INTO docs (docs) VALUES ('optimize')")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    # -- reads ----------------------------------------------------------------------

    def stored(self) -> dict[str, tuple[int, int]]:
        """session_id -> (indexed seq, journal size), to reconcile with the journals."""
        with self._lock:
            rows = self._db.execute("SELECT session_id, seq, size FROM sessions").fetchall()
        return {sid: (seq, size) for sid, seq, size in rows}

    def journal_of(self, session_id: str) -> str | None:
        """The journal path (relative to the data dir) of an indexed session."""
        with self._lock:
            row = self._db.execute(
                "SELECT journal FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def query(self, req: ListRequest, now: datetime | None = None) -> ListResult:
        """One page of the list for a ``ListRequest`` (see ``listing.query``)."""
        with self._lock, self._tx("BEGIN"):  # one snapshot for the page and aggregates
            return listing.query(self._db, req, now)

    def close(self) -> None:
        """Close the connection (further calls fail)."""
        with self._lock:
            self._db.close()


def _all_docs(ops: list[_DocOp], base: int, session: Session, *, replace: bool) -> None:
    """Every doc of a session (its title and complete messages), replacing any before."""
    if replace:
        ops.append((_DEL, (base, base + (1 << SLOT_BITS) - 1)))
    if session.title:
        ops.append((_INS, (base, session.title, "")))
    ops.extend(
        (_INS, (base + i + 1, "", m.content))
        for i, m in enumerate(session.messages)
        if m.status == "complete" and m.content
    )


def _locate(messages: list[Message], ids: set[str]) -> Iterator[tuple[int, Message]]:
    """(position, message) for each id, searching from the end: the messages events touch
    are nearly always the newest, so a long session is not scanned."""
    left = set(ids)
    for pos in range(len(messages) - 1, -1, -1):
        if not left:
            return
        m = messages[pos]
        if m.message_id in left:
            left.discard(m.message_id)
            yield pos, m
