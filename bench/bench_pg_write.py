"""Where one postgres append's time goes: its SQL, piece by piece, beside a raw INSERT.

    .venv/bin/python bench/bench_pg_write.py [--url URL] [--calls 1500] [--rounds 3]

One connection, one call at a time (issue 10's figure 1 is one client). For each step
of the write, p50 round trip, PostgreSQL's CPU per call (every ``postgres`` process of
this machine: the backend and the WAL writer) and WAL bytes per call, in alternating
rounds:

- raw: ``INSERT`` of one journal-sized line into a plain table (figure 1's anchor);
- the events row alone (the events table: three unique indexes);
- the events row and the head update, one plain statement;
- the same in plpgsql with typed arrays and ``SELECT … FOR UPDATE`` (schema version 1's
  shape, one session per call);
- ``sessionlog_write_batch`` (the real function) without and with the search doc and
  the counter delta an appended message brings;
- the whole write as one plain SQL statement over typed arrays (no plpgsql, no jsonb;
  generic plan), the alternative to the function;
- ``PostgresBackend.append`` in this process (no HTTP): p50 and this process's CPU per
  append, the server's share of the work without aiohttp.

A throwaway database ``bench_write_<pid>`` is created, migrated and dropped. The
cluster must run with fsync and synchronous_commit on (``.ci/start-postgres``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import own_cpu_seconds, postgres_cpu_seconds
from postgres_append import RAW_BODY, RAW_INSERT, RAW_TABLE
from postgres_common import CONTENT, create_db, drop_db, url_argument

from eventlog.backends.postgres.backend import PostgresBackend
from eventlog.backends.postgres.group import Count, Doc, Row, SessionWrite
from eventlog.backends.postgres.schema import migrate
from eventlog.requests import AppendRequest, StartRequest

SUMMARY = "s" * 450  # about a list row's JSON
NOW = "2026-12-02T05:04:00.043Z"

HEAD_CTE = (
    "WITH u AS (UPDATE sessions SET head = $2 WHERE session_id = $1) "
    "INSERT INTO events VALUES ($1, $2, $3, $4, $5)"
)
TYPED = """
CREATE FUNCTION bench_typed(sid text, base bigint, ids text[], mids text[], bodies text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE h bigint; n int := array_length(bodies, 1);
BEGIN
  SELECT head INTO h FROM sessions WHERE session_id = sid FOR UPDATE;
  IF h <> base THEN RETURN h; END IF;
  INSERT INTO events (session_id, seq, event_id, message_id, body)
     SELECT sid, base + i, ids[i], mids[i], bodies[i] FROM generate_series(1, n) AS i;
  UPDATE sessions SET head = base + n WHERE session_id = sid;
  RETURN h;
END $$"""
PLAIN = """
WITH w AS (
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                       $6::text[], $7::boolean[], $8::boolean[], $9::integer[], $10::text[])
    AS w(sid, base, head, last_updated, type, tags, pinned, archived, messages, summary)
),
lk AS (
  SELECT s.session_id, s.head FROM sessions s WHERE s.session_id = ANY($1::text[])
  ORDER BY s.session_id FOR UPDATE
),
ok AS MATERIALIZED (SELECT w.* FROM w JOIN lk ON lk.session_id = w.sid AND lk.head = w.base),
up AS (
  UPDATE sessions s SET head = ok.head, last_updated = ok.last_updated, type = ok.type,
    tags = ok.tags::text[], pinned = ok.pinned, archived = ok.archived,
    messages = ok.messages, summary = ok.summary
  FROM ok WHERE s.session_id = ok.sid
),
ev AS (
  INSERT INTO events (session_id, seq, event_id, message_id, body)
  SELECT e.* FROM unnest($11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[])
    AS e(sid, seq, id, mid, body)
  WHERE e.sid IN (SELECT sid FROM ok)
),
dc AS (
  INSERT INTO docs (session_id, doc_id, tsv, body, position)
  SELECT d.sid, d.id, setweight(to_tsvector('simple', d.body), d.weight::"char"), d.body, d.pos
  FROM unnest($16::text[], $17::text[], $18::text[], $19::text[], $20::integer[])
    AS d(sid, id, body, weight, pos)
  WHERE d.sid IN (SELECT sid FROM ok)
  ON CONFLICT (session_id, doc_id) DO UPDATE
    SET tsv = EXCLUDED.tsv, body = EXCLUDED.body, position = EXCLUDED.position
),
ct AS (
  INSERT INTO counter_deltas (session_id, archived, type, n, messages)
  SELECT c.* FROM unnest($21::text[], $22::boolean[], $23::text[], $24::integer[],
                         $25::integer[]) AS c(sid, archived, type, n, messages)
  WHERE c.sid IN (SELECT sid FROM ok)
)
SELECT array_agg(coalesce(lk.head, -1) ORDER BY x.i)
FROM unnest($1::text[]) WITH ORDINALITY AS x(sid, i) LEFT JOIN lk ON lk.session_id = x.sid
"""

Step = Callable[[int], Awaitable[None]]
_encode = msgspec.json.Encoder().encode  # as group.py sends a batch


def ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(16)


class Steps:
    """Each step writes to a session of its own, tracking its head."""

    def __init__(self, c: asyncpg.Connection, plain: asyncpg.Connection) -> None:
        self.c, self.plain = c, plain
        self.head: dict[str, int] = {}

    async def start(self, sid: str) -> None:
        await self.c.execute(
            "SELECT sessionlog_start($1, $2, $3, $4, 'chat', $5, 'title')",
            sid,
            secrets.token_hex(16),
            RAW_BODY,
            NOW,
            SUMMARY,
        )
        self.head[sid] = 1

    async def raw(self, i: int) -> None:
        await self.c.execute(RAW_INSERT, "raw", RAW_BODY)

    async def events_only(self, i: int) -> None:
        e, m = ids()
        self.head["ev"] += 1
        await self.c.execute(
            "INSERT INTO events VALUES ($1, $2, $3, $4, $5)", "ev", self.head["ev"], e, m, RAW_BODY
        )

    async def events_head(self, i: int) -> None:
        e, m = ids()
        self.head["cte"] += 1
        await self.c.execute(HEAD_CTE, "cte", self.head["cte"], e, m, RAW_BODY)

    async def typed(self, i: int) -> None:
        e, m = ids()
        base = self.head["typed"]
        found = await self.c.fetchval(
            "SELECT bench_typed($1, $2, $3, $4, $5)", "typed", base, [e], [m], [RAW_BODY]
        )
        assert found == base, (found, base)
        self.head["typed"] += 1

    def batch(self, sid: str, search: bool) -> Step:
        async def step(i: int) -> None:
            e, m = ids()
            base = self.head[sid]
            w = SessionWrite(
                sid=sid,
                base=base,
                events=[Row(e, m, RAW_BODY)],
                last_updated=NOW,
                type="chat",
                tags=[],
                pinned=False,
                archived=False,
                messages=i + 1,
                summary=SUMMARY,
                docs=[Doc(m, CONTENT, "D", i)] if search else [],
                counts=[Count(False, "chat", 0, 1)] if search else [],
            )
            found = await self.c.fetchval(
                "SELECT sessionlog_write_batch($1::jsonb)", _encode([w]).decode()
            )
            assert found[0] == base, (found, base)
            self.head[sid] += 1

        return step

    async def one_statement(self, i: int) -> None:
        e, m = ids()
        sid, base = "plain", self.head["plain"]
        found = await self.plain.fetchval(
            PLAIN,
            *([sid], [base], [base + 1], [NOW], ["chat"], ["{}"], [False], [False], [i + 1]),
            [SUMMARY],
            *([sid], [base + 1], [e], [m], [RAW_BODY]),
            *([sid], [m], [CONTENT], ["D"], [i]),
            *([sid], [False], ["chat"], [0], [1]),
        )
        assert found[0] == base, (found, base)
        self.head["plain"] += 1


async def measure(c: asyncpg.Connection, step: Step, calls: int) -> tuple[float, float, float]:
    """p50 seconds, PostgreSQL CPU seconds and WAL bytes per call."""
    lsn0, pg0 = await c.fetchval("SELECT pg_current_wal_lsn()"), postgres_cpu_seconds()
    lat = []
    for i in range(calls):
        t0 = time.perf_counter()
        await step(i)
        lat.append(time.perf_counter() - t0)
    pg = (postgres_cpu_seconds() - pg0) / calls
    wal = await c.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", lsn0)
    return statistics.median(lat), pg, float(wal) / calls


async def main(args: argparse.Namespace) -> int:
    name = f"bench_write_{os.getpid()}"
    url = await create_db(args.url, name)
    try:
        c = await asyncpg.connect(url)
        # the one statement is planned once, as a prepared statement's generic plan
        plain = await asyncpg.connect(
            url, server_settings={"plan_cache_mode": "force_generic_plan"}
        )
        backend = PostgresBackend(url)
        try:
            await migrate(c)
            await c.execute(RAW_TABLE)
            await c.execute(TYPED)
            s = Steps(c, plain)
            for sid in ("ev", "cte", "typed", "bare", "full", "plain"):
                await s.start(sid)
            await backend.open()
            bsid = (await backend.start(StartRequest(title="bench"))).session_id
            req = AppendRequest(session_id=bsid, role="user", content=CONTENT)

            async def append(i: int) -> None:
                await backend.append(req)

            steps: list[tuple[str, Step]] = [
                ("raw INSERT, plain table", s.raw),
                ("events row alone", s.events_only),
                ("events row + head update, one statement", s.events_head),
                ("same in plpgsql, typed arrays, FOR UPDATE", s.typed),
                ("sessionlog_write_batch, no search doc/counter", s.batch("bare", False)),
                ("sessionlog_write_batch, as an append writes it", s.batch("full", True)),
                ("the whole write as one plain statement", s.one_statement),
                ("PostgresBackend.append in-process", append),
            ]
            out: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n, _ in steps}
            for _ in range(args.rounds):
                for label, step in steps:
                    me0 = own_cpu_seconds()
                    p50, pg, wal = await measure(c, step, args.calls)
                    out[label].append((p50, pg, wal, (own_cpu_seconds() - me0) / args.calls))
        finally:
            await backend.close()
            await plain.close()
            await c.close()
    finally:
        await drop_db(args.url, name)
    print(f"\n{args.calls:,} calls per round, {args.rounds} rounds; medians of the rounds\n")
    print("| step | p50 round trip | PostgreSQL CPU/call | WAL/call | this process CPU/call |")
    print("|---|---|---|---|---|")
    for label, rs in out.items():
        p50, pg, wal, me = (statistics.median(r[k] for r in rs) for k in range(4))
        rounds = "/".join(f"{r[0] * 1e6:.0f}" for r in rs)
        print(
            f"| {label} | {p50 * 1e6:.0f} µs ({rounds}) | {pg * 1e6:.0f} µs | {wal:,.0f} B "
            f"| {me * 1e6:.0f} µs |"
        )
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    url_argument(p, "one bench_write_* database")
    p.add_argument("--calls", type=int, default=1500, help="calls per step and round")
    p.add_argument("--rounds", type=int, default=3)
    sys.exit(uvloop.run(main(p.parse_args())))
