"""Test-only fault injection: crash points and injected I/O errors, off by default.

Set ``SESSIONLOG_CRASH_AT=<point>[:<n>]`` to SIGKILL the process the n-th time (default
1st) it reaches ``<point>``; set ``SESSIONLOG_FAULTS=<point>=<errno name>[:<n>],…`` to
raise that OSError at ``<point>`` from the n-th time on (``ENOSPC``, ``EIO``…), until the
file named by ``SESSIONLOG_FAULTS_OFF`` exists (so a test can "free the disk").
Both are read once at import; with neither set, ``reach`` is a dictionary lookup.

Points: journal.after_write (before fsync), journal.after_fsync (before ack),
journal.write, journal.fsync (error points), snapshot.after_temp (before rename),
snapshot.after_rename (before the folder fsync), delete.after_rename (mid-delete),
import.after_first (between two imported sessions).
"""

from __future__ import annotations

import errno
import os
import signal

_crash: dict[str, int] = {}
_errors: dict[str, tuple[int, int]] = {}
_counts: dict[str, int] = {}
_off_file = os.environ.get("SESSIONLOG_FAULTS_OFF", "")


def _parse() -> None:
    spec = os.environ.get("SESSIONLOG_CRASH_AT", "")
    if spec:
        point, _, n = spec.partition(":")
        _crash[point] = int(n or 1)
    for item in filter(None, os.environ.get("SESSIONLOG_FAULTS", "").split(",")):
        point, _, rest = item.partition("=")
        name, _, n = rest.partition(":")
        _errors[point] = (getattr(errno, name), int(n or 1))


_parse()
ACTIVE = bool(_crash or _errors)


def reach(point: str) -> None:
    """Called at each named step of the write paths; a no-op unless a fault is armed."""
    if not ACTIVE:
        return
    n = _counts[point] = _counts.get(point, 0) + 1
    if _crash.get(point) == n:
        os.kill(os.getpid(), signal.SIGKILL)
    err = _errors.get(point)
    if err is not None and n >= err[1] and not (_off_file and os.path.exists(_off_file)):
        raise OSError(err[0], f"{os.strerror(err[0])} (injected at {point})")
