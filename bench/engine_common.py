"""What bench_engine.py and bench_floor.py share: the raw baseline's writes, the
fdatasync counter, thread and task drivers, and the report table."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

import eventlog.backends.file.syscalls as syscalls
from eventlog.backends.file.backend import FileBackend
from eventlog.requests import AppendRequest

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
