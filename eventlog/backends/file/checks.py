"""Checking one journal as ``verify`` does, and the list row of one that cannot be read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from ...errors import EventLogError
from ...fold import fold
from ...model import Session, Stats, to_session
from .scan import read_tail
from .snapshot import read_snapshot, snapshot_path


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
