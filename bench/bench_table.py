"""Issue 11's table in one run: each figure of the server beside its anchor, the server
(and the echo servers) pinned to one CPU and this load generator to another (taskset).
Run by hand; it asserts nothing:

    .venv/bin/python bench/bench_table.py [--seconds 3] [--rounds 3] [--sessions 100000]
        [--store DIR] [--server-root TREE] [--server-cpu 0] [--client-cpu 1] [--unpinned]

Rows (goal in brackets):
1. HTTP append, 1 client, p50, fsync=always  vs  raw write+fdatasync p50 (on the server's
   CPU; on the load generator's too, for reference) + echo p50 [<= 1.3x]
2. the same with --fsync never  vs  bare aiohttp echo p50 [<= 1.5x]
3. 32 HTTP clients, a session each, req/s  vs  echo req/s with 32 clients [>= 0.5x]
4. 32 WebSockets, append -> ack, msg/s  vs  aiohttp WebSocket echo msg/s [>= 0.3x]
5. a store of S sessions x 20 messages written by another tool (no index, no snapshots):
   start -> /api/health answers [< 2 s], start -> list complete (total_sessions = S)
   [< 10 s], server RSS then [< 200 MB]
6. list, first page, at S sessions: HTTP round trip p50 [< 2 ms]
7. the first append after a restart to a compacted 10,000-message session (in-process
   ``Store``, median of 5 restarts)  vs  msgspec.json decode_lines of its journal

``--store DIR`` reuses (or creates once) the foreign store in DIR; its index is deleted
before the cold start. ``--server-root`` runs ``python -m server`` from another source
tree (a "before" checkout), with this venv. Rows 1-4 alternate echo and server runs for
``--rounds`` rounds and report medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    ALL_CPUS,
    Child,
    cpu_seconds,
    echo_server,
    http_load,
    pct,
    rss_mib,
    serve,
    start_sessions,
    wait_healthy,
    ws_load,
)
from foreign_store import write_foreign_store  # noqa: E402

# the server's CPU with its waited-for children: the index workers of a cold start (row 5)
cpu_s = partial(cpu_seconds, children=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.tree = Path(args.server_root).resolve() if args.server_root else ROOT
        self.env = {**os.environ, "PYTHONPATH": str(self.tree)}
        self.rows: list[tuple[str, str, str, str]] = []

    def sessionlog(self, data: str, *extra: str, cpu: int | None = -1) -> Child:
        """Pinned to ``cpu`` (default ``--server-cpu``; None: every CPU)."""
        cpu = self.a.server_cpu if cpu == -1 else cpu
        cpus = ALL_CPUS if cpu is None or self.a.unpinned else str(cpu)
        return serve("--data", data, *extra, cwd=self.tree, env=self.env, cpus=cpus)

    def echo(self) -> Child:
        cpus = ALL_CPUS if self.a.unpinned else str(self.a.server_cpu)
        return echo_server(self.a.uvloop_echo, env=self.env, cpus=cpus)

    def report(self, figure: str, value: str, anchor: str, ratio: str) -> None:
        self.rows.append((figure, value, anchor, ratio))
        print(f"  {figure:<44} {value:<22} {anchor:<40} {ratio}", flush=True)


# -- load --------------------------------------------------------------------------------


def raw_fsync_p50(directory: str, cpu: int | None, n: int = 1000) -> float:
    """p50 of os.write + os.fdatasync of a 200-byte line (O_APPEND), the disk's floor,
    measured on ``cpu``. It depends on the CPU: on this VM the disk's interrupts land
    on CPU 1, and a waiter on CPU 0 is woken through it (about 330 µs there against
    210 µs on CPU 1), so the server's floor is measured where the server runs."""
    path = os.path.join(directory, "raw.jsonl")
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # this thread only, until restored below
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    line = b"x" * 199 + b"\n"
    lat = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, line)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
        os.sched_setaffinity(0, before)
    return pct(lat, 0.5)


MSG = "hello " * 20


