"""bench_postgres.py, figure 3: a writer on one instance, subscribers on another."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fanout_round, ms, pct, start_sessions, subscribe, wait_healthy
from postgres_append import insert_notify
from postgres_common import per_round, report, serve_db

# -- figure 3: cross-instance fan-out ------------------------------------------------------------


async def notify_round(
    listen: asyncpg.Connection, write: asyncpg.Connection, n: int
) -> list[float]:
    """Raw anchor: INSERT + pg_notify committed on one connection -> LISTEN callback."""
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[float]] = {}

    def heard(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        fut = waiting.pop(payload, None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    await listen.add_listener("bench", heard)
    out = []
    try:
        for i in range(n):
            fut = waiting[str(i)] = loop.create_future()
            t0 = time.perf_counter()
            await insert_notify(write, str(i))
            out.append(await asyncio.wait_for(fut, 30) - t0)
    finally:
        await listen.remove_listener("bench", heard)
    return out


async def bench_fanout(args: argparse.Namespace, url: str, base_a: str) -> None:
    proc_b = serve_db(url)
    base_b = proc_b.url
    listen, write = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await wait_healthy(base_b)
        [sid] = await start_sessions(base_a, 1)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            windows = await subscribe(http, base_a, sid, args.subscribers)
            cross: list[list[float]] = []
            cross_ack: list[float] = []
            local: list[list[float]] = []
            raw: list[list[float]] = []
            for _ in range(args.rounds):
                s, a, _ = await fanout_round(http, base_b, windows, sid, args.fanout_messages)
                cross.append(s)
                cross_ack += a
                local.append(
                    (await fanout_round(http, base_a, windows, sid, args.fanout_messages))[0]
                )
                raw.append(await notify_round(listen, write, args.fanout_messages))
            for ws in windows:
                await ws.close()
    finally:
        await listen.close()
        await write.close()
        proc_b.stop()
    flat = [x for r in cross for x in r]
    n = args.subscribers
    report(
        "3. anchor: raw INSERT+pg_notify commit -> LISTEN receipt",
        f"p50 {ms(pct([x for r in raw for x in r], 0.5))}",
        f"p99 {ms(pct([x for r in raw for x in r], 0.99))}; "
        f"p99 {per_round([pct(r, 0.99) for r in raw], ms)}",
    )
    report(
        f"3. reference: writer on A -> {n} subscribers on A",
        f"p50 {ms(pct([x for r in local for x in r], 0.5))}",
        f"p99 {ms(pct([x for r in local for x in r], 0.99))} (send -> last receipt)",
    )
    report(
        f"3. writer on B -> {n} subscribers on A: send -> last",
        f"p50 {ms(pct(flat, 0.5))} p99 {ms(pct(flat, 0.99))}",
        f"goal p99 < 50 ms; p99 {per_round([pct(r, 0.99) for r in cross], ms)}; "
        f"max {ms(max(flat))}; {len(flat)} appends",
    )
    report(
        f"3. writer on B -> {n} subscribers on A: ack -> last",
        f"p50 {ms(pct(cross_ack, 0.5))} p99 {ms(pct(cross_ack, 0.99))}",
        "(0 when the last receipt beats the ack)",
    )
