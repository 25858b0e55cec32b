"""A journal's id maps (``SessionState.event_ids`` and friends) split in two: the ids
of events since the last compaction in memory, the older ones in the ``IdStore``.

``ops`` reads them as plain dicts (``in``, ``[]``, ``get``); a miss in memory asks the
id store, once anything of this journal has been moved there (``moved_upto``). So an
open session holds its recent ids only, and a journal opened from its snapshot never
reads the lines before it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...fold import Folder
from ...model import to_session
from .scan import seq_of_line_before
from .snapshot import read_snapshot, snapshot_path

if TYPE_CHECKING:
    from .idstore import IdStore

_MISSING: Any = object()


class Layered(dict[str, Any]):
    """A dict whose misses fall back to ``lookup`` (None: not there either)."""

    __slots__ = ("lookup",)

    def __init__(self, lookup: Callable[[str], Any]) -> None:
        super().__init__()
        self.lookup = lookup

    def __missing__(self, key: str) -> Any:
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (
            isinstance(key, str) and self.lookup(key) is not None
        )

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            value = self.lookup(key)
        return default if value is None else value

    def drop(self, keep: Callable[[str, Any], bool]) -> None:
        """Forget the in-memory entries ``keep`` says no to (moved to the id store)."""
        for k in [k for k, v in self.items() if not keep(k, v)]:
            del self[k]


class OlderState:
    """Mixed into ``Journal``: its id maps in two layers, starting from the snapshot,
    moving ids to the id store, and how much session JSON the state holds."""

    path: str
    fd: int
    ino: int
    session_id: str
    offset: int
    moved_upto: int
    _held_base: int
    _held_from: int
    folder: Folder
    partial: set[str]
    event_ids: dict[str, int]
    message_seq: dict[str, int]
    message_of_event: dict[str, str]

    def _layer(self, ids: IdStore) -> None:
        """Id maps whose misses ask the id store once ids were moved there."""
        sid = self.session_id

        def event(key: str) -> tuple[int, str | None] | None:
            return ids.event(sid, key) if self.moved_upto else None

        def message(mid: str) -> int | None:
            # a message the folder does not have was never appended: no query
            if not self.moved_upto or self.folder.message(mid) is None:
                return None
            return ids.message(sid, mid)

        self.event_ids = Layered(lambda k: (found := event(k)) and found[0])
        self.message_of_event = Layered(lambda k: (found := event(k)) and found[1])
        self.message_seq = Layered(message)

    def _start_from_snapshot(self, ids: IdStore) -> None:
        """Start from the snapshot instead of line 1 when that is safe: the snapshot ends
        on the line of its seq, and the id store covers at least as far in this file."""
        snap = read_snapshot(self.path)
        if snap is None or snap.session_id != self.session_id or snap.seq < 1:
            return
        cover = ids.covered(self.session_id)
        size = os.fstat(self.fd).st_size
        off = snap.journal_offset
        if cover is None or cover[0] != self.ino or cover[1] < off or max(off, cover[1]) > size:
            return
        if seq_of_line_before(self.fd, off) != snap.seq:
            return
        base = to_session(snap)
        with contextlib.suppress(OSError):
            self._held_base = os.path.getsize(snapshot_path(self.path))
        self._held_from = off
        self.folder = Folder(self.session_id, base)
        self.partial = {m.message_id for m in base.messages if m.status == "partial"}
        self.offset = off
        self.moved_upto = cover[2]

    @property
    def held(self) -> int:
        """About how much session JSON the in-memory state holds (the cache's measure)."""
        return self._held_base + self.offset - self._held_from

    def rebase_held(self, snapshot_bytes: int, offset: int) -> None:
        """A snapshot of ``snapshot_bytes`` now says what the state up to ``offset`` is
        (deltas folded, ids moved out): measure from there (caller holds ``lock``)."""
        self._held_base, self._held_from = snapshot_bytes, offset

    def ids_to_move(self) -> tuple[list[tuple[str, int, str | None]], list[tuple[str, int]]]:
        """The in-memory ids (caller holds ``lock``): (event id, seq, message id) and
        (message id, seq), for the compactor to record."""
        mids = self.message_of_event
        events = [(e, s, dict.get(mids, e)) for e, s in dict.items(self.event_ids)]
        return events, list(dict.items(self.message_seq))

    def moved(self, seq: int) -> None:
        """Ids up to ``seq`` are recorded in the id store: drop them from memory (caller
        holds ``lock``)."""
        ev, ms, mo = self.event_ids, self.message_seq, self.message_of_event
        if isinstance(ev, Layered) and isinstance(ms, Layered) and isinstance(mo, Layered):
            ev.drop(lambda k, s: s > seq)
            ms.drop(lambda k, s: s > seq)
            mo.drop(lambda k, m: dict.__contains__(ev, k))
            self.moved_upto = max(self.moved_upto, seq)