async def rows_1_to_4(b: Bench, tmp: Path) -> None:
    a = b.a
    echo = b.echo()
    always = b.sessionlog(str(tmp / "always"), "--fsync", "always")
    never = b.sessionlog(str(tmp / "never"), "--fsync", "never")
    res: dict[str, list[float]] = {}

    def add(key: str, v: float) -> None:
        res.setdefault(key, []).append(v)

    try:
        own = {s: await start_sessions(s.url, a.clients) for s in (always, never)}
        echo_url = f"{echo.url}echo"

        def body(sid: str) -> dict:
            return {"session_id": sid, "role": "user", "content": MSG}

        async def run(key: str, pid: int, go: Any) -> None:
            """One measurement, with the server's CPU seconds per request beside it."""
            c0 = cpu_s(pid)
            value, n = await go
            add(key, value)
            add(key + "_cpu", (cpu_s(pid) - c0) / max(n, 1))

        async def p50(go: Any) -> tuple[float, int]:
            _, lat, _ = await go
            return pct(lat, 0.5), len(lat)

        async def rate(go: Any) -> tuple[float, int]:
            r, lat, _ = await go
            return r, len(lat)

        def ws_frame(sid: Callable[[int], str]) -> Callable[[int, int], dict]:
            return lambda k, n: {"op": "append", "req_id": n, "session_id": sid(k),
                                 "role": "user", "content": MSG}  # fmt: skip

        for _ in range(a.rounds):
            add("raw", raw_fsync_p50(str(tmp), None if a.unpinned else a.server_cpu))
            add("raw_client", raw_fsync_p50(str(tmp), None if a.unpinned else a.client_cpu))
            await run(
                "echo1", echo.p.pid, p50(http_load(echo_url, lambda k: body("x"), 1, a.seconds))
            )
            for name, srv in (("always1", always), ("never1", never)):
                sid = own[srv][0]
                url = f"{srv.url}api/sessions/append"
                await run(
                    name, srv.p.pid, p50(http_load(url, lambda k, s=sid: body(s), 1, a.seconds))
                )
            await run(
                "echo32",
                echo.p.pid,
                rate(http_load(echo_url, lambda k: body("x"), a.clients, a.seconds)),
            )
            await run(
                "append32",
                always.p.pid,
                rate(
                    http_load(
                        f"{always.url}api/sessions/append",
                        lambda k: body(own[always][k]),
                        a.clients,
                        a.seconds,
                    )
                ),
            )
            await run(
                "wsecho",
                echo.p.pid,
                rate(ws_load(f"{echo.url}ws", ws_frame(lambda k: "x"), a.clients, a.seconds)),
            )
            await run(
                "ws32",
                always.p.pid,
                rate(
                    ws_load(
                        f"{always.url}api/sessions/ws",
                        ws_frame(lambda k: own[always][k]),
                        a.clients,
                        a.seconds,
                    )
                ),
            )
    finally:
        for s in (echo, always, never):
            s.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    us = lambda x: f"{x * 1e6:,.0f} µs"  # noqa: E731
    rounds = lambda k, f: "/".join(f(x) for x in res[k])  # noqa: E731
    anchor1 = med["raw"] + med["echo1"]

    def cpu(key: str) -> str:
        return f"server CPU {us(med[key + '_cpu'])}/req"

    old_anchor = med["raw_client"] + med["echo1"]
    b.report(
        "1. HTTP append, 1 client, p50",
        us(med["always1"]),
        f"raw fdatasync on the server's CPU {us(med['raw'])} + echo {us(med['echo1'])}",
        f"{med['always1'] / anchor1:.2f}x the sum (goal <= 1.3x); with the fdatasync "
        f"measured on the load generator's CPU ({us(med['raw_client'])}) "
        f"{med['always1'] / old_anchor:.2f}x; {cpu('always1')}, echo {cpu('echo1')}",
    )
    b.report(
        "2. same with --fsync never",
        us(med["never1"]),
        f"echo {us(med['echo1'])} ({rounds('echo1', us)})",
        f"{med['never1'] / med['echo1']:.2f}x (goal <= 1.5x); rounds {rounds('never1', us)}; "
        f"{cpu('never1')}",
    )
    b.report(
        f"3. {a.clients} HTTP clients, a session each",
        f"{med['append32']:,.0f}/s",
        f"echo {med['echo32']:,.0f}/s",
        f"{med['append32'] / med['echo32']:.2f}x (goal >= 0.5x); {cpu('append32')}, "
        f"echo {cpu('echo32')}",
    )
    b.report(
        f"4. {a.clients} WebSockets, append -> ack",
        f"{med['ws32']:,.0f}/s",
        f"WS echo {med['wsecho']:,.0f}/s",
        f"{med['ws32'] / med['wsecho']:.2f}x (goal >= 0.3x); {cpu('ws32')}, echo {cpu('wsecho')}",
    )


