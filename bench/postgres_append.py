"""bench_postgres.py, figures 1 and 2: HTTP appends beside raw asyncpg INSERT+COMMIT
(and, for figure 1, a bare aiohttp echo)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    echo_server,
    http_load,
    median_ratio,
    ms,
    own_cpu_seconds,
    pct,
    postgres_cpu_seconds,
    start_sessions,
    us,
)
from postgres_common import CONTENT, med, per_round, ratios, report

from eventlog.events import MessageAppended, MessageAppendedData, encoder, new_event_id

# the raw anchor stores what an append stores: one journal line of the same size
RAW_BODY = encoder.encode(
    MessageAppended(
        seq=2,
        id=new_event_id(),
        ts="2026-02-09T12:00:00.000Z",
        data=MessageAppendedData(new_event_id(), "user", CONTENT, "2026-02-09T12:00:00.000Z", {}),
    )
).decode()
RAW_TABLE = (
    "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, session_id text NOT NULL, "
    "body text NOT NULL)"
)
RAW_INSERT = "INSERT INTO bench_raw (session_id, body) VALUES ($1, $2)"
RAW_NOTIFY = f"WITH i AS ({RAW_INSERT} RETURNING id) SELECT pg_notify('bench', $1) FROM i"


async def insert(c: asyncpg.Connection, sid: str) -> None:
    await c.execute(RAW_INSERT, sid, RAW_BODY)


async def insert_notify(c: asyncpg.Connection, sid: str) -> None:
    """The insert with a NOTIFY sent at its commit, as ``sessionlog_write`` sends one."""
    await c.execute(RAW_NOTIFY, sid, RAW_BODY)


async def insert_then_notify(c: asyncpg.Connection, sid: str) -> None:
    """The insert committed, then the NOTIFY in a transaction of its own (no WAL flush
    while it holds PostgreSQL's NOTIFY commit lock): two round trips."""
    await c.execute(RAW_INSERT, sid, RAW_BODY)
    await c.execute("SELECT pg_notify('bench', $1)", sid)


async def raw_load(
    conns: list[asyncpg.Connection],
    seconds: float,
    step: Callable[[asyncpg.Connection, str], Awaitable[None]] = insert,
) -> tuple[float, list[float]]:
    """Rate and latencies of one ``step`` loop per connection (autocommit: each
    statement is its own durable transaction), each on a session id of its own."""
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop(k: int, c: asyncpg.Connection) -> int:
        n, sid = 0, f"raw{k:09d}"
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await step(c, sid)
            lat.append(time.perf_counter() - t0)
            n += 1
        return n

    t0 = time.perf_counter()
    total = sum(await asyncio.gather(*(loop(k, c) for k, c in enumerate(conns))))
    return total / (time.perf_counter() - t0), lat


# -- figures 1 and 2: HTTP append vs raw insert (+ echo) ----------------------------------------


async def bench_append(args: argparse.Namespace, url: str, base: str, pid: int) -> None:
    """Per round: raw insert, echo, append (1 client); raw inserts, appends (N clients).
    Diagnostics: the raw inserts again with a pg_notify in the transaction, as the
    backend's write function sends one (PostgreSQL serialises the commits of notifying
    transactions, WAL flush included, and wakes every listening backend of the
    database), and with the pg_notify in a transaction of its own after the commit."""
    echo = echo_server()
    conns = [await asyncpg.connect(url) for _ in range(args.clients)]
    try:
        await conns[0].execute(RAW_TABLE)
        own = await start_sessions(base, args.clients)
        echo_url, append_url = f"{echo.url}echo", f"{base}api/sessions/append"
        body = {"session_id": own[0], "role": "user", "content": CONTENT}
        k: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            k.setdefault(key, []).append(value)

        for _ in range(args.rounds):
            add("raw1", pct((await raw_load(conns[:1], args.seconds))[1], 0.5))
            _, lat, _ = await http_load(echo_url, lambda _: body, 1, args.seconds, echo.p.pid)
            add("echo1", pct(lat, 0.5))
            _, lat, cpu = await http_load(append_url, lambda _: body, 1, args.seconds, pid)
            add("app1", pct(lat, 0.5))
            add("cpu1", cpu)
            add("notify1", pct((await raw_load(conns[:1], args.seconds, insert_notify))[1], 0.5))
            pg0, me0 = postgres_cpu_seconds(), own_cpu_seconds()
            rate, lat = await raw_load(conns, args.seconds)
            add("raw32", rate)
            add("raw32_pg", (postgres_cpu_seconds() - pg0) / len(lat))
            add("raw32_client", (own_cpu_seconds() - me0) / len(lat))
            pg0, me0 = postgres_cpu_seconds(), own_cpu_seconds()
            rate, lat, cpu = await http_load(
                append_url,
                lambda i: {"session_id": own[i], "role": "user", "content": CONTENT},
                args.clients,
                args.seconds,
                pid,
            )
            add("app32", rate)
            add("cpu32", cpu)
            add("app32_pg", (postgres_cpu_seconds() - pg0) / len(lat))
            add("app32_client", (own_cpu_seconds() - me0) / len(lat))
            add("notify32", (await raw_load(conns, args.seconds, insert_notify))[0])
            add("after32", (await raw_load(conns, args.seconds, insert_then_notify))[0])
    finally:
        echo.stop()
        for c in conns:
            await c.close()
    raw1, echo1, app1 = k["raw1"], k["echo1"], k["app1"]
    anchor = [r + e for r, e in zip(raw1, echo1, strict=True)]
    report("1. raw INSERT+COMMIT, 1 asyncpg connection: p50", ms(med(raw1)), per_round(raw1, ms))
    report("1. bare aiohttp JSON echo, 1 client: p50", ms(med(echo1)), per_round(echo1, ms))
    report("1. anchor = raw INSERT+COMMIT + echo", ms(med(anchor)), per_round(anchor, ms))
    report(
        "1. HTTP append, 1 client: p50",
        f"{ms(med(app1))} = {median_ratio(app1, anchor):.2f}x anchor",
        f"goal <= 1.5x; {per_round(app1, ms)} ({ratios(app1, anchor, '.2f')}x); "
        f"server CPU {us(med(k['cpu1']))}/req",
    )
    report(
        "1. diagnostic: raw INSERT+pg_notify+COMMIT, 1 connection",
        ms(med(k["notify1"])),
        per_round(k["notify1"], ms),
    )
    raw32, app32, notify32 = k["raw32"], k["app32"], k["notify32"]
    n = args.clients
    report(
        f"2. {n} raw asyncpg connections, INSERT+COMMIT",
        f"{med(raw32):,.0f} commits/s",
        per_round(raw32, lambda x: f"{x:,.0f}"),
    )
    report(
        f"2. HTTP append, {n} clients, a session each",
        f"{med(app32):,.0f} req/s = {median_ratio(app32, raw32):.0%} of raw",
        f"goal >= 50%; {per_round(app32, lambda x: f'{x:,.0f}')} ({ratios(app32, raw32, '.0%')}); "
        f"server CPU {us(med(k['cpu32']))}/req",
    )
    cores = os.cpu_count() or 1
    app_total = med(k["cpu32"]) + med(k["app32_pg"]) + med(k["app32_client"])
    raw_total = med(k["raw32_pg"]) + med(k["raw32_client"])
    report(
        "2. diagnostic: CPU per request, HTTP append",
        f"{us(app_total)}",
        f"server {us(med(k['cpu32']))} + PostgreSQL {us(med(k['app32_pg']))} + load "
        f"generator {us(med(k['app32_client']))}: at most {cores / app_total:,.0f} req/s "
        f"on {cores} busy cores",
    )
    report(
        "2. diagnostic: CPU per commit, raw INSERT+COMMIT",
        f"{us(raw_total)}",
        f"PostgreSQL {us(med(k['raw32_pg']))} + client {us(med(k['raw32_client']))}; 50 % of "
        f"raw leaves {us(cores / (0.5 * med(raw32)))} per HTTP append on {cores} cores",
    )
    report(
        f"2. diagnostic: {n} raw connections, INSERT+pg_notify+COMMIT",
        f"{med(notify32):,.0f} commits/s = {median_ratio(notify32, raw32):.0%} of raw",
        per_round(notify32, lambda x: f"{x:,.0f}"),
    )
    report(
        f"2. diagnostic: {n} raw connections, INSERT+COMMIT, then pg_notify",
        f"{med(k['after32']):,.0f} commits/s = {median_ratio(k['after32'], raw32):.0%} of raw",
        per_round(k["after32"], lambda x: f"{x:,.0f}") + " (NOTIFY in its own transaction)",
    )
