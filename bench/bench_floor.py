"""The floor under bench_engine's figures 1-3: how fast any durable append written in
Python can be on this machine, measured against the same raw baselines in one run.

    .venv/bin/python bench/bench_floor.py [--dir DIR] [--duration S] [--rounds N]

A *floor* append does only what every durable append that other processes may share a
journal with must do, and nothing of what makes it a session store: validate the request
(``eventlog.requests.check``), take the file's flock, stat the path (is it still our
file?), build the event Struct, encode it, write it, unlock, fdatasync. No fold, no
dedup maps, no list index, no publication to subscribers.

1f. one floor writer, p50/p99 latency vs raw write+fdatasync (the store's goal: <= 1.2x)
2f. 32 floor threads on 32 files vs 32 raw threads (the store's goal: >= 0.8x); and 32
    floor *processes* (no GIL shared) vs the same raw threads and vs 32 raw processes
2s. the store itself in 32 writer processes (a Store each, one session each, one data
    dir, background index flush on) vs the same raw threads
3f. 32 floor threads on one file with the smallest group commit (one lock for the
    write, one fsync in flight, the others wait for it) vs one such thread (goal >= 5x);
    and 32 asyncio tasks on one event loop (fsync in a thread) vs one task, one thread

Where the floor itself misses a goal, no engine written in Python reaches that goal on
this machine: only taking the per-append work out of the interpreter would.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial

from common import median_ratio, pct
from engine_common import (
    CONTENT,
    loadavg,
    machine,
    now_ns,
    open_append,
    print_table,
    raw_append,
    row,
    run_threads,
)

from eventlog.backends.file.store import Store
from eventlog.events import (
    MessageAppended,
    MessageAppendedData,
    encode_line,
    new_event_id,
    now_iso,
)
from eventlog.requests import AppendRequest, StartRequest, check


class Floor:
    """The least a durable, flock-shared append in Python does (see the module doc)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.req = AppendRequest(session_id="floor", role="user", content=CONTENT)
        self.seq = 0

    def write(self) -> None:
        """Everything but the fsync."""
        req = check(self.req)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            os.stat(self.path)
            self.seq += 1
            ts = now_iso()
            data = MessageAppendedData(
                message_id=new_event_id(),
                role=req.role,
                content=req.content,
                timestamp=ts,
                metadata=req.metadata,
                status="complete",
            )
            ev = MessageAppended(seq=self.seq, id=new_event_id(), ts=ts, data=data)
            os.write(self.fd, encode_line(ev))
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def append(self) -> None:
        self.write()
        os.fdatasync(self.fd)


