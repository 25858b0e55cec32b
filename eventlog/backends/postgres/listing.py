"""The session list and ranked full-text search in SQL (same contract as the file index).

Without a query: pinned first, newest ``last_updated`` first, then ``session_id``; the
default page's totals come from ``totals`` plus pending ``counter_deltas``, not from a
count over every session. With a query: every term must match in one message or in the
title (``docs``, a tsvector per completed message, GIN-indexed), the last term a prefix
if it has 3+ characters; ranked by the best doc (title weight A against D for messages,
so a title hit counts 10x), ties newest first.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ...model import Summary
from ...requests import ListRequest
from ...results import ListResult, SearchHit, iso_ms, until_bound

_WORD = re.compile(r"[^\W_]+")  # a run of letters/digits, as the 'simple' parser splits
_ORDER = "s.pinned DESC, s.last_updated DESC, s.session_id"
_summary = msgspec.json.Decoder(Summary)


def tsquery(text: str | None) -> str | None:
    """User text as a safe ``to_tsquery('simple', …)`` expression, or None when
    nothing searchable is left: each whitespace-separated term a phrase of its words
    (only letters and digits reach the query, so nothing needs escaping), all required."""
    if not text:
        return None
    terms = [_WORD.findall(t.lower()) for t in text.split()]
    terms = [t for t in terms if t]
    if not terms:
        return None
    parts = [" <-> ".join(f"'{w}'" for w in t) for t in terms]
    if len(terms[-1][-1]) >= 3:  # search as you type; a 1-2 letter prefix matches too much
        parts[-1] += ":*"
    return " & ".join(f"({p})" for p in parts)


class _Where:
    """Numbered SQL parameters and the conditions that use them (asyncpg wants every
    parameter used, so each query takes a ``copy`` and adds only what it needs)."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.conds: list[str] = []

    def copy(self) -> _Where:
        w = _Where()
        w.args, w.conds = list(self.args), list(self.conds)
        return w

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, sql: str, value: Any) -> None:
        self.conds.append(sql.format(self.arg(value)))

    def sql(self) -> str:
        return " AND ".join(self.conds) or "true"


def _agg(w: _Where, dates: tuple[str, str], over: bool = False) -> str:
    today, week = w.arg(dates[0]), w.arg(dates[1])
    parts = [
        "count(*)",
        f"count(*) FILTER (WHERE s.started_at >= {today})",
        f"count(*) FILTER (WHERE s.started_at >= {week})",
        "sum(s.messages)",
    ]
    return ", ".join(f"{p} OVER ()" if over else p for p in parts)


def _nums(row: Any, at: int = 0) -> tuple[int, int, int, int]:
    return int(row[at]), int(row[at + 1]), int(row[at + 2]), int(row[at + 3] or 0)


