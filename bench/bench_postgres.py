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
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_list import RARE, TAGS, vocabulary
from common import (
    Child,
    echo_server,
    fanout_round,
    http_load,
    median_ratio,
    ms,
    own_cpu_seconds,
    pct,
    postgres_cpu_seconds,
    serve,
    start_sessions,
    subscribe,
    us,
    wait_healthy,
)

from eventlog.backends.postgres import listing
from eventlog.backends.postgres.backend import PostgresBackend
from eventlog.backends.postgres.importer import SESSION_COLUMNS, doc_rows, session_row
from eventlog.backends.postgres.schema import migrate
from eventlog.events import (
    Event,
    MessageAppended,
    MessageAppendedData,
    SessionStarted,
    SessionStartedData,
    SessionUpdated,
    SessionUpdatedData,
    encoder,
    new_event_id,
)
from eventlog.fold import fold
from eventlog.requests import ListRequest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:54329/postgres"
CONTENT = "hello " * 20
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

rows: list[tuple[str, str, str]] = []


def report(name: str, value: str, note: str = "") -> None:
    rows.append((name, value, note))
    print(f"  {name:<56} {value:<30} {note}", flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def per_round(xs: list[float], fmt: Callable[[float], str]) -> str:
    return "rounds " + "/".join(fmt(x) for x in xs)


def db_url(admin: str, name: str) -> str:
    return urlsplit(admin)._replace(path=f"/{name}").geturl()


async def create_db(admin: str, name: str) -> str:
    c = await asyncpg.connect(admin)
    try:
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.execute(f'CREATE DATABASE "{name}"')
    finally:
        await c.close()
    return db_url(admin, name)


async def drop_db(admin: str, name: str) -> None:
    c = await asyncpg.connect(admin)
    try:
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await c.close()


async def finish_db(args: argparse.Namespace, name: str) -> None:
    if args.keep:
        print(f"  kept {db_url(args.url, name)}", flush=True)
    else:
        await drop_db(args.url, name)


def serve_db(url: str) -> Child:
    """``sessionlog serve`` on the database at ``url``."""
    return serve("--compact-interval", "5", "--database", url)


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


def ratios(xs: list[float], ys: list[float], fmt: str) -> str:
    """Each round's figure over its own anchor."""
    return "/".join(format(x / y, fmt) for x, y in zip(xs, ys, strict=True))


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


# -- figure 4: a million sessions ------------------------------------------------------------------


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class Generator:
    """Sessions as the backend would have written them: the started event, 2-4 messages
    of Zipf-distributed words (``RARE`` in ~1 message in 3,000), for some a
    session.updated (tags, pinned, archived); list rows and search docs come from the
    importer's own functions (``session_row``, ``doc_rows``)."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        words = vocabulary(random.Random(1))
        self.words = words
        self.stream = self.rng.choices(
            words, cum_weights=list(accumulate(1 / r for r in range(1, len(words) + 1))), k=1 << 20
        )
        self.now = time.time()
        self.rare_sessions = 0
        self.counts: Counter[tuple[bool, str]] = Counter()
        self.messages: Counter[tuple[bool, str]] = Counter()

    def text(self, lo: int, hi: int) -> list[str]:
        at = self.rng.randrange(len(self.stream) - hi)
        return self.stream[at : at + self.rng.randint(lo, hi)]

    def chunk(self, todo: list[tuple[str, float]]) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """Rows for sessions (id, start time): sessions, events, search docs."""
        rng = self.rng
        sessions, events, docs = [], [], []
        for sid, t in todo:
            kind = "voice" if rng.random() < 0.2 else "chat"
            title = " ".join(self.text(2, 4)).title() if rng.random() < 0.3 else ""
            evs: list[Event] = [
                SessionStarted(
                    seq=1,
                    id=new_event_id(),
                    ts=iso(t),
                    data=SessionStartedData("User", {"type": kind}, title),
                )
            ]
            rare = False
            for k in range(rng.randint(2, 4)):
                words = self.text(3, 40)
                if rng.random() < 1 / 3000:
                    words.insert(rng.randrange(len(words)), RARE)
                    rare = True
                t += rng.uniform(2, 60)
                evs.append(
                    MessageAppended(
                        seq=len(evs) + 1,
                        id=new_event_id(),
                        ts=iso(t),
                        data=MessageAppendedData(
                            new_event_id(),
                            "user" if k % 2 == 0 else "assistant",
                            " ".join(words),
                            iso(t),
                            {},
                        ),
                    )
                )
            r = rng.random()
            if r < 0.15:
                t += rng.uniform(2, 600)
                evs.append(
                    SessionUpdated(
                        seq=len(evs) + 1,
                        id=new_event_id(),
                        ts=iso(t),
                        data=SessionUpdatedData(
                            tags=rng.sample(TAGS, rng.randint(1, 2)),
                            pinned=True if r < 0.001 else None,
                            archived=True if 0.001 <= r < 0.06 else None,
                        ),
                    )
                )
            self.rare_sessions += rare
            row = session_row(fold(sid, evs))  # the importer's own rows, column for column
            sessions.append(row)
            archived, kind, messages = row[7], row[4], row[8]
            self.counts[(archived, kind)] += 1
            self.messages[(archived, kind)] += messages
            for e in evs:
                mid = e.data.message_id if isinstance(e, MessageAppended) else None
                events.append((sid, e.seq, e.id, mid, encoder.encode(e).decode()))
            docs += doc_rows(sid, evs)
        return sessions, events, docs


LOADED = ["sessions", "events", "docs", "used_ids"]


async def index_defs(c: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """(table, name, definition) of every index of the loaded tables; the definition is
    ``ADD CONSTRAINT …`` for a primary key or unique constraint, else ``CREATE INDEX …``."""
    rows = await c.fetch(
        "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, "
        "coalesce('ADD CONSTRAINT ' || quote_ident(k.conname) || ' ' || "
        "pg_get_constraintdef(k.oid), pg_get_indexdef(i.indexrelid)) "
        "FROM pg_index i LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid "
        "WHERE i.indrelid = ANY($1::regclass[]) ORDER BY 1, 2",
        LOADED,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def load(c: asyncpg.Connection, n: int, chunk: int = 50_000) -> Generator:
    """COPY ``n`` sessions, oldest first: the heap order a real history leaves (rows are
    written, and rewritten by each append, in time order), which the "this week" counts
    and recent pages depend on. Indexes and keys are dropped for the load and rebuilt
    from their own definitions after it (checked identical), as any bulk load does.
    Rows are the importer's (``importer.session_row``, ``doc_rows``); search docs go
    through a staging table into the same expression as ``importer.DOCS_SQL``; counters
    as deltas, rolled up."""
    gen = Generator()
    rng = random.Random(2)
    unique: set[str] = set()
    while len(unique) < n:  # random like token_hex(6)
        unique.add(f"{rng.getrandbits(48):012x}")
    starts = sorted(gen.now - rng.uniform(60, 365 * 86400) for _ in range(n))
    todo = list(zip(unique, starts, strict=True))
    before = await index_defs(c)
    for table, name, sql in before:
        if sql.startswith("ADD CONSTRAINT"):
            await c.execute(f"ALTER TABLE {table} DROP CONSTRAINT {sql.split()[2]}")
        else:
            await c.execute(f"DROP INDEX {name}")
    await c.execute(
        "CREATE TEMP TABLE stage (session_id text, doc_id text, t text, w text, p integer)"
    )
    t0, gen_s = time.perf_counter(), 0.0
    for i in range(0, n, chunk):
        g0 = time.perf_counter()
        sessions, events, docs = gen.chunk(todo[i : i + chunk])
        gen_s += time.perf_counter() - g0
        async with c.transaction():
            await c.copy_records_to_table(
                "used_ids", columns=["session_id"], records=[(s[0],) for s in sessions]
            )
            await c.copy_records_to_table("sessions", columns=SESSION_COLUMNS, records=sessions)
            await c.copy_records_to_table(
                "events",
                columns=["session_id", "seq", "event_id", "message_id", "body"],
                records=events,
            )
            await c.copy_records_to_table("stage", records=docs)
            await c.execute(  # importer.DOCS_SQL, set-wise
                "INSERT INTO docs (session_id, doc_id, tsv, body, position) SELECT session_id, "
                "doc_id, setweight(to_tsvector('simple', t), w::\"char\"), t, p FROM stage"
            )
            await c.execute("TRUNCATE stage")
        done = min(n, i + chunk)
        el = time.perf_counter() - t0
        print(
            f"\r  loaded {done:,}/{n:,} sessions in {el:.0f} s "
            f"(generating {gen_s:.0f} s), eta {el / done * (n - done):.0f} s   ",
            end="",
            flush=True,
        )
    print("; building indexes", flush=True)
    await c.execute("SET maintenance_work_mem = '512MB'")  # index builds only
    for table, _, sql in before:
        await c.execute(f"ALTER TABLE {table} {sql}" if sql.startswith("ADD") else sql)
    if await index_defs(c) != before:
        raise RuntimeError("the rebuilt indexes differ from the schema's")
    # the same totals as one delta per session would give, in a handful of rows
    await c.executemany(
        "INSERT INTO counter_deltas (session_id, archived, type, n, messages) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(todo[0][0], a, t, k, gen.messages[(a, t)]) for (a, t), k in gen.counts.items()],
    )
    await c.execute("SELECT sessionlog_rollup()")
    return gen


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def week_count(c: asyncpg.Connection, repeat: int) -> None:
    """Diagnostic: the first page's "today / this week" count, which the running totals do
    not answer, alone (it reads every session started in the last 7 days)."""
    now = datetime.now(UTC)
    today, week = now.strftime("%Y-%m-%d"), iso((now - timedelta(days=7)).timestamp())
    sql = (
        "SELECT count(*) FILTER (WHERE started_at >= $1), count(*) FROM sessions "
        "WHERE archived = false AND started_at >= $2"
    )
    await c.fetch(sql, today, week)
    times = [await timed(lambda: c.fetch(sql, today, week)) for _ in range(repeat)]
    n = (await c.fetchrow(sql, today, week))[1]
    report(
        "4. diagnostic: the first page's today/week count SQL",
        ms(med(times)),
        f"{n:,} sessions started this week; part of the first page's time",
    )


async def bench_big(args: argparse.Namespace, url: str) -> None:
    c = await asyncpg.connect(url)
    try:
        await migrate(c)
        t0 = time.perf_counter()
        gen = await load(c, args.sessions)
        loaded = time.perf_counter() - t0
        t1 = time.perf_counter()
        await c.execute("VACUUM ANALYZE")  # what autovacuum does after a load, done now
        size = await c.fetchval("SELECT pg_database_size(current_database())")
        report(
            f"4. load {args.sessions:,} sessions (COPY)",
            f"{loaded:.0f} s + VACUUM ANALYZE {time.perf_counter() - t1:.0f} s",
            f"database {size / 2**30:.2f} GiB; {RARE!r} in {gen.rare_sessions:,} sessions",
        )
        backend = PostgresBackend(url)
        await backend.open()
        common = gen.words[100]  # ~ the 100th commonest word: in a few % of messages

        def raw_page(where: str) -> str:
            return (
                f"SELECT summary FROM sessions WHERE {where} "
                "ORDER BY pinned DESC, last_updated DESC, session_id LIMIT 100"
            )

        raw_gin = "SELECT count(*) FROM docs WHERE tsv @@ to_tsquery('simple', $1)"
        cases: list[tuple[str, ListRequest, str, tuple[Any, ...], int, str]] = [
            (
                "first page (default filters)",
                ListRequest(),
                raw_page("NOT archived"),
                (),
                args.repeat,
                "< 10 ms",
            ),
            (
                "first page, archived too",
                ListRequest(archived=None),
                raw_page("true"),
                (),
                args.repeat,
                "",
            ),
            (
                "type=voice",
                ListRequest(type="voice"),
                raw_page("NOT archived AND type = $1"),
                ("voice",),
                args.repeat,
                "",
            ),
            (
                "tag=travel",
                ListRequest(tag="travel"),
                raw_page("NOT archived AND tags @> ARRAY[$1]"),
                ("travel",),
                args.repeat,
                "",
            ),
            (
                f"search rare word {RARE!r}",
                ListRequest(query=RARE),
                raw_gin,
                (RARE,),
                args.repeat,
                "< 50 ms",
            ),
            (
                f"search prefix {RARE[:4]!r}",
                ListRequest(query=RARE[:4]),
                raw_gin,
                (f"{RARE[:4]}:*",),
                args.repeat,
                "",
            ),
            (
                f"search {gen.words[0]} {RARE}",
                ListRequest(query=f"{gen.words[0]} {RARE}"),
                raw_gin,
                (f"{gen.words[0]} & {RARE}",),
                args.repeat,
                "",
            ),
            (
                f"search mid-frequency word {common!r}",
                ListRequest(query=common),
                raw_gin,
                (common,),
                min(args.repeat, 3),
                "",
            ),
        ]
        # diagnostic: the backend's own queries on a connection without JIT compilation,
        # which PostgreSQL starts for plans it estimates costly (tens of ms per query)
        nojit = await asyncpg.connect(url, server_settings={"jit": "off"})
        try:
            for label, req, sql, params, repeat, goal in cases:
                res = await backend.list(req)  # warm the caches and the prepared statements
                await c.fetch(sql, *params)
                await listing.query(nojit, req)
                mine, raw, quick = [], [], []
                for _ in range(repeat):
                    mine.append(await timed(lambda req=req: backend.list(req)))
                    raw.append(await timed(lambda sql=sql, p=params: c.fetch(sql, *p)))
                    quick.append(await timed(lambda req=req: listing.query(nojit, req)))
                report(
                    f"4. list {label}",
                    f"{ms(med(mine))}" + (f" (goal {goal})" if goal else ""),
                    f"anchor (bare {'GIN count' if sql == raw_gin else 'page'} SQL) "
                    f"{ms(med(raw))}; p90 {ms(pct(mine, 0.9))}; same SQL with jit=off "
                    f"{ms(med(quick))}; {res.total_sessions:,} matching sessions",
                )
                if label.startswith("first page (default"):
                    await week_count(c, repeat)
        finally:
            await nojit.close()
            await backend.close()
    finally:
        await c.close()


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
    p.add_argument(
        "--url",
        default=os.environ.get("SESSIONLOG_TEST_DATABASE_URL") or DEFAULT_URL,
        help="an admin URL of the cluster (it creates and drops bench_* databases); "
        "default $SESSIONLOG_TEST_DATABASE_URL or " + DEFAULT_URL,
    )
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
