"""Whole-store upkeep: reconcile and rebuild the index, compact everything, verify.

These walk every journal on disk, so they report progress for large stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ...errors import EventLogError
from ...events import Event
from ...fold import fold
from ...model import Session, Stats, to_session
from . import compactor
from .layout import Layout
from .scan import read_tail
from .snapshot import load_cold, read_snapshot, snapshot_path

if TYPE_CHECKING:
    from .store import Store

Progress = Callable[[int], None] | None


def compact_all(store: Store, progress: Progress = None) -> int:
    n = store.compact()
    for i, (sid, path, size) in enumerate(store.layout.journals()):
        if progress is not None and i % 1000 == 0:
            progress(i)
        with store.compact_lock:
            try:
                n += compactor.compact_path(path, sid, size)
            except EventLogError:
                continue
    return n


def reconcile(store: Store, progress: Progress = None) -> int:
    """Index journals whose size differs from what the index recorded (someone wrote
    while no indexer ran); drop index rows whose journal is gone. Returns re-indexed."""
    stored = store.index.stored()
    seen: set[str] = set()
    stale: list[tuple[str, str]] = []
    for sid, path, size in store.layout.journals():
        seen.add(sid)
        # an open journal's row is kept current by the store; a reconcile running in the
        # background must not overwrite it with what it read a moment earlier
        if stored.get(sid, (0, -1))[1] != size and not store.is_open(sid):
            stale.append((sid, path))
    for sid in stored.keys() - seen:
        store.index.remove(sid)
    items: list[tuple[Session, list[Event], str, int]] = []
    damaged: list[tuple[Session, str, int, str]] = []
    for i, (sid, path) in enumerate(stale):
        if progress is not None and i % 1000 == 0:
            progress(i)
        try:
            session, offset, _ = load_cold(path, sid)
        except FileNotFoundError:
            continue
        except EventLogError as e:
            damaged.append(stand_in(sid, path, store.layout.relative(path), e))
            continue
        items.append((session, [], store.layout.relative(path), offset))
        if len(items) >= 1000:
            store.index.apply(items)
            items = []
    if items:
        store.index.apply(items)
    if damaged:
        store.index.apply_damaged(damaged)
    return len(stale)


def stand_in(sid: str, path: str, relative: str, error: Exception) -> tuple[Session, str, int, str]:
    """The list row of a session whose journal cannot be read (so it never silently
    disappears from the list): what the path and file tell, and what ``verify`` says.
    Returns (session, journal path relative to the data dir, size, what is wrong)."""
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime
    except FileNotFoundError:
        size, mtime = 0, 0.0
    what = "; ".join(p.what for p in check_journal(sid, path, size) if p.path == path)
    date = os.path.basename(os.path.dirname(path))
    started = f"{date}T00:00:00.000Z"
    updated = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    session = Session(
        session_id=sid,
        user_name="",
        started_at=started,
        last_updated=max(started, updated),
        messages=[],
        metadata={},
        stats=Stats(),
        errors=[],
        seq=0,
    )
    return session, relative, size, what or str(error)


def reindex(store: Store, progress: Progress = None) -> int:
    """Rebuild the index from the journals alone (it is derived data)."""
    store.flush_index()

    def sessions() -> Iterator[tuple[Session, str, int, str]]:
        for sid, path, _ in store.layout.journals():
            try:
                session, offset, _ = load_cold(path, sid)
            except FileNotFoundError:
                continue
            except EventLogError as e:
                yield stand_in(sid, path, store.layout.relative(path), e)
                continue
            yield session, store.layout.relative(path), offset, ""

    return store.index.rebuild(sessions(), progress)


@dataclass(frozen=True)
class Problem:
    """Something ``verify`` found, with the file it is in."""

    path: str
    what: str


def check_journal(sid: str, path: str, size: int) -> list[Problem]:
    """What ``verify`` finds wrong with one journal and its snapshot (empty: all good)."""
    scan = read_tail(path, 0, 0)
    problems = [Problem(path, f"byte {b.offset}: unusable line ({b.reason})") for b in scan.bad]
    if scan.torn:
        problems.append(
            Problem(
                path,
                f"{scan.torn} bytes after the last complete line "
                "(a torn write; the next append cuts it off)",
            )
        )
    if not scan.events:
        problems.append(Problem(path, "no readable event"))
        return problems
    seqs = [e.seq for e in scan.events]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(Problem(path, "seq is not 1..N without gaps"))
    try:
        whole = fold(sid, scan.events)
    except EventLogError as e:
        problems.append(Problem(path, str(e)))
        return problems
    snap_file = snapshot_path(path)
    if not os.path.exists(snap_file):
        return problems
    snap = read_snapshot(path)
    if snap is None:
        problems.append(Problem(snap_file, "snapshot does not parse (it is rebuilt by compact)"))
        return problems
    upto = [e for e in scan.events if e.seq <= snap.seq]
    if snap.journal_offset > size:
        problems.append(
            Problem(
                snap_file,
                f"covers offset {snap.journal_offset} but the journal has {size} bytes",
            )
        )
    elif to_session(snap) != fold(sid, upto):
        problems.append(Problem(snap_file, f"differs from the journal folded to seq {snap.seq}"))
    elif snap.seq > whole.seq:
        problems.append(Problem(snap_file, f"is at seq {snap.seq}, ahead of the journal"))
    return problems


def verify(root: str | os.PathLike[str], progress: Progress = None) -> tuple[int, list[Problem]]:
    """Check every journal (decodable lines, seq 1..N, no torn tail, starts with
    session.started) and every snapshot (parses, covers a line boundary, equals the fold
    of the journal up to its seq). Returns (journals checked, problems)."""
    layout = Layout(root)
    problems: list[Problem] = []
    n = 0
    for n, (sid, path, size) in enumerate(layout.journals(), 1):
        if progress is not None and n % 1000 == 0:
            progress(n)
        problems += check_journal(sid, path, size)
    for name in os.listdir(layout.sessions):
        d = os.path.join(layout.sessions, name)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".json") and not os.path.exists(os.path.join(d, f + "l")):
                    problems.append(Problem(os.path.join(d, f), "snapshot without a journal"))
    return n, problems
