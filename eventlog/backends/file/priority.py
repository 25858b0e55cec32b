"""Helper threads yield to the event loop (Linux ``SCHED_BATCH``).

On Linux a thread marked ``SCHED_BATCH`` still gets its fair share of CPU but does not
preempt the running thread when it wakes up. The index flush, the compactor and the file
watcher can wait milliseconds without anyone noticing. The fsync threads are woken by the
loop for every journal it queues: normal threads would take the CPU from the loop at each
of those wake-ups (and then wait for the GIL it holds); batch ones run when the loop
waits for the network, or at the end of its time slice, with more journals to sync at
once. One writer's latency is unchanged (the loop is idle while it waits); 32 writers on
one core gain 15-40 % (``bench/bench_table.py``). Elsewhere these calls do nothing.
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
