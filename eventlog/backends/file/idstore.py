"""The ids of compacted events, so that opening a long journal reads its snapshot and
tail, not every line, and still answers retries of old event ids and message ids.

SPEC §3 makes an append that repeats an event ``id`` or a ``message_id`` a duplicate,
answered with the original seq, however old. The snapshot holds the messages but not
the event ids, so the compactor records here, with each snapshot, the ids of the
events it covers: (session, event id) -> (seq, message id it appended) and (session,
message id) -> seq, plus how far that goes (``covered``: journal inode, offset, seq).
A journal is opened from its snapshot only if this file covers at least as far as the
snapshot, in the same file (inode); otherwise it is read whole, as before. Derived
data: deleting the file costs one full read per long session, nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable

log = logging.getLogger("eventlog")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS covered (session_id TEXT PRIMARY KEY, ino INTEGER, "
    "offset INTEGER, seq INTEGER) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS events (session_id TEXT, event_id TEXT, seq INTEGER, "
    "message_id TEXT, PRIMARY KEY (session_id, event_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS messages (session_id TEXT, message_id TEXT, seq INTEGER, "
    "PRIMARY KEY (session_id, message_id)) WITHOUT ROWID",
)


class IdStore:
    """``ids.sqlite3`` in the data directory; thread-safe, shared between processes."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self.path = path
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as e:  # derived: a broken file is replaced
            log.warning("%s is unreadable (%s); starting it afresh", path, e)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a power cut may drop the last commits (then ``covered`` is behind the
        # snapshot and the journal is read whole), never tear one
        db.execute("PRAGMA synchronous = NORMAL")
        for stmt in _SCHEMA:
            db.execute(stmt)
        return db

    def covered(self, session_id: str) -> tuple[int, int, int] | None:
        """(journal inode, offset, seq) up to which this session's ids are recorded."""
        with self._lock:
            row = self._db.execute(
                "SELECT ino, offset, seq FROM covered WHERE session_id = ?", (session_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def event(self, session_id: str, event_id: str) -> tuple[int, str | None] | None:
        """(seq, message id it appended or None) of a recorded event id."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, message_id FROM events WHERE session_id = ? AND event_id = ?",
                (session_id, event_id),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def message(self, session_id: str, message_id: str) -> int | None:
        """The seq of the message.appended of a recorded message id."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM messages WHERE session_id = ? AND message_id = ?",
                (session_id, message_id),
            ).fetchone()
        return None if row is None else int(row[0])

    def record(
        self,
        session_id: str,
        cover: tuple[int, int, int],
        events: Iterable[tuple[str, int, str | None]],
        messages: Iterable[tuple[str, int]],
        *,
        fresh: bool,
    ) -> None:
        """Record ids up to ``cover`` (inode, offset, seq) in one transaction; ``fresh``
        first forgets what was recorded for the session (another file, or unknown)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if fresh:
                    self._forget(session_id)
                db.executemany(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                    ((session_id, e, s, m) for e, s, m in events),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO messages VALUES (?, ?, ?)",
                    ((session_id, m, s) for m, s in messages),
                )
                # never backwards in the same file (another process compacted further)
                db.execute(
                    "INSERT INTO covered VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO "
                    "UPDATE SET ino = excluded.ino, offset = excluded.offset, seq = excluded.seq "
                    "WHERE excluded.ino != covered.ino OR excluded.offset > covered.offset",
                    (session_id, *cover),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _forget(self, session_id: str) -> None:
        for table in ("covered", "events", "messages"):
            self._db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))

    def forget(self, session_id: str) -> None:
        """Drop a session's ids (it was deleted)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._forget(session_id)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
