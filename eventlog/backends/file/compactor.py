"""The compactor: folds journals with new events into their canonical JSON snapshot.

The server runs ``Store.compact`` on its cadence (default every 5 s) and once more on
shutdown; engine-only users can run a ``Compactor`` thread, or rely on ``Store.close``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .journal import Journal
from .snapshot import load_cold, read_snapshot, write_snapshot

if TYPE_CHECKING:
    from .store import Store


def compact_journal(j: Journal) -> None:
    """Snapshot an open journal at its current seq (after making that seq durable, so a
    snapshot never covers lines that a crash could still take away)."""
    j.sync()
    with j.lock:
        session, offset = j.folder.session(), j.offset
    write_snapshot(j.path, session, offset)


def compact_path(path: str, session_id: str, size: int) -> int:
    """Snapshot a journal on disk if its snapshot is behind; returns 1 if written."""
    snap = read_snapshot(path)
    if snap is not None and snap.journal_offset == size:
        return 0
    session, offset, _ = load_cold(path, session_id, use_snapshot=False)
    if snap is not None and snap.journal_offset == offset:
        return 0  # only a torn or live partial line beyond it
    write_snapshot(path, session, offset)
    return 1


class Compactor:
    """Runs ``store.compact()`` every ``interval`` seconds on a thread."""

    def __init__(self, store: Store, interval: float = 5.0) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compactor", daemon=True)

    def start(self) -> Compactor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.store.compact()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.store.compact()
