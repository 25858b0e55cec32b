"""Reading journal bytes: complete lines decoded and checked, bad ones reported.

Used by the journal's recovery and catch-up, by cold loads (snapshot + tail) and by
``verify``; nothing here writes or locks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import msgspec

from ...events import Event
from ...lenient import decode_event, decode_events


@dataclass(frozen=True)
class BadLine:
    """A complete journal line that could not be used; the rest of the journal still loads."""

    offset: int
    reason: str


@dataclass
class Scan:
    """What a read of journal bytes found."""

    events: list[Event] = field(default_factory=list)
    end: int = 0  # offset just past the last complete line
    bad: list[BadLine] = field(default_factory=list)
    torn: int = 0  # trailing bytes that are not a complete usable line


def scan(buf: bytes, base: int = 0, last_seq: int = 0) -> Scan:
    """Decode complete lines of ``buf`` (which starts at file offset ``base``).

    Lines must continue the seq after ``last_seq``; a line that repeats an earlier seq
    or cannot be decoded is reported in ``bad``. Bad lines that are not followed by a
    good one form the torn tail (``torn`` bytes) together with any unterminated bytes.
    """
    out = Scan(end=base)
    nl = buf.rfind(b"\n")
    body = buf[: nl + 1] if nl >= 0 else b""
    try:  # fast path: every line good
        events = decode_events(body) if body else []
        if all(e.seq == last_seq + i + 1 for i, e in enumerate(events)):
            out.events = events
            out.end = base + len(body)
            out.torn = len(buf) - len(body)
            return out
    except msgspec.DecodeError:
        pass
    pos = 0
    good_end = 0
    pending_bad: list[BadLine] = []
    while pos < len(body):
        eol = body.index(b"\n", pos)
        line = body[pos:eol]
        try:
            ev = decode_event(line)
            if ev.seq <= last_seq:
                raise ValueError(f"seq {ev.seq} repeats or goes back (last good seq {last_seq})")
        except (msgspec.DecodeError, ValueError) as e:
            pending_bad.append(BadLine(base + pos, str(e)[:200]))
        else:
            out.bad.extend(pending_bad)
            pending_bad = []
            out.events.append(ev)
            last_seq = ev.seq
            good_end = eol + 1
        pos = eol + 1
    out.end = base + good_end
    out.torn = len(buf) - good_end
    return out


def read_tail(path: str, offset: int, last_seq: int) -> Scan:
    """Complete lines of ``path`` from ``offset`` on, without locking or repairing."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        buf = os.pread(fd, max(0, size - offset), offset) if size > offset else b""
    finally:
        os.close(fd)
    return scan(buf, offset, last_seq)


def events_after(path: str, after_seq: int, window: int = 1 << 16) -> Scan:
    """The complete lines of ``path`` with seq > ``after_seq`` (a subscriber's backlog),
    found by bisecting the file on the seq of its lines, so a resume near the head reads
    a few kilobytes, not the whole journal. Lines whose seq cannot be read (corrupt) are
    stepped over; the final stretch (under ``window`` bytes) is scanned as usual."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        lo, lo_seq, hi = 0, 0, size  # lo: a line start; every line before it has seq <= after
        while after_seq > 0 and hi - lo > window:
            found = _line_from(fd, (lo + hi) // 2, hi)
            if found is None:
                hi = (lo + hi) // 2  # no readable line starts in the right half
            elif found[2] <= after_seq:
                lo, lo_seq = found[1], found[2]
            else:
                hi = found[0]
        buf = os.pread(fd, size - lo, lo) if size > lo else b""
    finally:
        os.close(fd)
    out = scan(buf, lo, lo_seq)
    if out.events and out.events[0].seq <= after_seq:
        out.events = [e for e in out.events if e.seq > after_seq]
    return out


def _line_from(fd: int, pos: int, limit: int) -> tuple[int, int, int] | None:
    """(start, end, seq) of the first decodable line that starts after ``pos`` (so
    ``pos`` may fall mid-line) and ends by ``limit``; None if there is none."""
    chunk = 4096
    while pos < limit:
        buf = os.pread(fd, min(chunk, limit - pos), pos)
        nl = buf.find(b"\n")
        eol = buf.find(b"\n", nl + 1) if nl >= 0 else -1
        if eol < 0:  # no whole line in view: look wider (lines can be megabytes)
            if len(buf) < chunk:
                return None
            chunk *= 4
            continue
        start, end = pos + nl + 1, pos + eol + 1
        try:
            return start, end, decode_event(buf[nl + 1 : eol]).seq
        except msgspec.DecodeError:
            pos = start  # a corrupt line: try the one after it
    return None


def seq_of_line_before(fd: int, offset: int, window: int = 1 << 16) -> int | None:
    """The seq of the line that ends at ``offset`` (a snapshot's boundary), or None if
    ``offset`` is not a line end or that line cannot be read within ``window`` bytes."""
    if offset <= 0:
        return None
    start = max(0, offset - window)
    buf = os.pread(fd, offset - start, start)
    if len(buf) != offset - start or not buf.endswith(b"\n"):
        return None
    nl = buf.rfind(b"\n", 0, len(buf) - 1)
    if nl < 0 and start > 0:
        return None  # the line is longer than the window
    try:
        return decode_event(buf[nl + 1 : -1]).seq
    except msgspec.DecodeError:
        return None
