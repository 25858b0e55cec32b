"""Kill -9 stress: a real server, killed over and over under concurrent writes.

    .venv/bin/python bench/stress.py [--cycles 1000] [--dir DIR] [--fsync always]
                                     [--sessions 4] [--seed N] [--keep]

Each cycle starts ``python -m server serve`` on the same data directory, runs HTTP
writers, WebSocket writers (pipelined) and WebSocket subscribers against several
sessions (the newest six) for a random 50-300 ms, then SIGKILLs the server at that
moment (a short compaction interval makes kills land mid-compaction too). Every append
carries a client ``message_id``; the harness records each acknowledgement (status 200,
or an ``ack`` frame) and retries every unacknowledged append in the next cycle, as a
client would. A few sessions are started along the way (an acknowledged start must
survive too). After every kill, before the next start, the files are checked:

- lost:        an acknowledged append (or start) that is not in its journal at its seq
- duplicated:  a message_id written more than once in a session
- gaps:        a journal whose seqs are not 1..N (or that has an unusable line)
- unverified:  ``eventlog.backends.file.maintenance.verify`` problems other than a torn tail
- unpublished: an event a subscriber received that is not in the journal (same seq, id)
- sub_gaps:    a subscriber that saw a session's seqs out of order / with a gap after
               resuming with ``after_seq`` (it resumes across restarts)

and a summary line is printed at the end (progress every 50 cycles). Exit status 1 if
any invariant failed. Its ``Server`` (bench/server_process.py) also serves the test suite
(tests/test_faults_disk.py, tests/test_churn.py).

A SIGKILL loses no page cache, so this proves what survives a process crash; it cannot
show what a power cut would lose (that needs a block-level fault injector).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.server_process import Server  # noqa: E402
from bench.stress_ledger import Check, Ledger, check  # noqa: E402

NET_ERRORS = (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError, OSError)


# -- clients --------------------------------------------------------------------------------


async def http_writer(
    http: aiohttp.ClientSession,
    srv: Server,
    ledger: Ledger,
    rng: random.Random,
    retry: list[tuple[str, str]],
) -> None:
    url = srv.url + "api/sessions/append"
    while True:
        if retry:
            sid, mid = retry.pop()
        else:
            sid = rng.choice(ledger.active())
            mid = ledger.next_mid("h")
        ledger.try_(sid, mid)
        body = {
            "session_id": sid,
            "role": rng.choice(["user", "assistant"]),
            "content": f"{mid} {'ü' * rng.randint(0, 40)}",
            "message_id": mid,
        }
        async with http.post(url, json=body) as r:
            out = await r.json()
        if r.status == 200:
            ledger.ack(sid, mid, out["seq"], out["duplicate"])
        else:
            ledger.errors[f"http {r.status} {out.get('code')}"] += 1


async def ws_writer(
    http: aiohttp.ClientSession, srv: Server, ledger: Ledger, rng: random.Random, depth: int
) -> None:
    """Pipelines up to ``depth`` appends on one socket; acks come back by req_id."""
    async with http.ws_connect(srv.ws_url) as ws:
        inflight: dict[int, tuple[str, str]] = {}
        req = itertools.count()
        while True:
            while len(inflight) < depth:
                sid = rng.choice(ledger.active())
                mid = ledger.next_mid("w")
                rid = next(req)
                ledger.try_(sid, mid)
                inflight[rid] = (sid, mid)
                await ws.send_json(
                    {
                        "op": "append",
                        "req_id": rid,
                        "session_id": sid,
                        "role": "user",
                        "content": mid,
                        "message_id": mid,
                    }
                )
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            frame = msg.json()
            if frame.get("op") == "ack":
                sid, mid = inflight.pop(frame["req_id"])
                ledger.ack(sid, mid, frame["seq"], frame["duplicate"])
            elif frame.get("op") == "error":
                inflight.pop(frame.get("req_id"), None)
                ledger.errors[f"ws {frame.get('code')}"] += 1


async def subscriber(
    http: aiohttp.ClientSession, srv: Server, ledger: Ledger, who: int, ready: asyncio.Event
) -> None:
    """Subscribes to every session from where it left off (across restarts)."""
    async with http.ws_connect(srv.ws_url) as ws:
        for sid in ledger.active():
            await ws.send_json(
                {
                    "op": "subscribe",
                    "session_id": sid,
                    "after_seq": ledger.resume.get((who, sid), 0),
                }
            )
        ready.set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            frame = msg.json()
            if frame.get("op") == "event":
                ledger.event(who, frame["session_id"], frame["seq"], frame["id"])
            elif frame.get("op") == "error":
                ledger.errors[f"sub {frame.get('code')}"] += 1


async def starter(http: aiohttp.ClientSession, srv: Server, ledger: Ledger) -> None:
    async with http.post(srv.url + "api/sessions/start", json={"title": "stress"}) as r:
        out = await r.json()
    if r.status == 200:
        ledger.sessions.append(out["session_id"])
    else:
        ledger.errors[f"start {r.status} {out.get('code')}"] += 1


async def _quiet(coro: Any) -> None:
    with contextlib.suppress(*NET_ERRORS):
        await coro


async def run_cycle(
    srv: Server,
    ledger: Ledger,
    rng: random.Random,
    run_for: float,
    http_writers: int,
    ws_writers: int,
    subscribers: int,
) -> None:
    """Clients hammer the server; after ``run_for`` seconds it is SIGKILLed mid-flight."""
    retry = list(ledger.tried)
    rng.shuffle(retry)
    timeout = aiohttp.ClientTimeout(total=10)
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=conn) as http:
        ready = [asyncio.Event() for _ in range(subscribers)]
        tasks = [
            asyncio.create_task(_quiet(subscriber(http, srv, ledger, k, r)))
            for k, r in enumerate(ready)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 2)
        tasks += [
            asyncio.create_task(_quiet(http_writer(http, srv, ledger, rng, retry)))
            for _ in range(http_writers)
        ]
        tasks += [
            asyncio.create_task(_quiet(ws_writer(http, srv, ledger, rng, rng.randint(1, 8))))
            for _ in range(ws_writers)
        ]
        if rng.random() < 0.1:
            tasks.append(asyncio.create_task(_quiet(starter(http, srv, ledger))))
        await asyncio.sleep(run_for)
        srv.kill()  # SIGKILL while requests are in flight
        _, pending = await asyncio.wait(tasks, timeout=10)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--dir", help="parent folder for the data directory (default: a temp dir)")
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    ap.add_argument("--sessions", type=int, default=4, help="sessions to start with")
    ap.add_argument("--http-writers", type=int, default=3)
    ap.add_argument("--ws-writers", type=int, default=2)
    ap.add_argument("--subscribers", type=int, default=2)
    ap.add_argument("--min-ms", type=int, default=50)
    ap.add_argument("--max-ms", type=int, default=300)
    ap.add_argument(
        "--compact-interval",
        type=float,
        default=0.2,
        help="short, so kills also land mid-compaction (default 0.2 s)",
    )
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--progress", type=int, default=50, help="print progress every N cycles")
    args = ap.parse_args(argv)
    # SIGTERM/SIGHUP: unwind through the ``finally`` that kills the server of the cycle
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(2))

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    parent = Path(tempfile.mkdtemp(prefix="sessionlog-stress-", dir=args.dir))
    data = parent / "memory"
    ledger = Ledger()
    totals = Check()
    t0 = time.monotonic()
    print(f"stress: seed={seed} data={data} fsync={args.fsync} cycles={args.cycles}", flush=True)
    failed_cycles = 0
    for cycle in range(1, args.cycles + 1):
        srv = Server(
            data,
            fsync=args.fsync,
            compact_interval=args.compact_interval,
            log=parent / "server.log",
        )
        try:
            if not ledger.sessions:

                async def first(srv: Server = srv) -> None:
                    async with aiohttp.ClientSession() as http:
                        for _ in range(args.sessions):
                            await starter(http, srv, ledger)

                asyncio.run(first())
            run_for = rng.uniform(args.min_ms, args.max_ms) / 1000
            asyncio.run(
                run_cycle(
                    srv, ledger, rng, run_for, args.http_writers, args.ws_writers, args.subscribers
                )
            )
        finally:
            srv.kill()
        c = check(data, ledger)
        for name in ("lost", "duplicated", "gaps", "unverified", "unpublished"):
            setattr(totals, name, max(getattr(totals, name), getattr(c, name)))
        if c.bad():
            failed_cycles += 1
            print(f"cycle {cycle}: INVARIANT FAILED: " + "; ".join(c.details[:10]), flush=True)
        if cycle % args.progress == 0 or cycle == args.cycles:
            el = time.monotonic() - t0
            print(
                f"[{cycle}/{args.cycles}] {el:.0f}s acked={ledger.appends_acked} "
                f"unacked_pending={len(ledger.tried)} sessions={len(ledger.sessions)} "
                f"sub_events={sum(len(v) for v in ledger.seen.values())} "
                f"errors={dict(ledger.errors)} failed_cycles={failed_cycles}",
                flush=True,
            )
    # the last kill may leave a snapshot's temp file; a start sweeps what dead processes
    # left, so count what is left after one more (idle) start
    Server(data, fsync=args.fsync, compact_interval=args.compact_interval,
           log=parent / "server.log").kill()  # fmt: skip
    leftovers = [
        p.name
        for p in (data / "sessions").rglob("*")
        if p.is_file() and not p.name.endswith((".jsonl", ".json", ".torn"))
    ]
    elapsed = time.monotonic() - t0
    log = (parent / "server.log").read_text(errors="replace")
    tracebacks = log.count("Traceback")
    print(
        f"SUMMARY cycles={args.cycles} appends_acknowledged={ledger.appends_acked} "
        f"(duplicate_acks={ledger.duplicates_acked}) lost={totals.lost} "
        f"duplicated={totals.duplicated} gaps={totals.gaps} verify_problems={totals.unverified} "
        f"unpublished={totals.unpublished} subscriber_gaps={ledger.sub_gaps} "
        f"subscriber_mismatches={ledger.sub_mismatches} "
        f"ack_conflicts={ledger.ack_conflicts} unexpected_errors={sum(ledger.errors.values())} "
        f"temp_leftovers={len(leftovers)} server_log_tracebacks={tracebacks} "
        f"sessions={len(ledger.sessions)} "
        f"elapsed={elapsed:.0f}s seed={seed}",
        flush=True,
    )
    if not args.keep:
        shutil.rmtree(parent, ignore_errors=True)
    bad = (
        failed_cycles
        or ledger.sub_gaps
        or ledger.sub_mismatches
        or ledger.ack_conflicts
        or tracebacks
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
