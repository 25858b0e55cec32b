"""Benchmark the engine's durable appends and loads against raw baselines on the same disk.

    .venv/bin/python bench/bench_engine.py [--quick] [--dir DIR] [--duration S]

Everything is measured in one run, store and baseline side by side, on one filesystem:

1. one writer, fsync=always: ``Store.append`` latency p50/p99 vs ``os.write`` +
   ``os.fdatasync`` of one ~200-byte line to an O_APPEND file (goal <= 1.2x).
2. 32 writer threads on 32 sessions (one store) vs 32 raw threads, each write+fdatasync
   on its own file (goal >= 80 % of raw); also raw-32 / raw-1.
3. 32 writer threads on ONE session: group commit (goal >= 5x one writer); counts the
   fdatasync calls the journal makes (``eventlog.backends.file.syscalls.fdatasync`` is wrapped).
2b/3b. the same through the async API (``FileBackend``, the server's path): 32 asyncio
   tasks instead of threads; 3b is compared with one task and with one thread.
4. load of a 10,000-message session vs ``msgspec.json.Decoder().decode_lines`` of the
   same journal bytes (goal <= 2x): cold after compaction (snapshot + empty tail), cold
   without a snapshot (the whole journal folded), hot (journal open in the store).

The list index (list and full-text queries) is covered by ``bench/bench_list.py``.
Timing is never asserted anywhere: this prints a table for a person to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import msgspec
from common import median_ratio, pct

import eventlog.backends.file.syscalls as syscalls
from eventlog.backends.file.backend import FileBackend
from eventlog.backends.file.snapshot import snapshot_path
from eventlog.backends.file.store import Store
from eventlog.events import decoder as event_decoder
from eventlog.requests import AppendRequest, StartRequest

REPO = Path(__file__).resolve().parent.parent
CONTENT = (
    "Could you summarise what we decided about the release schedule yesterday, and "
    "list the three open questions for the design review? Keep it short, please; "
    "I will paste it into the team channel."
)[:200].ljust(200, ".")
RAW_LINE = b'{"seq":1,"note":"' + b"x" * 180 + b'"}\n'  # 200 bytes

now_ns = time.perf_counter_ns


# -- fdatasync counter ------------------------------------------------------------------

_fsyncs = itertools.count()
_real_fdatasync = syscalls.fdatasync
FSYNC_NS: list[int] | None = None  # set to a list to record how long each call takes


def _counting_fdatasync(fd: int) -> None:
    next(_fsyncs)
    if FSYNC_NS is None:
        _real_fdatasync(fd)
        return
    t0 = now_ns()
    _real_fdatasync(fd)
    FSYNC_NS.append(now_ns() - t0)


def fsync_count() -> int:
    """Calls so far (reading the counter costs one tick; callers take differences)."""
    return next(_fsyncs)


syscalls.fdatasync = _counting_fdatasync


# -- helpers ----------------------------------------------------------------------------


def open_append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def raw_append(fd: int) -> None:
    os.write(fd, RAW_LINE)
    os.fdatasync(fd)


@dataclass
class Rate:
    ops: int
    seconds: float
    fsyncs: int = 0

    @property
    def per_s(self) -> float:
        return self.ops / self.seconds


def run_threads(workers: list[Callable[[], object]], duration: float) -> Rate:
    """Each worker repeats its call until the shared deadline; total calls per second."""
    counts = [0] * len(workers)
    start = threading.Barrier(len(workers) + 1)
    deadline = [0]
    errors: list[BaseException] = []

    def loop(i: int, fn: Callable[[], object]) -> None:
        start.wait()
        end = deadline[0]
        n = 0
        try:
            while now_ns() < end:
                fn()
                n += 1
        except BaseException as e:
            errors.append(e)
        counts[i] = n

    threads = [threading.Thread(target=loop, args=(i, fn)) for i, fn in enumerate(workers)]
    for t in threads:
        t.start()
    f0 = fsync_count()
    t0 = now_ns()
    deadline[0] = t0 + int(duration * 1e9)
    start.wait()
    for t in threads:
        t.join()
    elapsed = (now_ns() - t0) / 1e9
    f1 = fsync_count()
    if errors:
        raise errors[0]
    return Rate(sum(counts), elapsed, f1 - f0 - 1)


def run_tasks(
    loop: asyncio.AbstractEventLoop,
    backend: FileBackend,
    reqs: list[AppendRequest],
    duration: float,
) -> Rate:
    """One asyncio task per request repeats ``backend.append`` until the deadline."""

    async def run() -> Rate:
        counts = [0] * len(reqs)
        end = now_ns() + int(duration * 1e9)

        async def writer(i: int, req: AppendRequest) -> None:
            n = 0
            while now_ns() < end:
                await backend.append(req)
                n += 1
            counts[i] = n

        f0, t0 = fsync_count(), now_ns()
        await asyncio.gather(*(writer(i, r) for i, r in enumerate(reqs)))
        elapsed, f1 = (now_ns() - t0) / 1e9, fsync_count()
        return Rate(sum(counts), elapsed, f1 - f0 - 1)

    return loop.run_until_complete(run())


# -- the report -------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    ours: str
    base: str
    ratio: str
    goal: str
    verdict: str


ROWS: list[Row] = []
NOTES: list[str] = []


def row(
    metric: str,
    ours: str,
    base: str = "",
    ratio: float | None = None,
    goal: str = "",
    met: bool | None = None,
) -> None:
    ROWS.append(
        Row(
            metric,
            ours,
            base,
            "" if ratio is None else f"{ratio:.2f}x",
            goal,
            "" if met is None else ("met" if met else "NOT MET"),
        )
    )


def print_table() -> None:
    head = Row("metric", "sessionlog", "baseline", "ratio", "goal", "verdict")
    cols = list(
        zip(
            *[(r.metric, r.ours, r.base, r.ratio, r.goal, r.verdict) for r in [head, *ROWS]],
            strict=True,
        )
    )
    widths = [max(len(c) for c in col) for col in cols]

    def line(r: Row) -> str:
        cells = (r.metric, r.ours, r.base, r.ratio, r.goal, r.verdict)
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in ROWS:
        print(line(r))


def machine(where: str) -> None:
    print(
        f"machine: {os.cpu_count()} cpus (nproc {len(os.sched_getaffinity(0))}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"msgspec {msgspec.__version__}"
    )
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        df = subprocess.run(["df", "-T", where], capture_output=True, text=True, check=True)
        print("bench dir: " + where)
        print("  " + df.stdout.strip().replace("\n", "\n  "))
    same = os.stat(where).st_dev == os.stat(REPO).st_dev
    print(f"  same filesystem as {REPO}/memory (the default data dir): {'yes' if same else 'NO'}")
    print(f"load average at start: {loadavg()}", flush=True)


def loadavg() -> str:
    one, five, _ = os.getloadavg()
    cpus = os.cpu_count() or 1
    busy = " (BUSY: other work shares the cpus/disk; expect noise)" if one > cpus / 2 else ""
    return f"{one:.2f} {five:.2f}{busy}"


# -- 1. one writer latency --------------------------------------------------------------


def bench_latency(root: str, n: int, rounds: int, background: bool) -> None:
    global FSYNC_NS
    raw_dir = os.path.join(root, "raw1")
    os.makedirs(raw_dir)
    fd = open_append(os.path.join(raw_dir, "one.jsonl"))
    store = Store(os.path.join(root, "lat"), fsync="always", background=background)
    in_fsync: list[int] = []
    try:
        sid = store.start(StartRequest(title="latency")).session_id
        req = AppendRequest(session_id=sid, role="user", content=CONTENT)
        for _ in range(200):  # warm-up: journal open, code paths, page cache
            store.append(req)
            raw_append(fd)
        ours: list[int] = []
        base: list[int] = []
        per = max(1, n // rounds)
        for _ in range(rounds):  # interleave blocks so drift hits both alike
            FSYNC_NS = in_fsync
            for _ in range(per):
                t0 = now_ns()
                store.append(req)
                ours.append(now_ns() - t0)
            FSYNC_NS = None
            for _ in range(per):
                t0 = now_ns()
                raw_append(fd)
                base.append(now_ns() - t0)
        line_len = os.path.getsize(store.path_of(sid)) // (store.head(sid))
    finally:
        FSYNC_NS = None
        store.close()
        os.close(fd)
    ours.sort()
    in_fsync.sort()
    base.sort()
    p50, p99 = pct(ours, 0.5) / 1e3, pct(ours, 0.99) / 1e3  # ns -> us
    b50, b99 = pct(base, 0.5) / 1e3, pct(base, 0.99) / 1e3
    row(
        "1. one writer append p50 (us)",
        f"{p50:.0f}",
        f"{b50:.0f}",
        p50 / b50,
        "<= 1.2x",
        p50 / b50 <= 1.2,
    )
    row(
        "   one writer append p99 (us)",
        f"{p99:.0f}",
        f"{b99:.0f}",
        p99 / b99,
        "<= 1.2x",
        p99 / b99 <= 1.2,
    )
    f50 = pct(in_fsync, 0.5) / 1e3
    row("   ... of which the store's fdatasync, p50 (us)", f"{f50:.0f}", f"{b50:.0f}")
    row(
        "   ... rest of Store.append, p50 - fdatasync p50 (us)",
        f"{p50 - f50:.0f}",
        goal=f"<= {0.2 * b50:.0f} for 1.2x",
    )
    NOTES.append(
        f"1: {len(ours)} appends each, in {rounds} alternating blocks; store journal "
        f"line ~{line_len} B (raw line {len(RAW_LINE)} B); means "
        f"{statistics.fmean(ours) / 1e3:.0f} vs {statistics.fmean(base) / 1e3:.0f} us"
    )


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


# -- 4. load ----------------------------------------------------------------------------


def build_session(root: str, messages: int) -> str:
    with Store(root, fsync="never", background=False) as s:
        sid = s.start(StartRequest(title="long session")).session_id
        for i in range(messages):
            s.append(
                AppendRequest(
                    session_id=sid,
                    role="user" if i % 2 == 0 else "assistant",
                    content=f"{i:06d} {CONTENT}"[:200],
                )
            )
    return sid  # close() compacted it: snapshot + empty tail


@contextlib.contextmanager
def fresh_store(root: str) -> Iterator[Store]:
    s = Store(root, background=False)
    try:
        yield s
    finally:
        s.close()


def bench_load(root: str, messages: int, repeat: int) -> None:
    """All variants run in turn within each repetition; ratios are per repetition."""
    snap_dir = os.path.join(root, "load-snapshot")
    sid = build_session(snap_dir, messages)
    with fresh_store(snap_dir) as s:
        jpath = s.path_of(sid)
    spath = snapshot_path(jpath)
    # the same journal in a second data dir, without the snapshot: a load folds it all
    fold_dir = os.path.join(root, "load-journal-only")
    rel = os.path.relpath(jpath, snap_dir)
    os.makedirs(os.path.dirname(os.path.join(fold_dir, rel)))
    shutil.copyfile(jpath, os.path.join(fold_dir, rel))
    data = Path(jpath).read_bytes()
    snap_size = os.path.getsize(spath)
    plain = msgspec.json.Decoder()
    assert len(plain.decode_lines(data)) == messages + 1

    def cold(s: Store) -> Callable[[], None]:
        def load() -> None:
            got = s.load(sid).session
            if len(got.messages) != messages or sid in s._journals:
                raise AssertionError("not a cold load of the whole session")

        return load

    with fresh_store(snap_dir) as a, fresh_store(fold_dir) as b, fresh_store(snap_dir) as c:
        c.watch(sid)  # keeps the journal open: loads come from its in-memory fold
        cases: dict[str, Callable[[], object]] = {
            "raw": lambda: plain.decode_lines(data),
            "typed": lambda: event_decoder.decode_lines(data),
            "snap": cold(a),
            "fold": cold(b),
            "hot": lambda: c.load(sid),
        }
        times: dict[str, list[int]] = {k: [] for k in cases}
        for i in range(repeat + 3):
            for k, fn in cases.items():
                t0 = now_ns()
                fn()
                if i >= 3:  # the first rounds warm up
                    times[k].append(now_ns() - t0)
        c.unwatch(sid)
    assert not os.path.exists(snapshot_path(os.path.join(fold_dir, rel)))

    def ms(k: str) -> float:
        return statistics.median(times[k]) / 1e6

    def ratio(k: str) -> float:
        return statistics.median(t / r for t, r in zip(times[k], times["raw"], strict=True))

    base = f"{ms('raw'):.2f}"
    for key, name in (
        ("snap", f"4a. load {messages:,} msgs, cold, snapshot (ms)"),
        ("fold", "4b. load, cold, no snapshot: full fold (ms)"),
        ("hot", "4c. load, hot: journal open (ms)"),
    ):
        row(name, f"{ms(key):.3f}", base, ratio(key), "<= 2x", ratio(key) <= 2)
    row(
        "    typed decode_lines(Event) of the journal (ms)",
        f"{ms('typed'):.2f}",
        base,
        ratio("typed"),
    )
    NOTES.append(
        f"4: journal {len(data) / 2**20:.1f} MiB ({messages + 1:,} lines), snapshot "
        f"{snap_size / 2**20:.1f} MiB; baseline = untyped "
        f"msgspec.json.Decoder().decode_lines(journal bytes) already in memory; "
        f"{repeat} repetitions after 3 warm-ups, the five cases in turn in each; medians, "
        f"ratios are medians of per-repetition ratios; OS page cache warm in every case"
    )


# -- main -------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs (~20 s)")
    ap.add_argument(
        "--dir",
        default=None,
        help="parent of the temp data dirs (default: the system temp dir; "
        "use one on the same disk as the real data dir)",
    )
    ap.add_argument("--duration", type=float, default=None, help="seconds per throughput run")
    ap.add_argument("--rounds", type=int, default=None, help="alternating runs for 2./3.")
    ap.add_argument("--writers", type=int, default=32)
    ap.add_argument("--appends", type=int, default=None, help="timed appends for 1.")
    ap.add_argument("--messages", type=int, default=10_000, help="session size for 4.")
    ap.add_argument(
        "--no-background",
        action="store_true",
        help="1.-3.: run the stores without their background index flush "
        "(default: on, as the server runs them)",
    )
    ap.add_argument("--only", default="1234", help="which parts to run, e.g. 14")
    args = ap.parse_args()
    duration = args.duration or (1.0 if args.quick else 3.0)
    appends = args.appends or (1000 if args.quick else 5000)
    repeat = 7 if args.quick else 21
    rounds = args.rounds or (1 if args.quick else 3)
    background = not args.no_background

    root = tempfile.mkdtemp(prefix="sessionlog-bench-", dir=args.dir)
    try:
        machine(root)
        print(
            f"running parts {args.only} ({'quick' if args.quick else 'full'}); stores for "
            f"1.-3.: fsync=always, background index flush {'on' if background else 'OFF'}",
            flush=True,
        )
        t0 = time.perf_counter()
        if "1" in args.only:
            bench_latency(root, appends, 10, background)
        if "2" in args.only or "3" in args.only:
            bench_concurrent(root, args.writers, duration, rounds, background)
            bench_cpu(root, appends * 4)
        if "4" in args.only:
            bench_load(root, args.messages, repeat)
        print()
        print_table()
        print()
        for n in NOTES:
            print("note " + n)
        print(f"load average at end: {loadavg()}")
        print(f"total {time.perf_counter() - t0:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
