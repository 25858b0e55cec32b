"""Following journals that other processes write: the part of ``Store`` the server's
file watcher drives (and ``watch``/``unwatch``, which keep a journal open meanwhile)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ...errors import EventLogError, SessionNotFound
from ...events import Event
from ...model import summarize
from ...notify import Hub, Lifecycle
from .checks import stand_in
from .snapshot import load_cold

if TYPE_CHECKING:
    from .index import Index
    from .journal import Journal
    from .layout import Layout


class Watching:
    """Mixed into ``Store``; relies on its journal cache and maps."""

    _mu: threading.Lock
    _journals: dict[str, Journal]
    _paths: dict[str, str]
    # DerivedData's (a plain annotation: a stub here would shadow it in Store's MRO)
    _mark_dirty: Callable[[str, Journal], None]
    _watched: dict[str, int]
    _deleting: set[str]
    index: Index
    hub: Hub
    layout: Layout

    def _using(self, session_id: str) -> AbstractContextManager[Journal]:
        raise NotImplementedError

    def path_of(self, session_id: str) -> str:
        raise NotImplementedError

    def _untrack(self, session_id: str) -> Journal | None:
        raise NotImplementedError

    def _retire(self, j: Journal | None) -> None:
        raise NotImplementedError

    def _announce_gone(self, session_id: str) -> None:
        raise NotImplementedError

    def refresh(self, session_id: str) -> list[Event]:
        """Pick up events another process appended to a journal we have open; for one we
        do not have open, publish them too (the watcher calls this on file changes)."""
        with self._using(session_id) as j:
            try:
                events = j.refresh()
            except SessionNotFound:
                return []
            if events:
                self._mark_dirty(session_id, j)
            return events

    def unchanged(self, session_id: str) -> bool:
        """Is the journal open here and the file exactly what we wrote or read (same
        inode, size at our offset)? Then a change the watcher saw was our own append and
        needs no ``external_change``: one stat, no lock, safe on an event loop."""
        with self._mu:
            j = self._journals.get(session_id)
        if j is None or j.poisoned or j.deleted:
            return False
        try:
            st = os.stat(j.path)
        except OSError:
            return False
        return st.st_ino == j.ino and st.st_size == j.offset

    def forget(self, session_id: str) -> None:
        """A journal vanished underneath us (another process deleted it)."""
        j = self._untrack(session_id)
        if j is not None:
            j.deleted = True
        self._retire(j)
        self._announce_gone(session_id)

    def watch(self, session_id: str) -> int:
        """Keep the session's journal open (so events that other processes append are
        published on ``external_change``) until a matching ``unwatch``; returns head."""
        with self._using(session_id) as j:
            with self._mu:
                self._watched[session_id] = self._watched.get(session_id, 0) + 1
            j.refresh()
            return j.last_seq

    def unwatch(self, session_id: str) -> None:
        with self._mu:
            n = self._watched.get(session_id, 0) - 1
            if n > 0:
                self._watched[session_id] = n
            else:
                self._watched.pop(session_id, None)

    def external_change(self, session_id: str) -> None:
        """A journal was created, appended to or removed by someone else."""
        # "Known" is this process's view (``_paths``, filled by reconcile/start/path_of),
        # not the index: the index file is shared, and the other process's Store has
        # already added/removed its row, which would hide the change from us.
        with self._mu:
            if session_id in self._deleting:
                return  # our own delete, mid-way: it announces the deletion itself
            known = session_id in self._paths or session_id in self._journals
        try:
            path = self.path_of(session_id)
        except SessionNotFound:
            if known or self.index.journal_of(session_id) is not None:
                self.forget(session_id)
            return
        with self._mu:
            is_open = session_id in self._journals
        if is_open:
            self.refresh(session_id)
            return
        if not known:  # new to us: a session.started
            rel = self.layout.relative(path)
            try:
                session, offset, _ = load_cold(path, session_id)
            except SessionNotFound:
                return
            except EventLogError as e:  # listed as damaged, never silently missing
                row = stand_in(session_id, path, rel, e)
                self.index.apply_damaged([row])
                summary = summarize(row[0])
                summary.damaged = row[3]
                self.hub.emit(Lifecycle("session.started", session_id, summary))
                return
            self.index.apply([(session, [], rel, offset)])
            self.hub.emit(Lifecycle("session.started", session_id, summarize(session)))
