"""Derived data kept behind the journals: the list index and the snapshots.

Mixed into ``Store``: flushing the journals with news into the index (the background
thread does, every 0.2 s, and runs the interval fsync there too), and the compactor's
pass over the journals with news for their snapshot.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import EventLogError, StorageError
from . import coldstart, compactor
from .priority import demote_this_thread

if TYPE_CHECKING:
    from .durability import FsyncPolicy
    from .index import Index
    from .journal import Journal
    from .layout import Layout

log = logging.getLogger("eventlog")


class DerivedData:
    """Mixed into ``Store``; relies on its journal cache and maps."""

    _mu: threading.Lock
    _index_lock: threading.Lock
    compact_lock: threading.Lock
    _journals: dict[str, Journal]
    _dirty_index: dict[str, Journal]
    _dirty_snap: dict[str, Journal]
    _reconcile_later: bool
    _closed: threading.Event
    reconciled: threading.Event
    docs_pending: threading.Event
    fsync: FsyncPolicy
    index: Index
    layout: Layout

    def reconcile(
        self, progress: Callable[[int], None] | None = None, *, docs_later: bool = False
    ) -> int:
        raise NotImplementedError

    def _journal(self, session_id: str) -> Journal:
        raise NotImplementedError

    def release(self, j: Journal, n: int = 1) -> None:
        raise NotImplementedError

    def trim(self) -> None:
        raise NotImplementedError

    def _mark_dirty(self, session_id: str, j: Journal) -> None:
        """``j`` has events the index and the snapshot do not have yet."""
        with self._mu:
            self._dirty_index[session_id] = j
            self._dirty_snap[session_id] = j

    def flush_index(self) -> None:
        """Bring the list index up to date with everything appended so far.

        If the index cannot be written (a full disk), every session of this flush stays
        queued, for a reconcile of its whole row next time (the events taken for it are
        gone), and StorageError says so; the index is left as it was, still readable."""
        with self._index_lock:
            with self._mu:
                dirty, self._dirty_index = self._dirty_index, {}
            items = []
            used: list[tuple[str, Journal]] = []
            for sid, j in dirty.items():
                if j.poisoned and not j.deleted:
                    # its state holds what a failed write applied but never saved: read
                    # the session from the file instead (the replacement reindexes it)
                    try:
                        j = self._journal(sid)
                    except (EventLogError, OSError) as e:
                        log.warning("index: session %s left as it was: %s", sid, e)
                        continue
                    self.release(j)  # only its state is read, under its lock
                with j.lock:
                    if j.deleted:
                        continue
                    events, j.unindexed = j.unindexed, []
                    if j.reindex:  # no events: a reconcile of the whole session
                        events, j.reindex = [], False
                    items.append(
                        (j.folder.session(), events, self.layout.relative(j.path), j.offset)
                    )
                    used.append((sid, j))
            if not items:
                return
            try:
                self.index.apply(items)
            except (sqlite3.Error, OSError) as e:
                for sid, j in used:
                    with j.lock:
                        j.reindex = True
                    with self._mu:
                        self._dirty_index.setdefault(sid, j)
                raise StorageError(
                    f"writing the list index failed ({e}); the list and search show the "
                    "sessions as they were until it succeeds (retried every flush): "
                    "free disk space",
                    getattr(e, "errno", None),
                ) from e

    def _try_flush_index(self) -> None:
        """``flush_index``, logging a failure rather than raising it: the index stays
        as it was, still readable (reads go on while the disk is full), and the next
        flush, or the reconcile at the next start, catches up."""
        try:
            self.flush_index()
        except StorageError as e:
            log.warning("the index was left as it was: %s", e)

    def compact(self) -> int:
        """Write snapshots for sessions with new events; returns how many were written."""
        with self._mu:
            dirty, self._dirty_snap = self._dirty_snap, {}
            for j in dirty.values():  # leased: not evicted (closed) while compacted
                j.users += 1
        n = 0
        for sid, j in dirty.items():
            try:
                with self.compact_lock:  # delete takes it too: no snapshot resurrects it
                    if j.deleted or j.poisoned:
                        continue
                    try:
                        compactor.compact_journal(j)
                        n += 1
                    except (OSError, EventLogError):
                        with self._mu:  # try again next round
                            self._dirty_snap.setdefault(sid, j)
            finally:
                self.release(j)
        return n

    def _sync_all(self) -> None:
        """fsync every open journal (the ``interval`` policy's flusher)."""
        with self._mu:
            js = list(self._journals.values())
            for j in js:  # leased: not evicted (closed) while synced
                j.users += 1
        try:
            for j in js:
                if not (j.deleted or j.poisoned):
                    try:
                        j.sync()
                    except EventLogError as e:  # poisoned now; the others still get theirs
                        log.warning("interval fsync: %s", e)
        finally:
            for j in js:
                self.release(j)

    def _background(self) -> None:
        demote_this_thread()  # index flushes can wait; a request being answered cannot
        self.docs_pending.set()  # until _fill_docs has looked (health says "indexing")
        if self._reconcile_later:
            try:
                self.reconcile(docs_later=True)
            except Exception:
                log.exception("reconciling the index with the journals failed")
            finally:
                self.reconciled.set()
        # sessions listed without their full-text docs (now, or by an earlier run): on a
        # thread of their own, so the index flush and interval fsync go on meanwhile
        docs = threading.Thread(target=self._fill_docs, name="eventlog-docs", daemon=True)
        docs.start()
        try:
            self._flush_loop()
        finally:
            docs.join()

    def _fill_docs(self) -> None:
        demote_this_thread()
        try:
            coldstart.fill_docs(self.index, self.layout, self._closed)
        except Exception:
            log.exception("writing the full-text index failed; the next start resumes it")
        finally:
            self.docs_pending.clear()

    def _flush_loop(self) -> None:
        tick = 0
        failing = False  # the index write fails (a full disk): say so once, not 5x a second
        while not self._closed.wait(0.2):
            tick += 1
            try:
                try:
                    self.flush_index()
                    failing = False
                except StorageError as e:
                    if not failing:
                        log.warning("%s", e)
                    failing = True
                if self.fsync == "interval" and tick % 5 == 0:
                    self._sync_all()
                if tick % 5 == 0:
                    self.trim()  # open journals grow with appends, not only with opens
            except Exception:  # a hiccup must not kill the thread; say what it was
                log.exception("background index flush / interval fsync failed")
