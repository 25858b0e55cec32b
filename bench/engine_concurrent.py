"""bench_engine.py, figures 2 and 3 (and their async 2b/3b): 32 writers on 32 sessions
and on one session, beside 32 raw writers; and the CPU one append costs."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from functools import partial

from common import median_ratio
from engine_common import (
    CONTENT,
    NOTES,
    Rate,
    now_ns,
    open_append,
    raw_append,
    row,
    run_tasks,
    run_threads,
)

from eventlog.backends.file.backend import FileBackend
from eventlog.backends.file.store import Store
from eventlog.requests import AppendRequest, StartRequest

# -- 2 and 3. concurrent writers --------------------------------------------------------


def bench_concurrent(
    root: str, writers: int, duration: float, rounds: int, background: bool
) -> None:
    """Raw and store runs alternate, ``rounds`` times; rates are medians over rounds."""
    raw_dir = os.path.join(root, "raw")
    os.makedirs(raw_dir)
    fds = [open_append(os.path.join(raw_dir, f"{i}.jsonl")) for i in range(writers)]
    store = Store(os.path.join(root, "conc"), fsync="always", background=background)
    # the same store through its async API: the server's path (writes on the loop,
    # fsyncs in LoopSyncer's threads); writers are asyncio tasks, not threads
    backend = FileBackend(store.layout.root, store=store)
    loop = asyncio.new_event_loop()
    kinds = ("raw1", "rawN", "one", "many", "shared", "a_one", "a_many", "a_shared")
    runs: dict[str, list[Rate]] = {k: [] for k in kinds}
    try:
        sids = [store.start(StartRequest(title=f"w{i}")).session_id for i in range(writers)]
        reqs = [AppendRequest(session_id=s, role="user", content=CONTENT) for s in sids]
        for r in reqs:  # open every journal before timing
            store.append(r)
        one = reqs[0]
        warm = min(0.3, duration)
        run_threads([lambda: raw_append(fds[0])], warm)
        run_threads([lambda: store.append(one)], warm)
        for _ in range(rounds):  # neighbours in time are compared: the disk drifts
            runs["raw1"].append(run_threads([lambda: raw_append(fds[0])], duration))
            runs["one"].append(run_threads([lambda: store.append(one)], duration))
            runs["shared"].append(run_threads([lambda: store.append(one)] * writers, duration))
            runs["rawN"].append(run_threads([partial(raw_append, fd) for fd in fds], duration))
            runs["many"].append(run_threads([partial(store.append, r) for r in reqs], duration))
            runs["a_one"].append(run_tasks(loop, backend, [one], duration))
            runs["a_shared"].append(run_tasks(loop, backend, [one] * writers, duration))
            runs["a_many"].append(run_tasks(loop, backend, reqs, duration))
        head = store.head(sids[0])
    finally:
        loop.run_until_complete(backend.close())  # closes the store too
        loop.close()
        for fd in fds:
            os.close(fd)

    def med(k: str) -> float:
        return statistics.median(r.per_s for r in runs[k])

    def per_fsync(k: str) -> float:
        return sum(r.ops for r in runs[k]) / max(1, sum(r.fsyncs for r in runs[k]))

    def ratio_of(num: str, den: str) -> float:
        return median_ratio([r.per_s for r in runs[num]], [r.per_s for r in runs[den]])

    raw1, raw_n, ours1, ours_n, shared = (med(k) for k in ("raw1", "rawN", "one", "many", "shared"))
    ratio = ratio_of("many", "rawN")
    row(
        f"2. {writers} writers x {writers} sessions (lines/s)",
        f"{ours_n:,.0f}",
        f"{raw_n:,.0f}",
        ratio,
        ">= 0.80x",
        ratio >= 0.8,
    )
    row(
        f"   raw {writers} threads / raw 1 thread (lines/s)",
        f"{raw_n:,.0f}",
        f"{raw1:,.0f}",
        ratio_of("rawN", "raw1"),
    )
    row(f"   appends per fdatasync, {writers} sessions", f"{per_fsync('many'):.2f}", "1.00")
    ratio = ratio_of("shared", "one")
    row(
        f"3. {writers} writers x 1 session (lines/s)",
        f"{shared:,.0f}",
        f"{ours1:,.0f}",
        ratio,
        ">= 5x 1 writer",
        ratio >= 5,
    )
    row(
        "   appends per fdatasync, 1 session",
        f"{per_fsync('shared'):.2f}",
        f"{per_fsync('one'):.2f}",
    )
    row(
        "   store 1 writer / raw 1 thread (lines/s)",
        f"{ours1:,.0f}",
        f"{raw1:,.0f}",
        ratio_of("one", "raw1"),
    )

    a_one, a_many, a_shared = (med(k) for k in ("a_one", "a_many", "a_shared"))
    ratio = ratio_of("a_many", "rawN")
    row(
        f"2b. {writers} async writers x {writers} sessions (lines/s)",
        f"{a_many:,.0f}",
        f"{raw_n:,.0f}",
        ratio,
        ">= 0.80x",
        ratio >= 0.8,
    )
    row(f"   appends per fdatasync, async {writers} sessions", f"{per_fsync('a_many'):.2f}")
    ratio = ratio_of("a_shared", "a_one")
    row(
        f"3b. {writers} async writers x 1 session (lines/s)",
        f"{a_shared:,.0f}",
        f"{a_one:,.0f}",
        ratio,
        ">= 5x 1 writer",
        ratio >= 5,
    )
    ratio = ratio_of("a_shared", "one")
    row(
        "   ... vs the store's 1 thread writer (lines/s)",
        f"{a_shared:,.0f}",
        f"{ours1:,.0f}",
        ratio,
        ">= 5x 1 writer",
        ratio >= 5,
    )
    row(
        "   appends per fdatasync, async 1 session",
        f"{per_fsync('a_shared'):.2f}",
        f"{per_fsync('a_one'):.2f}",
    )

    def spread(k: str) -> str:
        return "/".join(f"{r.per_s:,.0f}" for r in runs[k])

    NOTES.append(
        f"2/3: {rounds} rounds x {duration:g} s per run, raw and store alternating; "
        f"medians of lines/s per round: raw-1 {spread('raw1')}; raw-{writers} "
        f"{spread('rawN')}; store 1 writer {spread('one')}; {writers}x{writers} "
        f"{spread('many')}; {writers}x1 {spread('shared')}; async 1 writer "
        f"{spread('a_one')}; async {writers}x{writers} {spread('a_many')}; async "
        f"{writers}x1 {spread('a_shared')} (head seq {head:,}). "
        f"Ratios are medians of the ratios within each round; the baseline of 3 is "
        f"the store's own one-writer rate."
    )


def bench_cpu(root: str, n: int) -> None:
    """Process CPU per append without fsync: the work the GIL serialises, which caps
    the throughput of all writer threads together at about 1e6 / (us per append)."""
    for index in (False, True):
        s = Store(os.path.join(root, f"cpu{int(index)}"), fsync="never", background=False)
        try:
            sid = s.start(StartRequest()).session_id
            req = AppendRequest(session_id=sid, role="user", content=CONTENT)
            for _ in range(500):
                s.append(req)
            s.flush_index()
            c0, t0 = time.process_time_ns(), now_ns()
            for _ in range(n):
                s.append(req)
            if index:  # the list/full-text index work these appends cause
                s.flush_index()
            cpu, wall = (time.process_time_ns() - c0) / n / 1e3, (now_ns() - t0) / n / 1e3
        finally:
            s.close()
        what = "journal + index flush" if index else "journal only"
        row(
            f"   CPU per append, fsync=never, {what} (us)",
            f"{cpu:.1f}",
            goal=f"(cap ~{1e6 / cpu:,.0f}/s)",
        )
        NOTES.append(
            f"cpu ({what}): {n:,} appends in one thread, {wall:.1f} us wall, "
            f"{cpu:.1f} us process CPU each"
        )
