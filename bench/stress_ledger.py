"""What bench/stress.py's clients were told (``Ledger``) and the check of a data
directory against it after a crash (``check``)."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eventlog.backends.file.maintenance import verify
from eventlog.backends.file.scan import read_tail
from eventlog.events import MessageAppended

ACTIVE = 6  # sessions written and subscribed to in a cycle


# -- what clients were told -----------------------------------------------------------------


@dataclass
class Ledger:
    """Everything acknowledged to (or seen by) a client, across all cycles."""

    sessions: list[str] = field(default_factory=list)  # acknowledged starts
    acked: dict[tuple[str, str], int] = field(default_factory=dict)  # (sid, mid) -> seq
    tried: dict[tuple[str, str], None] = field(default_factory=dict)  # in order, unacked
    seen: dict[str, dict[int, str]] = field(default_factory=dict)  # sid -> seq -> event id
    resume: dict[tuple[int, str], int] = field(default_factory=dict)  # (subscriber, sid) -> seq
    appends_acked: int = 0
    duplicates_acked: int = 0
    ack_conflicts: int = 0  # the same (sid, mid) acked at two different seqs
    errors: Counter[str] = field(default_factory=Counter)  # unexpected error answers
    sub_gaps: int = 0
    sub_mismatches: int = 0  # two subscribers got different events for one seq
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def active(self) -> list[str]:
        """The sessions clients use now: the newest few (every acked session is still
        checked after every kill)."""
        return self.sessions[-ACTIVE:]

    def next_mid(self, who: str) -> str:
        return f"{who}-{next(self.ids)}"

    def try_(self, sid: str, mid: str) -> None:
        self.tried[(sid, mid)] = None

    def ack(self, sid: str, mid: str, seq: int, duplicate: bool) -> None:
        key = (sid, mid)
        old = self.acked.get(key)
        if old is not None and old != seq:
            self.ack_conflicts += 1
        self.acked[key] = seq
        self.tried.pop(key, None)
        self.appends_acked += 1
        self.duplicates_acked += duplicate

    def event(self, who: int, sid: str, seq: int, eid: str) -> None:
        last = self.resume.get((who, sid), 0)
        if seq != last + 1:
            self.sub_gaps += 1
        self.resume[(who, sid)] = max(last, seq)
        if self.seen.setdefault(sid, {}).setdefault(seq, eid) != eid:
            self.sub_mismatches += 1


@dataclass
class Check:
    lost: int = 0
    duplicated: int = 0
    gaps: int = 0
    unverified: int = 0
    unpublished: int = 0
    details: list[str] = field(default_factory=list)

    def bad(self) -> bool:
        return bool(
            self.lost or self.duplicated or self.gaps or self.unverified or self.unpublished
        )


def journal_path(data: Path, sid: str) -> Path | None:
    found = list((data / "sessions").glob(f"*/{sid}.jsonl"))
    return found[0] if found else None


def check(data: Path, ledger: Ledger) -> Check:
    """The invariants, read straight from the files (nothing is opened for writing)."""
    c = Check()
    acked_in: dict[str, list[tuple[str, int]]] = {}
    for (asid, mid), seq in ledger.acked.items():
        acked_in.setdefault(asid, []).append((mid, seq))
    for sid in ledger.sessions:
        path = journal_path(data, sid)
        if path is None:
            c.lost += 1
            c.details.append(f"session {sid} was started (acked) but has no journal")
            continue
        scan = read_tail(str(path), 0, 0)
        seqs = [e.seq for e in scan.events]
        if scan.bad or seqs != list(range(1, len(seqs) + 1)):
            c.gaps += 1
            c.details.append(f"{sid}: seq not 1..N or bad lines {scan.bad[:3]}")
        at: dict[str, list[int]] = {}
        for e in scan.events:
            if isinstance(e, MessageAppended):
                at.setdefault(e.data.message_id, []).append(e.seq)
        for mid, where in at.items():
            if len(where) > 1:
                c.duplicated += len(where) - 1
                c.details.append(f"{sid}: {mid} written at seqs {where}")
        by_seq = {e.seq: e.id for e in scan.events}
        for seq, eid in ledger.seen.get(sid, {}).items():
            if by_seq.get(seq) != eid:
                c.unpublished += 1
                c.details.append(
                    f"{sid}: a subscriber got seq {seq} ({eid}), the journal has {by_seq.get(seq)}"
                )
        for mid, seq in acked_in.get(sid, []):
            if at.get(mid, [None])[0] != seq:
                c.lost += 1
                c.details.append(f"{sid}: acked {mid}@{seq}, journal has {at.get(mid)}")
    _, problems = verify(data)
    for p in problems:
        if "torn write" not in p.what:
            c.unverified += 1
            c.details.append(f"verify: {p.path}: {p.what}")
    return c