async def query(c: Any, req: ListRequest, now: datetime | None = None) -> ListResult:
    """One page of the list for ``req``, with aggregates over every match."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    dates = (now.strftime("%Y-%m-%d"), iso_ms(now - timedelta(days=7)))
    w = _Where()
    if req.archived is not None:
        w.add("s.archived = {}", req.archived)
    else:  # spelled out so (archived, started_at) serves date bounds and counts
        w.conds.append("s.archived IN (false, true)")
    if req.type is not None:
        w.add("s.type = {}", req.type)
    if req.tag is not None:
        w.add("s.tags @> ARRAY[{}]::text[]", req.tag.casefold())
    if req.since is not None:
        w.add("s.last_updated >= {}", req.since)
    until_op, until = until_bound(req.until)
    if until is not None:
        w.add(f"s.started_at {until_op} {{}}", until)
    q = tsquery(req.query)
    if q is None:
        rows, aggs = await _list(c, req, w, dates)
    else:
        rows, aggs = await _search(c, req, w, dates, q)
    sessions = [_summary.decode(r) for r in rows]
    hits = await _hits_of(c, q, [s.session_id for s in sessions]) if q and sessions else []
    return ListResult.page(sessions, aggs, req.limit, req.offset, hits)


# ts_headline's marks are the ones the file index uses (the page turns them into <mark>)
_HEADLINE = (
    "StartSel=\x02, StopSel=\x03, MaxWords=16, MinWords=6, ShortWord=2, "
    'MaxFragments=1, FragmentDelimiter=" … "'
)


async def _hits_of(c: Any, q: str, ids: list[str]) -> list[SearchHit]:
    """Why each listed session matched: its best doc and a snippet (one query per page)."""
    rows = await c.fetch(
        "SELECT DISTINCT ON (d.session_id) d.session_id, d.position, "
        "ts_headline('simple', d.body, q.q, $3) FROM docs d, to_tsquery('simple', $1) q "
        "WHERE d.session_id = ANY($2) AND d.tsv @@ q.q "
        "ORDER BY d.session_id, ts_rank(d.tsv, q.q) DESC, d.position NULLS FIRST",
        q,
        ids,
        _HEADLINE,
    )
    found = {r[0]: SearchHit(r[0], r[1], r[2]) for r in rows}
    return [found[sid] for sid in ids if sid in found]


async def _list(
    c: Any, req: ListRequest, w: _Where, dates: tuple[str, str]
) -> tuple[list[str], tuple[int, int, int, int]]:
    if req.tag is None and req.since is None and req.until is None:
        # archived and type are all the conditions: the running totals answer them
        total, messages = await c.fetchrow(
            "SELECT coalesce(sum(n), 0), coalesce(sum(messages), 0) FROM (SELECT archived, "
            "type, n, messages FROM totals UNION ALL SELECT archived, type, n, messages "
            f"FROM counter_deltas) t WHERE {w.sql().replace('s.', 't.')}",
            *w.args,
        )
        a = w.copy()
        today, week = a.arg(dates[0]), a.arg(dates[1])
        n_today, n_week = await c.fetchrow(
            f"SELECT count(*) FILTER (WHERE s.started_at >= {today}), count(*) "
            f"FROM sessions s WHERE {a.sql()} AND s.started_at >= {week}",
            *a.args,
        )
        aggs = (int(total), int(n_today), int(n_week), int(messages))
    else:
        a = w.copy()
        aggs = _nums(
            await c.fetchrow(f"SELECT {_agg(a, dates)} FROM sessions s WHERE {a.sql()}", *a.args)
        )
    p = w.copy()
    page = await c.fetch(
        f"SELECT s.summary FROM sessions s WHERE {p.sql()} ORDER BY {_ORDER} "
        f"LIMIT {p.arg(req.limit)} OFFSET {p.arg(req.offset)}",
        *p.args,
    )
    return [r[0] for r in page], aggs


def _hits(w: _Where, q: str) -> str:
    return (
        f"WITH q AS (SELECT to_tsquery('simple', {w.arg(q)}) AS q), "
        "hits AS (SELECT d.session_id, max(ts_rank(d.tsv, q.q)) AS score "
        "FROM docs d, q WHERE d.tsv @@ q.q GROUP BY d.session_id) "
    )


async def _search(
    c: Any, req: ListRequest, w: _Where, dates: tuple[str, str], q: str
) -> tuple[list[str], tuple[int, int, int, int]]:
    p = w.copy()
    hits = _hits(p, q)
    page = await c.fetch(
        f"{hits}SELECT s.summary, {_agg(p, dates, over=True)} FROM hits h "
        f"JOIN sessions s USING (session_id) WHERE {w.sql()} "
        f"ORDER BY h.score DESC, s.last_updated DESC, s.session_id "
        f"LIMIT {p.arg(req.limit)} OFFSET {p.arg(req.offset)}",
        *p.args,
    )
    if page:
        return [r[0] for r in page], _nums(page[0], 1)
    if req.offset == 0:
        return [], (0, 0, 0, 0)
    a = w.copy()
    hits = _hits(a, q)
    row = await c.fetchrow(  # a page past the end still reports the totals
        f"{hits}SELECT {_agg(a, dates)} FROM hits h JOIN sessions s USING (session_id) "
        f"WHERE {w.sql()}",
        *a.args,
    )
    return [], _nums(row)
