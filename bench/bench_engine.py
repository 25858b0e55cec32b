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
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import engine_common
import msgspec
from common import pct
from engine_common import (
    CONTENT,
    NOTES,
    RAW_LINE,
    loadavg,
    machine,
    now_ns,
    open_append,
    print_table,
    raw_append,
    row,
)
from engine_concurrent import bench_concurrent, bench_cpu

from eventlog.backends.file.snapshot import snapshot_path
from eventlog.backends.file.store import Store
from eventlog.events import decoder as event_decoder
from eventlog.requests import AppendRequest, StartRequest

# -- 1. one writer latency --------------------------------------------------------------


def bench_latency(root: str, n: int, rounds: int, background: bool) -> None:
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
            engine_common.FSYNC_NS = in_fsync
            for _ in range(per):
                t0 = now_ns()
                store.append(req)
                ours.append(now_ns() - t0)
            engine_common.FSYNC_NS = None
            for _ in range(per):
                t0 = now_ns()
                raw_append(fd)
                base.append(now_ns() - t0)
        line_len = os.path.getsize(store.path_of(sid)) // (store.head(sid))
    finally:
        engine_common.FSYNC_NS = None
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
