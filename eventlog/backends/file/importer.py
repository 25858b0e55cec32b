"""The import of an ``events`` export into a data directory (parsed by ``formats``)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ...errors import InvalidRequest, SessionExists
from ...events import Event, SessionStarted, encode_line, encoder
from ...fold import fold
from ...formats import parse_events
from ...model import summarize
from ...notify import Lifecycle
from ...requests import check_session_id
from ...results import ImportOutcome
from . import faults
from .files import fsync_dir, write_temp
from .layout import Layout

if TYPE_CHECKING:
    from .store import Store


def import_into(store: Store, data: bytes) -> list[str]:
    """Import an ``events`` export into ``store``: every journal is written (or, if any
    session exists, none), then indexed and announced; returns the session ids."""
    sessions = parse_events(data)
    written = _write_journals(sessions, store.layout)
    _adopt(store, sessions, written)
    return [sid for sid, _ in written]


def import_sessions(
    store: Store, batch: list[tuple[str, list[Event]]], replace: bool
) -> ImportOutcome:
    """Write whole sessions: one that exists is skipped, or with ``replace`` deleted
    first (then rewritten: a crash in between leaves it gone, and importing again
    brings it back)."""
    out = ImportOutcome()
    sessions: dict[str, list[Event]] = {}
    for sid, events in batch:
        check_session_id(sid)
        if (
            not events
            or not isinstance(events[0], SessionStarted)
            or any(e.seq != i for i, e in enumerate(events, 1))
        ):
            raise InvalidRequest(
                f"invalid import: session {sid!r} must be whole: session.started, then seq "
                "2, 3, … without gaps",
                "sessions",
            )
        if _exists(store, sid, events):
            if not replace:
                out.skipped.append(sid)
                continue
            store.delete(sid)
            out.replaced.append(sid)
        sessions[sid] = events
    data = {sid: encoder.encode_lines(evs) for sid, evs in sessions.items()}
    written = _write_batch(sessions, data, store.layout)
    _adopt(store, sessions, written, {sid: len(b) for sid, b in data.items()})
    out.imported = [sid for sid, _ in written]
    out.skipped += [sid for sid in sessions if sid not in set(out.imported)]
    return out


def _exists(store: Store, sid: str, events: list[Event]) -> bool:
    """Does ``sid`` have a journal? Its own date folder, then the index: not a search of
    every date folder (``Layout.find``), which costs a stat per folder per session. A
    session no index knows yet in another folder is the one case missed; ``os.link``
    still refuses one in the same folder."""
    if os.path.exists(store.layout.journal_path(events[0].ts[:10], sid)):
        return True
    rel = store.index.journal_of(sid)
    if rel is None:
        return False
    try:
        return os.path.exists(store.layout.absolute(rel))
    except ValueError:  # a row naming a path outside the sessions folder: not a journal
        return False


def _adopt(
    store: Store,
    sessions: dict[str, list[Event]],
    written: list[tuple[str, str]],
    sizes: dict[str, int] | None = None,
) -> None:
    """Open, index and announce freshly written journals (``sizes``: their lengths in
    bytes, if known; else each is a stat)."""
    items = []
    for sid, path in written:
        store.adopt(sid, path)
        session = fold(sid, sessions[sid])
        size = sizes[sid] if sizes is not None else os.stat(path).st_size
        items.append((session, sessions[sid], store.layout.relative(path), size))
    store.index.apply(items)
    for session, _, _, _ in items:
        store.hub.emit(Lifecycle("session.started", session.session_id, summarize(session)))


SYNC_THREADS = 32


def _write_batch(
    sessions: dict[str, list[Event]], data: dict[str, bytes], layout: Layout
) -> list[tuple[str, str]]:
    """Like ``_write_journals`` for many sessions at once, skipping one that appears
    meanwhile: each journal is still written to a temp file and fsynced before it is
    linked in, and every folder fsynced after, but the fsyncs run side by side in
    threads (the filesystem commits concurrent fsyncs together: ~4x the serial rate)."""
    jobs = []
    for sid, evs in sessions.items():
        date = evs[0].ts[:10]
        layout.ensure_date_dir(date)
        jobs.append((sid, layout.journal_path(date, sid), data[sid]))
    if not jobs:
        return []

    def temp(job: tuple[str, str, bytes]) -> str | BaseException:
        try:
            return write_temp(job[1], "import", job[2])
        except Exception as e:  # collected: the others' temp files must go too
            return e

    with ThreadPoolExecutor(min(SYNC_THREADS, len(jobs))) as pool:
        temps = list(pool.map(temp, jobs))
        failed = next((t for t in temps if isinstance(t, BaseException)), None)
        written = []
        try:
            if failed is not None:
                raise failed
            for (sid, path, _), tmp in zip(jobs, temps, strict=True):
                try:
                    os.link(str(tmp), path)  # never replaces a journal created meanwhile
                    written.append((sid, path))
                except FileExistsError:
                    pass
        finally:
            for tmp in temps:
                if isinstance(tmp, str):
                    os.unlink(tmp)
        list(pool.map(fsync_dir, sorted({os.path.dirname(p) for _, p in written})))
    return written


def _write_journals(
    sessions: dict[str, list[Event]], layout: Layout, skip_existing: bool = False
) -> list[tuple[str, str]]:
    """Write each session's journal atomically (temp file, fsync, link, fsync folder).

    Refuses the whole import, before writing anything, if any session already exists
    (``skip_existing``: leaves out one that appears meanwhile instead). Returns
    (session_id, path) for each written journal.
    """
    if not skip_existing:
        for sid in sessions:
            if layout.find(sid) is not None:
                raise SessionExists(sid)
    written = []
    for sid, evs in sessions.items():
        date = evs[0].ts[:10]
        layout.ensure_date_dir(date)
        path = layout.journal_path(date, sid)
        tmp = write_temp(path, "import", b"".join(encode_line(e) for e in evs))
        try:
            os.link(tmp, path)  # unlike rename, refuses to replace a journal created meanwhile
        except FileExistsError:
            os.unlink(tmp)
            if skip_existing:
                continue
            raise SessionExists(sid) from None
        os.unlink(tmp)
        fsync_dir(os.path.dirname(path))
        written.append((sid, path))
        faults.reach("import.after_first")
    return written
