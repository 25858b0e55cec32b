"""The compactor: folds journals with new events into their canonical JSON snapshot.

The server runs ``Store.compact`` on its cadence (default every 5 s) and once more on
shutdown; engine-only users can run a ``Compactor`` thread, or rely on ``Store.close``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import TYPE_CHECKING

from .journal import Journal
from .snapshot import load_cold, read_snapshot, write_snapshot

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("eventlog")


def compact_journal(j: Journal) -> None:
    """Snapshot an open journal at its current seq (after making that seq durable, so a
    snapshot never covers lines that a crash could still take away).

    The ids of the events it covers go to the id store first (see ``older.py``), and
    then out of memory: an open session holds the ids since its last snapshot only."""
    j.sync()
    with j.lock:
        session, offset, seq = j.folder.session(), j.offset, j.last_seq
        moving = j.ids_to_move() if j.ids is not None else None
    if j.ids is not None and moving is not None:
        try:
            cover = j.ids.covered(j.session_id)
            fresh = cover is None or cover[0] != j.ino
            j.ids.record(j.session_id, (j.ino, offset, seq), *moving, fresh=fresh)
        except sqlite3.Error as e:  # derived data: the next open reads the whole journal
            log.warning("recording the ids of %s failed: %s", j.path, e)
        else:
            with j.lock:
                j.moved(seq)
    size = write_snapshot(j.path, session, offset)
    with j.lock:
        j.rebase_held(size, offset)


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
