"""Whole-store upkeep: reconcile and rebuild the index, compact everything, verify.

These walk every journal on disk, so they report progress for large stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ...errors import EventLogError
from ...events import Event
from ...model import Session
from . import coldstart, compactor
from .checks import Problem, check_journal, stand_in
from .layout import Layout
from .snapshot import load_cold

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


def reconcile(store: Store, progress: Progress = None, *, docs_later: bool = False) -> int:
    """Index journals whose size differs from what the index recorded (someone wrote
    while no indexer ran); drop index rows whose journal is gone. Returns re-indexed.

    Many stale journals (a copied store, a lost index) are listed first, in worker
    processes, and their full-text docs written after: here, or with ``docs_later`` by
    the caller (``coldstart.fill_docs``), so that a server lists them within seconds."""
    stored = store.index.stored()
    if not stored:  # no index at all (a copied store): every journal is stale
        cut = len(store.layout.root) + 1  # the paths are under the root
        names = list(store.layout.journal_names())
        if len(names) >= coldstart.POOL_MIN:
            return _rows_first(
                store, [(s, p, p[cut:], snap) for s, p, snap in names], progress, docs_later
            )
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
    if len(stale) >= coldstart.POOL_MIN:
        cut = len(store.layout.root) + 1  # journals() paths are under the root
        return _rows_first(store, [(s, p, p[cut:], None) for s, p in stale], progress, docs_later)
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


def _rows_first(
    store: Store, todo: list[coldstart.Item], progress: Progress, docs_later: bool
) -> int:
    """List many journals first, their docs after (here, or by the caller)."""
    coldstart.index_rows(store.index, todo, progress)
    if not docs_later:
        coldstart.fill_docs(store.index, store.layout)
    return len(todo)


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
