"""Benchmark the postgres backend beside raw anchors; run by hand, it asserts nothing.

    .venv/bin/python bench/bench_postgres.py [--url URL] [--rounds 5] [--seconds 3]
        [--clients 32] [--subscribers 100] [--fanout-messages 200]
        [--sessions 1000000] [--repeat 31] [--skip-big | --skip-live] [--keep]

The figures of issue 10, each beside an anchor measured in the same run, in alternating
rounds (this machine's neighbours come and go, so each figure is divided by the anchor of
its own round and the median of those ratios is reported, with every round's figure):

1. HTTP ``/append``, 1 client, p50 vs (raw asyncpg INSERT+COMMIT round trip on a
   plain table, autocommit) + (bare aiohttp JSON echo round trip). Goal <= 1.5x.
2. 32 HTTP clients, a session each: req/s vs 32 raw asyncpg connections doing
   INSERT+COMMIT. Goal >= 50 %. Diagnostics: the raw inserts with a pg_notify in the
   transaction (as the backend's write function sends one), and with it after the commit;
   the CPU one request costs the server, PostgreSQL and this load generator, beside one
   raw commit's (they share the machine's cores: their sum bounds the rate).
3. Two server processes A and B on one database: S subscribers on A, a writer appends
   through B (WebSocket); send -> last subscriber's receipt. Goal p99 < 50 ms. Anchors:
   raw INSERT+pg_notify commit -> LISTEN receipt, and the writer on A itself.
4. N sessions (default 1,000,000; ~7 min to load on a busy 2-core VM) bulk-loaded with
   COPY into the migrated schema, oldest first (rows built as the importer builds
   them), then ``PostgresBackend.list`` in-process: list pages and full-text queries vs
   the bare SQL of the page / the bare GIN lookup, and (diagnostic) the backend's own
   SQL with JIT off. Goals: first page < 10 ms, rare-word search < 50 ms.

Servers run as ``python -m server serve --database URL`` child processes; this process
is the load generator, and nothing is pinned to a CPU (PostgreSQL, the servers and the
load share the cores, as they would on one small machine). Each part runs in a database
of its own (``bench_*``), dropped at the end unless ``--keep``. The cluster must run
with fsync and synchronous_commit on (``.ci/start-postgres`` starts one so): the script
prints them and refuses to measure on a cluster that fakes its commits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import wait_healthy
from postgres_append import bench_append
from postgres_big import bench_big
from postgres_common import create_db, finish_db, rows, serve_db, url_argument
from postgres_fanout import bench_fanout

# -- main ---------------------------------------------------------------------------------------


async def settings(admin: str) -> dict[str, str]:
    c = await asyncpg.connect(admin)
    try:
        names = [
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
            "max_connections",
        ]
        return {n: await c.fetchval(f"SHOW {n}") for n in names}
    finally:
        await c.close()


async def main(args: argparse.Namespace) -> int:
    conf = await settings(args.url)
    print(
        "PostgreSQL " + ", ".join(f"{k}={v}" for k, v in conf.items()),
        f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    if conf["fsync"] != "on" or conf["synchronous_commit"] != "on":
        print("refusing: the figures need fsync=on and synchronous_commit=on", file=sys.stderr)
        return 2
    tag = f"{os.getpid()}"
    if not args.skip_live:
        url = await create_db(args.url, f"bench_live_{tag}")
        try:
            proc = serve_db(url)
            base = proc.url
            try:
                await wait_healthy(base)
                await bench_append(args, url, base, proc.p.pid)
                await bench_fanout(args, url, base)
            finally:
                proc.stop()
        finally:
            await finish_db(args, f"bench_live_{tag}")
    if not args.skip_big:
        url = await create_db(args.url, f"bench_big_{tag}")
        try:
            await bench_big(args, url)
        finally:
            await finish_db(args, f"bench_big_{tag}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(
        f"\nPostgreSQL {conf['server_version']}, fsync={conf['fsync']}, "
        f"synchronous_commit={conf['synchronous_commit']}, {os.cpu_count()} cores"
        "\n\n| measurement | result | detail |\n|---|---|---|"
    )
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    url_argument(p, "bench_* databases")
    p.add_argument("--rounds", type=int, default=5, help="measured/anchor alternations")
    p.add_argument("--seconds", type=float, default=3.0, help="per throughput/latency run")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--fanout-messages", type=int, default=200, help="appends per round")
    p.add_argument("--sessions", type=int, default=1_000_000, help="for the list/search part")
    p.add_argument("--repeat", type=int, default=31, help="timed runs per list query")
    p.add_argument("--skip-big", action="store_true", help="skip the list/search part")
    p.add_argument("--skip-live", action="store_true", help="only the list/search part")
    p.add_argument("--keep", action="store_true", help="keep the bench_* databases (to EXPLAIN)")
    sys.exit(asyncio.run(main(p.parse_args())))
