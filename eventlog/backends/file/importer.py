"""The import of an ``events`` export into a data directory (parsed by ``formats``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...errors import SessionExists
from ...events import Event, encode_line
from ...fold import fold
from ...formats import parse_events
from ...model import summarize
from ...notify import Lifecycle
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
    items = []
    for sid, path in written:
        store.adopt(sid, path)
        session = fold(sid, sessions[sid])
        size = os.stat(path).st_size
        items.append((session, sessions[sid], store.layout.relative(path), size))
    store.index.apply(items)
    for session, _, _, _ in items:
        store.hub.emit(Lifecycle("session.started", session.session_id, summarize(session)))
    return [sid for sid, _ in written]


def _write_journals(sessions: dict[str, list[Event]], layout: Layout) -> list[tuple[str, str]]:
    """Write each session's journal atomically (temp file, fsync, link, fsync folder).

    Refuses the whole import, before writing anything, if any session already exists.
    Returns (session_id, path) for each written journal.
    """
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
            raise SessionExists(sid) from None
        os.unlink(tmp)
        fsync_dir(os.path.dirname(path))
        written.append((sid, path))
        faults.reach("import.after_first")
    return written