async def rows_5_6(b: Bench, tmp: Path) -> None:
    a = b.a
    store = Path(a.store) if a.store else tmp / "foreign"
    if not (store / "sessions").is_dir():
        t0 = time.perf_counter()
        write_foreign_store(store, a.sessions, 20)
        print(f"  (wrote {a.sessions:,} foreign journals in {time.perf_counter() - t0:.0f} s)")
    for f in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (store / f).unlink(missing_ok=True)
    n = sum(1 for _ in store.glob("sessions/*/*.jsonl"))
    t0 = time.perf_counter()
    # not pinned: the index build may use every CPU (the load generator only polls)
    srv = b.sessionlog(str(store), "--fsync", "never", "--compact-interval", "0", cpu=None)
    try:
        await wait_healthy(srv.url, interval=0.005)
        healthy = time.perf_counter() - t0
        async with aiohttp.ClientSession() as http:
            total, last_change = -1, time.perf_counter()
            while total != n:
                async with http.post(f"{srv.url}api/sessions/list", json={"limit": 1}) as r:
                    now = (await r.json())["total_sessions"]
                if now != total:
                    total, last_change = now, time.perf_counter()
                elif time.perf_counter() - last_change > a.give_up:
                    break  # no progress: some sessions are never listed
                if total != n:
                    await asyncio.sleep(0.05)
            listed = (last_change if total != n else time.perf_counter()) - t0
            rss, cpu = rss_mib(srv.p.pid), cpu_s(srv.p.pid)
            b.report(
                f"5. {n:,} foreign sessions, start -> health",
                f"{healthy:.2f} s",
                "—",
                "goal < 2 s",
            )
            b.report(
                f"5. {n:,} foreign sessions, start -> list complete",
                f"{listed:.2f} s" if total == n else f"never: {total:,} listed at {listed:.1f} s",
                "—",
                f"RSS {rss:.0f} MiB, CPU {cpu:.1f} s incl. workers (goal < 10 s, < 200 MB)",
            )
            indexed = None
            while time.perf_counter() - t0 < a.give_up * 20:
                async with http.get(f"{srv.url}api/health") as r:
                    if not (await r.json()).get("indexing", False):
                        indexed = time.perf_counter() - t0
                        break
                await asyncio.sleep(0.2)
            b.report(
                f"5. {n:,} foreign sessions, start -> search complete",
                "—" if indexed is None else f"{indexed:.1f} s",
                "—",
                "full-text docs are written after the list (health: indexing false)",
            )
            lat = []
            for _ in range(200):
                t1 = time.perf_counter()
                async with http.post(f"{srv.url}api/sessions/list", json={}) as r:
                    await r.read()
                lat.append(time.perf_counter() - t1)
            b.report(
                f"6. list first page at {n:,}",
                f"{pct(lat, 0.5) * 1e3:.2f} ms",
                "—",
                f"p90 {pct(lat, 0.9) * 1e3:.2f} ms (goal < 2 ms); RSS {rss_mib(srv.p.pid):.0f} MiB",
            )
    finally:
        srv.stop()


FIRST_APPEND = """
import os, sys, tempfile, time, statistics, msgspec
from eventlog.backends.file.store import Store
from eventlog.requests import AppendRequest, StartRequest
d = tempfile.mkdtemp(dir=sys.argv[1])
with Store(d, background=False) as s:
    sid = s.start(StartRequest()).session_id
    for i in range(10_000):
        s.append(AppendRequest(session_id=sid, role="user", content="hello " * 30, id=f"e{i}"))
    path = s.path_of(sid)
data = open(path, "rb").read()
dec = msgspec.json.Decoder()
firsts, decodes = [], []
for k in range(5):
    t = time.perf_counter(); dec.decode_lines(data); decodes.append(time.perf_counter() - t)
    with Store(d, background=False, reconcile=False) as s:
        t = time.perf_counter()
        r = s.append(AppendRequest(session_id=sid, role="user", content="x", id=f"n{k}"))
        firsts.append(time.perf_counter() - t)
        assert not r.duplicate
print(statistics.median(firsts), statistics.median(decodes), len(data))
"""


def row_7(b: Bench, tmp: Path) -> None:
    out = subprocess.run(
        ["taskset", "-c", str(b.a.server_cpu), sys.executable, "-c", FIRST_APPEND, str(tmp)],
        cwd=b.tree, env=b.env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    first, decode, size = float(out[0]), float(out[1]), int(out[2])
    b.report(
        "7. first append after a restart, 10k msgs",
        f"{first * 1e3:.2f} ms",
        f"decode_lines of the {size / 2**20:.1f} MiB journal {decode * 1e3:.2f} ms",
        f"{first / decode:.2f}x",
    )


async def main(a: argparse.Namespace) -> None:
    b = Bench(a)
    load = os.getloadavg()
    if a.unpinned:
        where = "nothing pinned (server, echo and load generator share every CPU)"
    else:
        os.sched_setaffinity(0, {a.client_cpu})
        where = f"server CPU {a.server_cpu}, load generator CPU {a.client_cpu}"
    print(f"server tree {b.tree}, {where}; load average {load[0]:.2f}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-table-", dir=a.dir))
    try:
        if not a.skip_http:
            await rows_1_to_4(b, tmp)
        if not a.skip_store:
            await rows_5_6(b, tmp)
        row_7(b, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| figure | now | anchor (same run) | ratio / goal |\n|---|---|---|---|")
    for row in b.rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--store", help="keep the foreign store here (created once)")
    p.add_argument("--server-root", help="run the server from this source tree")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument(
        "--unpinned",
        action="store_true",
        help="pin nothing (as a server runs on a small machine); the table's goals are "
        "for the pinned layout",
    )
    p.add_argument("--dir", help="temporary data dirs under DIR")
    p.add_argument("--uvloop-echo", action="store_true", help="run the echo server on uvloop")
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--give-up", type=float, default=30.0, help="seconds without list progress")
    p.add_argument("--skip-store", action="store_true")
    asyncio.run(main(p.parse_args()))
