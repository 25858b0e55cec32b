"""The file-backed store: sessions as journals under a data directory.

Thread-safe and multi-process-safe. Writes go through ``Journal.append`` with a
handler from ``ops``; listeners hear about events once they are durable; the list
index and snapshots are derived from the journals and caught up in the background.
"""

from __future__ import annotations

import builtins
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

from ... import formats, ops
from ...errors import EventLogError, InvalidRequest, SessionNotFound
from ...events import Event, SessionStarted, SessionStartedData, new_event_id, now_iso
from ...fold import fold
from ...model import Session, Summary, summarize
from ...notify import Hub, Lifecycle, Listener, Published
from ...requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    RecordErrorRequest,
    SaveRequest,
    StartRequest,
    UpdateRequest,
    check,
)
from ...results import ImportOutcome, ListResult, LoadResult
from . import importer, maintenance
from .cache import JournalCache
from .delete import remove_journal
from .derived import DerivedData
from .durability import FsyncPolicy
from .idstore import IdStore
from .index import Index
from .journal import Call, Journal, create
from .layout import Layout
from .scan import events_after
from .snapshot import load_cold, write_snapshot
from .watching import Watching

R = TypeVar("R")


class Store(JournalCache, Watching, DerivedData):
    """Sessions stored as journals under ``root`` (see SPEC §2-3)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "always",
        max_open: int = 512,
        cache_bytes: int = 64 << 20,
        background: bool = True,
        reconcile: bool | Literal["background"] = True,
    ) -> None:
        """``max_open`` and ``cache_bytes`` bound the open journals kept in memory, by
        count and by the session JSON their state holds (memory is about 1.5-2x that).
        ``reconcile`` re-indexes journals changed while no indexer ran: at once
        (True), not at all (False), or on the background thread ("background"), so a
        server answers at once; ``reconciled`` is set when it is done."""
        if fsync not in ("always", "interval", "never"):
            raise InvalidRequest(f"invalid fsync: expected always|interval|never, got {fsync!r}")
        self.layout = Layout(root)
        self.fsync: FsyncPolicy = fsync
        self.hub = Hub()
        self.index = Index(self.layout.index)
        self.ids = IdStore(self.layout.ids)
        self._max_open = max_open
        self._cache_bytes = cache_bytes
        self._mu = threading.Lock()
        self._paths: dict[str, str] = {}
        self._journals: OrderedDict[str, Journal] = OrderedDict()
        self._dirty_index: dict[str, Journal] = {}
        self._dirty_snap: dict[str, Journal] = {}
        self._watched: dict[str, int] = {}
        self._deleting: set[str] = set()  # deletes in progress here (see external_change)
        # sessions deleted while a reconcile runs: it may list one it read just before
        self._gone_in_reconcile: set[str] | None = None
        self._index_lock = threading.Lock()
        self.compact_lock = threading.Lock()
        self._closed = threading.Event()
        self.layout.empty_trash()
        self.layout.sweep_temp()
        self.reconciled = threading.Event()
        self.docs_pending = threading.Event()  # set while full-text docs are being filled
        self._reconcile_later = reconcile == "background" and background
        if reconcile and not self._reconcile_later:
            self.reconcile()
        if not self._reconcile_later:
            self.reconciled.set()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._background, name="eventlog", daemon=True)
            self._thread.start()

    # -- listeners -----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Hear every durable event and lifecycle change; returns an unsubscribe."""
        return self.hub.add(listener)

    def _on_durable(
        self, session_id: str, events: builtins.list[Event], row: Summary | None
    ) -> None:
        self.hub.emit(Published(session_id, events))
        if row is not None:
            self.hub.emit(Lifecycle("session.updated", session_id, row))

    # -- writing through the open journals ---------------------------------------

    def _write(self, session_id: str, build: ops.Build) -> Any:
        """Run a handler against a session's journal; reopen once if it was replaced."""
        for attempt in (1, 2):
            with self._using(session_id) as j:
                try:
                    result = j.append(build)
                except SessionNotFound:
                    if attempt == 2 or not j.deleted:
                        raise
                    continue
                self._mark_dirty(session_id, j)
                return result
        raise AssertionError("unreachable")

    def try_write(
        self, session_id: str, builds: builtins.list[ops.Build]
    ) -> tuple[Journal, builtins.list[Call]] | None:
        """Build and write (not fsync) on an open journal without waiting for another
        process or opening a file; None if that is not possible now (then use the
        blocking ``write``). The caller then runs ``journal.commit(call.end)`` before it
        reads ``call.outcome()`` (nothing is acknowledged before it is durable), and
        ``release(journal)`` once per call: each holds a lease (see ``_journal``)."""
        j = self._lease_open(session_id, len(builds))
        if j is None:
            return None
        try:
            calls = j.try_write(builds)
        except BaseException:
            self.release(j, len(builds))
            raise
        if calls is None or (
            j.deleted and any(isinstance(c.error, SessionNotFound) for c in calls)
        ):  # busy; or replaced underneath us: ``write`` reopens it (nothing written)
            self.release(j, len(builds))
            return None
        if any(c.error is None for c in calls):  # as ``_write``: a failed write marks
            self._mark_dirty(session_id, j)  # nothing (its journal is poisoned, re-read)
        return j, calls

    # -- writes --------------------------------------------------------------------

    def start(self, req: StartRequest | None = None) -> Session:
        """Create a session (its journal holds one session.started event)."""
        req = check(req or StartRequest())
        ts = now_iso()
        date = ts[:10]
        self.layout.ensure_date_dir(date)
        for _ in range(100):
            sid = secrets.token_hex(6)
            path = self.layout.journal_path(date, sid)
            if self.layout.find(sid) is not None:
                continue
            first = SessionStarted(
                seq=1,
                id=new_event_id(),
                ts=ts,
                data=SessionStartedData(req.user_name, req.metadata, req.title),
            )
            try:
                create(path, first)
            except FileExistsError:
                continue
            break
        else:
            raise EventLogError("could not find a free session id after 100 tries")
        session = fold(sid, [first])
        # the canonical JSON exists from the start (the compactor only sees journals
        # with new events, and a session may never get one)
        size = os.stat(path).st_size
        write_snapshot(path, session, size)
        self.adopt(sid, path)
        self.index.apply([(session, [first], self.layout.relative(path), size)])
        self.hub.emit(Lifecycle("session.started", sid, summarize(session)))
        return session

    def write(self, req: ops.WriteRequest) -> Any:
        """Validate and run any write request (the methods below, by type)."""
        req = check(req)
        return self._write(req.session_id, ops.builder(req))

    def append(self, req: AppendRequest) -> ops.Result:
        """Append a message (``partial=True`` starts a streaming message)."""
        return self.write(req)  # type: ignore[no-any-return]

    def delta(self, req: DeltaRequest) -> ops.Result:
        return self.write(req)  # type: ignore[no-any-return]

    def complete(self, req: CompleteRequest) -> ops.Result:
        return self.write(req)  # type: ignore[no-any-return]

    def edit(self, req: EditRequest) -> ops.Result:
        return self.write(req)  # type: ignore[no-any-return]

    def update(self, req: UpdateRequest) -> ops.Result:
        return self.write(req)  # type: ignore[no-any-return]

    def record_error(self, req: RecordErrorRequest) -> ops.Result:
        return self.write(req)  # type: ignore[no-any-return]

    def save(self, req: SaveRequest) -> ops.SaveResult:
        return self.write(req)  # type: ignore[no-any-return]

    # -- reads -----------------------------------------------------------------------

    def load(self, req: LoadRequest | str) -> LoadResult:
        """The current session (snapshot + journal tail), optionally its last N messages."""
        req = check(LoadRequest(session_id=req) if isinstance(req, str) else req)
        session = self._current(req.session_id)
        return LoadResult.window(session, req.message_limit, req.message_before)

    def _current(self, session_id: str) -> Session:
        j = self._lease_open(session_id)
        if j is not None:
            try:
                j.refresh()
                with j.lock:
                    return j.folder.session()
            except SessionNotFound:
                pass
            finally:
                self.release(j)
        session, _, _ = load_cold(self.path_of(session_id), session_id)
        return session

    def head(self, session_id: str) -> int:
        """The session's last seq."""
        return self._current(session_id).seq

    def events(self, session_id: str, after_seq: int = 0) -> builtins.list[Event]:
        """Durable events with seq > ``after_seq``, in order (a subscriber's backlog)."""
        path = self.path_of(session_id)
        try:
            return events_after(path, after_seq).events
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None

    def list(self, req: ListRequest | None = None) -> ListResult:
        """The session list (current: pending index work is flushed first; if that
        cannot be written, as on a full disk, the list is the index as it was)."""
        self._try_flush_index()
        return self.index.query(check(req or ListRequest()))

    # -- export / import ------------------------------------------------------------

    def export(self, req: ExportRequest) -> Iterator[bytes]:
        """The chosen format, a chunk per session, streamed (``all`` reads as it goes).

        Every named session is checked to exist before the first byte is produced.
        """
        req = check(req)
        if req.all:
            ids = [sid for sid, _, _ in self.layout.journals()]
        else:
            ids = formats.named(req)
            for sid in ids:
                self.path_of(sid)
        return formats.chunks(ids, req.format, self.events, self._current)

    def import_events(self, data: bytes) -> builtins.list[str]:
        """Import an ``events`` export; refuses (writing nothing) if any session exists."""
        return importer.import_into(self, data)

    def import_sessions(
        self, sessions: builtins.list[tuple[str, builtins.list[Event]]], replace: bool = False
    ) -> ImportOutcome:
        """Write whole sessions; an existing one is skipped, or replaced with ``replace``."""
        return importer.import_sessions(self, sessions, replace)

    # -- delete ------------------------------------------------------------------------

    def _announce_gone(self, session_id: str) -> None:
        """Drop the list row and tell listeners (our delete, or another process's)."""
        with self._mu:
            if self._gone_in_reconcile is not None:
                self._gone_in_reconcile.add(session_id)
        self.index.remove(session_id)
        self.hub.emit(Lifecycle("session.deleted", session_id, None))

    def delete(self, session_id: str) -> None:
        """Delete a session, crash-atomically (see ``delete.py``)."""
        path = self.path_of(session_id)
        with self._mu:  # the file watcher, seeing our rename, announces nothing
            self._deleting.add(session_id)
        try:
            with self.compact_lock:  # no snapshot written meanwhile resurrects it
                j = self._untrack(session_id)
                remove_journal(path, self.layout.trash, session_id, j)
                self._retire(j)
                self.ids.forget(session_id)
            self._announce_gone(session_id)
        finally:
            with self._mu:
                self._deleting.discard(session_id)

    def compact_all(self, progress: Callable[[int], None] | None = None) -> int:
        """Compact every journal on disk whose snapshot is behind (the CLI's ``compact``)."""
        return maintenance.compact_all(self, progress)

    def reconcile(
        self, progress: Callable[[int], None] | None = None, *, docs_later: bool = False
    ) -> int:
        """Re-index sessions whose journal changed while nobody indexed it; drop gone ones
        (see ``maintenance.reconcile``). A session deleted meanwhile is dropped again at
        the end: the reconcile may have read its journal before the delete and listed it
        after (a cold start lists thousands of rows per transaction)."""
        with self._mu:
            self._gone_in_reconcile = set()
        try:
            return maintenance.reconcile(self, progress, docs_later=docs_later)
        finally:
            with self._mu:
                gone, self._gone_in_reconcile = self._gone_in_reconcile, None
            for sid in gone:
                self.index.remove(sid)

    def is_open(self, session_id: str) -> bool:
        """Is the journal open here (so the index follows it on every append)?"""
        with self._mu:
            return session_id in self._journals

    def health(self) -> dict[str, Any]:
        with self._mu:
            open_journals = len(self._journals)
        return {
            "sessions": self.index.query(ListRequest(limit=1, archived=None)).total_sessions,
            "open_journals": open_journals,
            "fsync": self.fsync,
            "index_reconciled": self.reconciled.is_set(),
            "indexing": not self.reconciled.is_set() or self.docs_pending.is_set(),
            "data_dir": self.layout.root,
        }

    def close(self) -> None:
        """Stop background work, compact once more, close files."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._try_flush_index()
            self.compact()
        finally:
            with self._mu:
                js = list(self._journals.values())
                self._journals.clear()
            for j in js:
                j.close()
            self.index.close()
            self.ids.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
