"""bench_postgres.py, figure 4: list and search over a million sessions bulk-loaded
with COPY."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_list import RARE, TAGS, vocabulary
from common import ms, pct
from postgres_common import med, report

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
