"""The store's open journals: finding a session's file, a cache of open journals with
leases, and LRU eviction past ``max_open`` journals or ``cache_bytes`` of session JSON
held in their state (``Journal.held``).

Mixed into ``Store`` (first, so these methods win over the other mixins' stubs).
Everything here is guarded by the store's ``_mu``. A journal handed out by ``_journal``
is leased until ``release``; a leased journal is never evicted, and one dropped from the
cache while leased (replaced after a failure, deleted) is closed at its last release.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator

from ...errors import SessionNotFound
from ...events import Event
from ...model import Summary
from ...notify import Hub
from ...requests import check_session_id
from .durability import FsyncPolicy
from .idstore import IdStore
from .journal import Journal
from .layout import Layout


class JournalCache:
    """Mixed into ``Store``; relies on its maps and lock."""

    _mu: threading.Lock
    _max_open: int
    _cache_bytes: int
    _paths: dict[str, str]
    _journals: OrderedDict[str, Journal]
    _dirty_index: dict[str, Journal]
    _dirty_snap: dict[str, Journal]
    _watched: dict[str, int]
    layout: Layout
    ids: IdStore
    fsync: FsyncPolicy
    hub: Hub
    # DerivedData's and Store's (annotations, not stubs: a stub here would shadow them)
    _mark_dirty: Callable[[str, Journal], None]
    _on_durable: Callable[[str, list[Event], Summary | None], None]

    def path_of(self, session_id: str) -> str:
        """The journal path of a session, or SessionNotFound."""
        check_session_id(session_id)
        with self._mu:
            p = self._paths.get(session_id)
        if p is not None and os.path.exists(p):
            return p
        p = self.layout.find(session_id)
        with self._mu:
            if p is None:
                self._paths.pop(session_id, None)
                raise SessionNotFound(session_id)
            self._paths[session_id] = p
        return p

    def adopt(self, session_id: str, path: str) -> None:
        """A journal this store just created: remember where it is."""
        with self._mu:
            self._paths[session_id] = path

    def _journal(self, session_id: str) -> Journal:
        """The session's journal, opened if need be, and leased: give it back with
        ``release`` (``_using`` does both). A leased journal is never evicted, so no
        append finds its file closed, or its fd number reused, halfway."""
        j = self._lease_open(session_id)
        if j is not None:
            return j
        with self._mu:
            j = self._journals.get(session_id)
        # after a failed write/fsync, the new journal publishes what the old one wrote
        # but never published (subscribers must not see a gap)
        resume = j.published_seq if j is not None and j.poisoned and not j.deleted else None
        path = self.path_of(session_id)
        fresh = Journal(
            path,
            session_id,
            self.fsync,
            self._on_durable,
            resume_after=resume,
            listening=self.hub.listening,
            ids=self.ids,
        )
        with self._mu:
            old = self._journals.pop(session_id, None)
            if old is not None and not (old.poisoned or old.deleted):
                self._journals[session_id] = old  # another thread won the race
                old.users += 1
                fresh.close()
                return old
            self._journals[session_id] = fresh
            fresh.users = 1
            self._evict()
        self._retire(old)
        if fresh.reindex:  # the index may hold what the poisoned journal never saved
            self._mark_dirty(session_id, fresh)
        return fresh

    def _lease_open(self, session_id: str, n: int = 1) -> Journal | None:
        """The session's journal with ``n`` leases, if it is open and usable (not
        poisoned or deleted); None otherwise. Never opens a file."""
        with self._mu:
            j = self._journals.get(session_id)
            if j is None or j.poisoned or j.deleted:
                return None
            self._journals.move_to_end(session_id)
            j.users += n
            return j

    def release(self, j: Journal, n: int = 1) -> None:
        """Give back ``n`` leases on ``j`` (from ``_journal`` or ``try_write``)."""
        with self._mu:
            j.users -= n
            close = j.retired and j.users == 0
        if close:
            j.close()

    def _retire(self, j: Journal | None) -> None:
        """Close a journal taken out of the cache: now, or at its last lease's release
        (a writer holding it then meets the flags that made us drop it, not a closed
        file descriptor, nor one whose number another file reuses)."""
        if j is None:
            return
        with self._mu:
            if j.users:
                j.retired = True
                return
        j.close()

    @contextlib.contextmanager
    def _using(self, session_id: str) -> Iterator[Journal]:
        """``with`` a leased journal (see ``_journal``)."""
        j = self._journal(session_id)
        try:
            yield j
        finally:
            self.release(j)

    def _evict(self) -> None:
        """Close least recently used journals while over either cap (caller holds
        ``_mu``); one in use, dirty or watched stays, over the cap until a later call
        (the next open, or the background thread's next tick)."""
        held = sum(j.held for j in self._journals.values())
        while len(self._journals) > self._max_open or held > self._cache_bytes:
            for sid, j in self._journals.items():
                if not (
                    j.users
                    or sid in self._dirty_index
                    or sid in self._dirty_snap
                    or sid in self._watched
                ):
                    del self._journals[sid]
                    held -= j.held
                    j.close()
                    break
            else:
                return

    def trim(self) -> None:
        """Apply the caps now (appends grow open journals without opening any)."""
        with self._mu:
            self._evict()

    def _untrack(self, session_id: str) -> Journal | None:
        """Forget a session in this process's maps; returns its journal if it was open."""
        with self._mu:
            self._paths.pop(session_id, None)
            self._dirty_index.pop(session_id, None)
            self._dirty_snap.pop(session_id, None)
            return self._journals.pop(session_id, None)
