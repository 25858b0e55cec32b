"""Snapshots: the canonical session JSON beside each journal, and the cold load path.

A snapshot records the journal offset it covers, so a load reads the snapshot plus
the journal from that offset on: never the whole journal, never stale.
"""

from __future__ import annotations

import contextlib
import os

import msgspec

from ...errors import JournalCorrupt, SessionNotFound
from ...fold import fold
from ...model import Session, Snapshot, to_session
from . import faults
from .files import fsync_dir, write_temp
from .scan import BadLine, read_tail

_snap_decoder = msgspec.json.Decoder(Snapshot)
_encoder = msgspec.json.Encoder()


def snapshot_path(journal_path: str) -> str:
    """``…/{id}.jsonl`` → ``…/{id}.json``."""
    return journal_path[:-1]


def write_snapshot(journal_path: str, session: Session, offset: int) -> int:
    """Atomically replace the snapshot: temp file, fsync, rename, fsync the folder.
    Returns its size in bytes."""
    fields = msgspec.structs.asdict(session)
    data = _encoder.encode(Snapshot(**fields, journal_offset=offset))
    final = snapshot_path(journal_path)
    tmp = write_temp(final, "tmp", data)
    try:
        faults.reach("snapshot.after_temp")
        os.rename(tmp, final)
        faults.reach("snapshot.after_rename")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(final))
    return len(data)


def read_snapshot(journal_path: str) -> Snapshot | None:
    """The snapshot beside a journal, or None if absent or unreadable (it is derived)."""
    try:
        with open(snapshot_path(journal_path), "rb") as f:
            return _snap_decoder.decode(f.read())
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def _usable(journal_path: str, snap: Snapshot) -> bool:
    """Does the snapshot's offset fall on a line boundary of this journal?"""
    if snap.journal_offset <= 0:
        return False
    try:
        fd = os.open(journal_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return os.pread(fd, 1, snap.journal_offset - 1) == b"\n"
    finally:
        os.close(fd)


def load_cold(
    journal_path: str, session_id: str, use_snapshot: bool = True
) -> tuple[Session, int, list[BadLine]]:
    """Snapshot + journal tail (or the whole journal), without opening it for writing.

    Returns the session, the offset past the last line folded in, and bad lines seen.
    """
    if not os.path.exists(journal_path):
        raise SessionNotFound(session_id)
    snap = read_snapshot(journal_path) if use_snapshot else None
    if snap is not None and snap.session_id == session_id and _usable(journal_path, snap):
        try:
            tail = read_tail(journal_path, snap.journal_offset, snap.seq)
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        if not tail.events or tail.events[0].seq == snap.seq + 1:
            base = to_session(snap)
            return fold(session_id, tail.events, base), tail.end, tail.bad
    try:
        whole = read_tail(journal_path, 0, 0)
    except FileNotFoundError:
        raise SessionNotFound(session_id) from None
    if not whole.events:
        raise JournalCorrupt(f"{journal_path} holds no readable event: run `sessionlog verify`")
    return fold(session_id, whole.events), whole.end, whole.bad
