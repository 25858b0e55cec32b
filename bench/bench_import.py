"""Benchmark an import of a large ChatGPT-shaped export (SPEC §11; issue 12's figure).

    .venv/bin/python bench/bench_import.py [--mb 100] [--repeat 3] [--dir DIR]

Writes a ChatGPT ``conversations.json`` of about ``--mb`` MB (conversations with a
regenerated branch each, unicode text, as tests/import_fixtures.py builds them), then,
each in a fresh child process so that peak RSS is its own, alternating per round:

- ``import``:  ``sessionlog import`` of the file into an empty data dir (FileBackend,
  fsync=always): parse, convert, spool, write journals, index;
- ``ijson``:   the streaming parse alone (``ijson.items`` over the file, nothing kept,
  yajl2_c backend): the anchor the figure is read against;
- ``stream``:  the import's own streaming parse alone (``eventlog.imports.stream``:
  msgspec per item, ijson where msgspec refuses): the floor of this import;
- ``json.load``: the whole file parsed at once, the naive approach (its RSS is what
  streaming avoids).

Prints MB/s (file size / wall time, median of the rounds), peak RSS (max) and CPU time
(user + system, all threads, median: steadier than wall time on a shared machine).
Goal: import >= 20 MB/s with peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chatgpt_shapes import chatgpt_bulk  # noqa: E402

CHILD = {
    "import": """
import asyncio, resource, sys, time
from eventlog.backends.file.backend import FileBackend
from eventlog.imports import import_files
async def main():
    b = FileBackend(sys.argv[2])
    try:
        r = await import_files(b, [(sys.argv[1], "conversations.json")])
    finally:
        await b.close()
    return len(r.imported)
t = time.perf_counter(); c = time.process_time()
n = asyncio.run(main()); dt = time.perf_counter() - t
cpu = time.process_time() - c
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n, cpu)
""",
    "ijson": """
import resource, sys, time, ijson
t = time.perf_counter(); c = time.process_time(); n = 0
with open(sys.argv[1], "rb") as f:
    for _ in ijson.items(f, "item", use_float=True):
        n += 1
dt = time.perf_counter() - t
cpu = time.process_time() - c
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n, cpu)
""",
    "stream": """
import resource, sys, time
from eventlog.imports.stream import array_items
t = time.perf_counter(); c = time.process_time(); n = 0
with open(sys.argv[1], "rb") as f:
    for _ in array_items(f):
        n += 1
dt = time.perf_counter() - t
cpu = time.process_time() - c
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n, cpu)
""",
    "json.load": """
import json, resource, sys, time
t = time.perf_counter(); c = time.process_time()
with open(sys.argv[1], "rb") as f:
    n = len(json.load(f))
dt = time.perf_counter() - t
cpu = time.process_time() - c
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n, cpu)
""",
}


def write_export(path: Path, mb: float) -> int:
    """Stream a ChatGPT export of about ``mb`` MB to ``path``; returns conversations."""
    target = int(mb * 1024 * 1024)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        f.write("[")
        seed = 0
        while f.tell() < target:
            for conv in chatgpt_bulk(50, seed=seed):
                f.write(("," if n else "") + json.dumps(conv, ensure_ascii=False))
                n += 1
            seed += 1
        f.write("]")
    return n


def run(kind: str, export: Path, data: Path) -> tuple[float, float, int, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD[kind], str(export), str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    dt, rss_kb, n, cpu = out.stdout.split()
    return float(dt), int(rss_kb) / 1024, int(n), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the export and data dir go")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-import-") as tmp:
        work = Path(tmp)
        export = work / "conversations.json"
        t = time.perf_counter()
        convs = write_export(export, args.mb)
        size = export.stat().st_size
        print(
            f"export: {size / 1e6:.1f} MB, {convs} conversations (written in {time.perf_counter() - t:.1f} s)"
        )
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        times: dict[str, list[float]] = {k: [] for k in CHILD}
        cpus: dict[str, list[float]] = {k: [] for k in CHILD}
        rss: dict[str, float] = dict.fromkeys(CHILD, 0.0)
        for i in range(args.repeat):
            for kind in CHILD:
                # a fresh data dir each round, all removed at the end: deleting the last
                # round's thousands of journals just before an import made ext4 (without
                # a journal, as on this machine) skip the recently freed inodes on every
                # create, a cost of the bench's cleanup, not of the import
                dt, peak, n, cpu = run(kind, export, work / f"data-{i}-{kind}")
                assert n == convs, (kind, n, convs)
                times[kind].append(dt)
                cpus[kind].append(cpu)
                rss[kind] = max(rss[kind], peak)
        print(
            f"\n{'':10} {'median s':>9} {'MB/s':>7} {'peak RSS MB':>12} {'CPU s':>7}   (of {args.repeat} rounds)"
        )
        for kind in CHILD:
            med = statistics.median(times[kind])
            cpu = statistics.median(cpus[kind])
            print(f"{kind:10} {med:9.2f} {size / 1e6 / med:7.1f} {rss[kind]:12.0f} {cpu:7.2f}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        med = statistics.median(times["import"])
        print(
            f"\nimport: {size / 1e6 / med:.1f} MB/s (goal >= 20), peak RSS {rss['import']:.0f} MB (goal < 300); "
            f"{statistics.median(times['ijson']) / med:.0%} of ijson's streaming parse speed"
        )


if __name__ == "__main__":
    main()
