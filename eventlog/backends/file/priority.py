"""Background threads yield to the event loop (Linux ``SCHED_BATCH``).

On Linux a thread marked ``SCHED_BATCH`` still gets its fair share of CPU but does not
preempt the running thread when it wakes up. The index flush, the compactor and the file
watcher can wait milliseconds without anyone noticing; the watcher's thread wakes on
every journal write, ours included, and used to take the CPU from the loop each time.
The fsync threads are NOT demoted: they are on every acknowledgement's path, and a batch
thread waits behind every other busy process on the machine (one client's append p50 went
from 1.7 to 8-11 ms beside a test run). Elsewhere these calls do nothing.
"""

from __future__ import annotations

import contextlib
import os

_BATCH = getattr(os, "SCHED_BATCH", None)


def demote_this_thread() -> None:
    """Mark the calling thread as background work (no-op where unsupported)."""
    if _BATCH is None:
        return
    with contextlib.suppress(OSError):  # a sandbox that forbids it: run as before
        os.sched_setscheduler(0, _BATCH, os.sched_param(0))  # 0: the calling thread


def demote_threads_named(prefix: str) -> int:
    """Mark this process's threads whose name starts with ``prefix`` as background work
    (threads a library started, e.g. a file watcher's); returns how many."""
    if _BATCH is None:
        return 0
    n = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            if name.startswith(prefix):
                os.sched_setscheduler(int(tid), _BATCH, os.sched_param(0))
                n += 1
        except (OSError, ValueError):  # gone meanwhile, or not allowed
            continue
    return n