class FloorGroup(Floor):
    """``Floor`` with the smallest group commit: writers are serialised by one lock;
    whoever finds no fsync in flight runs one for all written so far, the rest wait."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.written = self.durable = 0
        self.syncing = False

    def append(self) -> None:
        with self.lock:
            self.write()
            self.written += 1
            end = self.written
        with self.cond:
            while self.durable < end:
                if self.syncing:
                    self.cond.wait()
                    continue
                self.syncing, target = True, self.written
                self.cond.release()
                try:
                    os.fdatasync(self.fd)
                finally:
                    self.cond.acquire()
                    self.syncing = False
                self.durable = target
                self.cond.notify_all()


async def _async_group(floor: Floor, writers: int, duration: float) -> float:
    """``writers`` asyncio tasks append with ``floor`` on one loop; the fsync runs in a
    thread, one at a time, shared by every task that wrote before it began."""
    loop = asyncio.get_running_loop()
    written = durable = 0
    inflight: asyncio.Future[None] | None = None
    end_ns = now_ns() + int(duration * 1e9)
    count = 0

    async def writer() -> None:
        nonlocal written, durable, inflight, count
        while now_ns() < end_ns:
            floor.write()
            written += 1
            mine = written
            while durable < mine:
                if inflight is None:
                    target = written
                    inflight = loop.run_in_executor(None, os.fdatasync, floor.fd)
                    try:
                        await inflight
                    finally:
                        inflight = None
                    durable = max(durable, target)
                else:
                    await inflight
            count += 1

    t0 = now_ns()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return count / ((now_ns() - t0) / 1e9)


def _made(fn: Callable[[], object]) -> Callable[[], Callable[[], object]]:
    """A ``run_processes`` worker whose call needs no set-up in the child."""
    return lambda: fn


def _store_writer(root: str, session_id: str) -> Callable[[], object]:
    """In a writer process: its own Store on ``root``, appending to ``session_id``."""
    store = Store(root, reconcile=False)
    req = AppendRequest(session_id=session_id, role="user", content=CONTENT)
    store.append(req)  # the journal is open before the clock starts
    return partial(store.append, req)


def run_processes(workers: list[Callable[[], Callable[[], object]]], duration: float) -> float:
    """Each worker (a factory, run in the child first: what it opens is the child's own)
    repeats the call it returns in its own forked process until a shared deadline;
    total calls per second. (No threads may be running: they are not forked.)"""
    r, w = os.pipe()
    start = time.monotonic() + 0.2 + 0.02 * len(workers)  # all forked and set up first
    pids = []
    for make in workers:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            code = 1
            try:
                fn = make()
                while time.monotonic() < start:
                    time.sleep(0.001)
                end, n = start + duration, 0
                while time.monotonic() < end:
                    fn()
                    n += 1
                os.write(w, n.to_bytes(8, "little"))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(w)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"a writer process failed (status {status})")
    counts = [int.from_bytes(os.read(r, 8), "little") for _ in pids]
    os.close(r)
    return sum(counts) / duration


def bench_latency(root: str, n: int, rounds: int) -> None:
    floor = Floor(os.path.join(root, "floor1.jsonl"))
    raw = open_append(os.path.join(root, "raw1.jsonl"))
    for _ in range(200):
        floor.append()
        raw_append(raw)
    ours: list[int] = []
    base: list[int] = []
    per = max(1, n // rounds)
    for _ in range(rounds):  # alternating blocks, as bench_engine's part 1
        for times, fn in ((ours, floor.append), (base, partial(raw_append, raw))):
            for _ in range(per):
                t0 = now_ns()
                fn()
                times.append(now_ns() - t0)
    ours.sort()
    base.sort()
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        a, b = pct(ours, q) / 1e3, pct(base, q) / 1e3  # ns -> us
        row(
            f"1f. floor, one writer {name} (us)",
            f"{a:.0f}",
            f"{b:.0f}",
            a / b,
            "<= 1.2x",
            a / b <= 1.2,
        )


def bench_concurrent(root: str, writers: int, duration: float, rounds: int) -> None:
    floors = [Floor(os.path.join(root, f"floor-{i}.jsonl")) for i in range(writers)]
    raws = [open_append(os.path.join(root, f"raw-{i}.jsonl")) for i in range(writers)]
    group = FloorGroup(os.path.join(root, "floor-group.jsonl"))
    floor_fns = [f.append for f in floors]
    raw_fns = [partial(raw_append, fd) for fd in raws]
    # the store itself in writer processes: one Store each (background index flush on,
    # as a server runs it), one session each, all in one data dir
    data = os.path.join(root, "store")
    with Store(data, background=False) as s:
        sids = [s.start(StartRequest(title=f"w{i}")).session_id for i in range(writers)]
    stores = [partial(_store_writer, data, sid) for sid in sids]
    agroup = Floor(os.path.join(root, "floor-async.jsonl"))
    kinds = (
        *("raw_t", "floor_t", "raw_p", "floor_p", "store_p"),
        *("group1", "groupN", "async1", "asyncN"),
    )
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(rounds):  # neighbours in time are compared: the disk drifts
        rates["raw_t"].append(run_threads(raw_fns, duration).per_s)
        rates["floor_t"].append(run_threads(floor_fns, duration).per_s)
        rates["raw_p"].append(run_processes([_made(f) for f in raw_fns], duration))
        rates["floor_p"].append(run_processes([_made(f) for f in floor_fns], duration))
        rates["store_p"].append(run_processes(stores, duration))
        rates["group1"].append(run_threads([group.append], duration).per_s)
        rates["groupN"].append(run_threads([group.append] * writers, duration).per_s)
        rates["async1"].append(asyncio.run(_async_group(agroup, 1, duration)))
        rates["asyncN"].append(asyncio.run(_async_group(agroup, writers, duration)))

    def med(k: str) -> float:
        return statistics.median(rates[k])

    def ratio(num: str, den: str) -> float:
        return median_ratio(rates[num], rates[den])

    r = ratio("floor_t", "raw_t")
    row(
        f"2f. floor, {writers} threads x {writers} files (lines/s)",
        f"{med('floor_t'):,.0f}",
        f"{med('raw_t'):,.0f}",
        r,
        ">= 0.80x",
        r >= 0.8,
    )
    r = ratio("floor_p", "raw_t")
    row(
        f"    floor, {writers} processes (vs raw threads)",
        f"{med('floor_p'):,.0f}",
        f"{med('raw_t'):,.0f}",
        r,
        ">= 0.80x",
        r >= 0.8,
    )
    row(
        f"    floor, {writers} processes (vs raw processes)",
        f"{med('floor_p'):,.0f}",
        f"{med('raw_p'):,.0f}",
        ratio("floor_p", "raw_p"),
    )
    r = ratio("store_p", "raw_t")
    row(
        f"2s. the store, {writers} writer processes (vs raw threads)",
        f"{med('store_p'):,.0f}",
        f"{med('raw_t'):,.0f}",
        r,
        ">= 0.80x",
        r >= 0.8,
    )
    r = ratio("groupN", "group1")
    row(
        f"3f. floor group commit, {writers} threads x 1 file (lines/s)",
        f"{med('groupN'):,.0f}",
        f"{med('group1'):,.0f}",
        r,
        ">= 5x 1 writer",
        r >= 5,
    )
    for den, what in (("async1", "1 task"), ("group1", "1 thread")):
        r = ratio("asyncN", den)
        row(
            f"    floor, {writers} asyncio tasks x 1 file (vs {what})",
            f"{med('asyncN'):,.0f}",
            f"{med(den):,.0f}",
            r,
            ">= 5x 1 writer",
            r >= 5,
        )

    def spread(k: str) -> str:
        return "/".join(f"{x:,.0f}" for x in rates[k])

    print(
        f"note 2f/3f: {rounds} rounds x {duration:g} s, lines/s per round: raw threads "
        f"{spread('raw_t')}; floor threads {spread('floor_t')}; raw processes "
        f"{spread('raw_p')}; floor processes {spread('floor_p')}; store processes "
        f"{spread('store_p')}; group commit 1 thread "
        f"{spread('group1')}, {writers} threads {spread('groupN')}; async 1 task "
        f"{spread('async1')}, {writers} tasks {spread('asyncN')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="parent of the temp dir (default: system temp)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per throughput run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    ap.add_argument("--writers", type=int, default=32)
    ap.add_argument("--appends", type=int, default=5000, help="timed appends for 1f")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="sessionlog-floor-", dir=args.dir)
    try:
        machine(root)
        bench_latency(root, args.appends, 10)
        bench_concurrent(root, args.writers, args.duration, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print_table()
    print(f"load average at end: {loadavg()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
