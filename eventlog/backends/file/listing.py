"""Reading the list index: one page of sessions, its aggregates, full-text search.

The queries behind ``Index.query`` (``index.py`` writes the tables they read; its
docstring describes them). Run inside one read transaction, so the page and the
aggregates agree.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ...model import Summary
from ...requests import ListRequest
from ...results import ListResult, SearchHit, iso_ms, until_bound

SLOT_BITS = 32  # a docs rowid is sid << SLOT_BITS | slot (see index.py)
_TITLE_WEIGHT = 10.0  # bm25 weight of the title column against 1.0 for message bodies
RANK_LIMIT = 10_000  # matching messages up to which results are ranked by bm25
_FEW = 5_000  # a tag on at most this many sessions drives the page through `tags`
_AGG = "count(*), sum(s.started_at >= ?), sum(s.started_at >= ?), sum(s.message_count)"
_AGG_OVER = ", ".join(f"{a} OVER ()" for a in _AGG.split(", "))
_WORD = re.compile(r"[^\W_]+")  # a run of letters/digits, roughly a unicode61 token
_ORDER = "s.pinned DESC, s.last_updated DESC, s.session_id"
_decode_summary = msgspec.msgpack.Decoder(Summary).decode


def folded_tags(tags: Sequence[str]) -> set[str]:
    """Tags as the index keeps and compares them: without case."""
    return {t.casefold() for t in tags}


def fts_query(text: str | None) -> str | None:
    """User text as a safe FTS5 expression: every term quoted and required (all in one
    message, or all in the title), the last one a prefix if it has 3+ characters
    (search-as-you-type); None when nothing searchable is left."""
    terms = fts_terms(text)
    return None if terms is None else " AND ".join(terms)


def fts_terms(text: str | None) -> list[str] | None:
    """The terms of ``fts_query``, each a safe FTS5 phrase (see there)."""
    if not text:
        return None
    text = text.encode("utf-8", "replace").decode()  # a lone surrogate cannot be bound
    # Whitespace splits terms; inside a quoted term the tokenizer splits the rest, so
    # "foo-bar" becomes a phrase. Chunks with no letter or digit would be empty phrases.
    terms = [t for t in text.replace("\x00", " ").split() if any(c.isalnum() for c in t)]
    if not terms:
        return None
    quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
    # a prefix expands to every matching term and FTS5 merges them all up front: "b*"
    # costs seconds in a big index, so short prefixes are matched as whole words
    if len(_WORD.findall(terms[-1])[-1]) >= 3:
        quoted[-1] += "*"
    return quoted


def _nums(row: Sequence[Any]) -> tuple[int, int, int, int]:
    return row[0], row[1] or 0, row[2] or 0, row[3] or 0


def query(db: sqlite3.Connection, req: ListRequest, now: datetime | None = None) -> ListResult:
    """One page of the list for a ``ListRequest``, with aggregates over all matches.

    Without a query: pinned first, newest ``last_updated`` first, then session_id.
    With one: best bm25 relevance (title hits weigh more), ties newest first; when
    more than ``RANK_LIMIT`` messages match, bm25 would cost seconds and mean
    little, so sessions whose title matches come first, then newest first."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    dates = (now.strftime("%Y-%m-%d"), iso_ms(now - timedelta(days=7)))
    # archived = None is spelled IN (0, 1) so indexes led by `archived` still apply
    conds = [
        "s.archived IN (0, 1)" if req.archived is None else f"s.archived IN ({int(req.archived)})"
    ]
    args: list[Any] = []
    until_op, until = until_bound(req.until)
    for sql, value in (
        ("s.type = ?", req.type),
        ("s.last_updated >= ?", req.since),
        (f"s.started_at {until_op} ?", until),
    ):
        if value is not None:
            conds.append(sql)
            args.append(value)
    terms = fts_terms(req.query)
    hits: list[SearchHit] = []
    if terms is None:
        rows, aggs = _list(db, req, conds, args, dates)
    else:
        rows, aggs = _search(db, terms, req, conds, args, dates)
    sessions = [_decode_summary(r[0]) for r in rows]
    hits = []
    if terms is not None and rows:
        hits = _snippets(
            db,
            " AND ".join(terms),
            [(r[1], s.session_id) for r, s in zip(rows, sessions, strict=True)],
        )
    return ListResult.page(sessions, aggs, req.limit, req.offset, hits)


SNIPPET_TOKENS = 16  # words of context in a search snippet


def _snippets(db: sqlite3.Connection, match: str, page: list[tuple[int, str]]) -> list[SearchHit]:
    """The best-matching doc of each listed session and a snippet of it: one FTS query
    per session, confined to its rowid range (a page holds at most ``limit`` of them)."""
    out = []
    for sid, session_id in page:
        base = sid << SLOT_BITS
        try:
            row = db.execute(
                "SELECT rowid, snippet(docs, -1, char(2), char(3), '…', ?) FROM docs "
                "WHERE docs MATCH ? AND rowid BETWEEN ? AND ? ORDER BY rank LIMIT 1",
                (SNIPPET_TOKENS, match, base, base + (1 << SLOT_BITS) - 1),
            ).fetchone()
        except sqlite3.OperationalError:
            continue  # a snippet is a nicety: never fail the list for it
        if row is not None:
            slot = row[0] & ((1 << SLOT_BITS) - 1)
            out.append(SearchHit(session_id, None if slot == 0 else slot - 1, row[1]))
    return out


def _list(
    db: sqlite3.Connection,
    req: ListRequest,
    conds: list[str],
    args: list[Any],
    dates: tuple[str, str],
) -> tuple[list[Any], tuple[int, int, int, int]]:
    where = " AND ".join(conds)
    # with a tag, CROSS JOIN makes the tag's (usually few) sessions drive the query
    src, tag_where, tag_args = (
        ("tags t CROSS JOIN sessions s ON s.sid = t.sid", "t.tag = ? AND ", [req.tag.casefold()])
        if req.tag is not None
        else ("sessions s", "", [])
    )
    if req.tag is None and req.since is None and req.until is None:
        # the default page: running totals (conds only name archived and type, which
        # `totals` has too), and only the last week of the started_at index
        total, messages = db.execute(
            f"SELECT sum(n), sum(messages) FROM totals s WHERE {where}", args
        ).fetchone()
        n_today, n_week = db.execute(
            f"SELECT sum(started_at >= ?), count(*) FROM sessions s "
            f"WHERE {where} AND started_at >= ?",
            (dates[0], *args, dates[1]),
        ).fetchone()
        aggs = (total or 0, n_today or 0, n_week, messages or 0)
    else:
        aggs = _nums(
            db.execute(
                f"SELECT {_AGG} FROM {src} WHERE {tag_where}{where}", (*dates, *tag_args, *args)
            ).fetchone()
        )
    # The page's keys come from an index-only (where possible) subquery, and only
    # the page's summary blobs are read. Which index leads is chosen by where the
    # matches sit: a selective tag drives from its sessions; `until` matches are
    # the oldest, so walking the list order would pass nearly every row first.
    if req.tag is not None and aggs[0] <= _FEW:
        keys, args = f"{src} WHERE {tag_where}{where}", [*tag_args, *args]
    else:
        if req.tag is not None:
            conds = [*conds, "s.sid IN (SELECT sid FROM tags WHERE tag = ?)"]
            args = [*args, req.tag.casefold()]
        hint = "sessions_started" if req.until is not None else "sessions_order"
        if req.archived is None and req.until is None:
            hint, conds = "sessions_order_all", conds[1:]  # it has no `archived`
        keys = f"sessions s INDEXED BY {hint} WHERE {' AND '.join(conds) or '1'}"
    rows = db.execute(
        f"SELECT summary FROM sessions s WHERE sid IN (SELECT s.sid FROM {keys} "
        f"ORDER BY {_ORDER} LIMIT ? OFFSET ?) ORDER BY {_ORDER}",
        (*args, req.limit, req.offset),
    ).fetchall()
    return rows, aggs


def _search(
    db: sqlite3.Connection,
    terms: list[str],
    req: ListRequest,
    conds: list[str],
    args: list[Any],
    dates: tuple[str, str],
) -> tuple[list[Any], tuple[int, int, int, int]]:
    if req.tag is not None:
        conds = [*conds, "s.sid IN (SELECT sid FROM tags WHERE tag = ?)"]
        args = [*args, req.tag.casefold()]
    where = " AND ".join(conds)
    match = " AND ".join(terms)
    try:
        hits, hargs = _hits(db, terms, match)
        # The page's sids and the window aggregates first, then only the page's summary
        # blobs: reading every match's blob (for the window) cost more than the search.
        keys = db.execute(
            f"{hits} SELECT s.sid, {_AGG_OVER} FROM hits h JOIN sessions s "
            f"ON s.sid = h.sid WHERE {where} ORDER BY h.score, s.last_updated DESC, "
            "s.session_id LIMIT ? OFFSET ?",
            (*hargs, *dates, *args, req.limit, req.offset),
        ).fetchall()
        if keys:
            sids = [k[0] for k in keys]
            return _summaries(db, sids, with_sid=True), _nums(keys[0][1:])
        if req.offset == 0:
            return [], (0, 0, 0, 0)
        agg = db.execute(  # a page past the end still reports the totals
            f"{hits} SELECT {_AGG} FROM hits h JOIN sessions s ON s.sid = h.sid WHERE {where}",
            (*hargs, *dates, *args),
        ).fetchone()
    except sqlite3.OperationalError as e:
        if not str(e).startswith("fts5:"):
            raise
        return [], (0, 0, 0, 0)  # fts_query should prevent this; never a 500
    return [], _nums(agg)


def _hits(db: sqlite3.Connection, terms: list[str], match: str) -> tuple[str, tuple[str, ...]]:
    """A ``hits (sid, score)`` CTE for the sessions ``match`` finds, lower score first.

    Scored by bm25 (best message per session; title hits weigh more) when at most
    ``RANK_LIMIT`` messages match. bm25 counts, for each term, every message holding it:
    a term in more than ``RANK_LIMIT`` messages (a common word: its weight is small)
    filters but does not score, or a query like "the zephyr" costs tens of ms per
    100k messages. With more matches, or only common terms, sessions whose title
    matches come first, then newest first (ties are broken by the caller's ORDER BY).
    """
    distinct = list(dict.fromkeys(terms))  # one probe per term, however often typed
    if _more_than(db, match, RANK_LIMIT):
        scoring: list[str] = []
    elif len(distinct) == 1:
        scoring = distinct
    else:
        scoring = [t for t in distinct if not _more_than(db, t, RANK_LIMIT)]
    # bm25 must run inside the FTS scan, hence the MATERIALIZED step before grouping
    ranked = (
        "WITH m AS MATERIALIZED (SELECT rowid AS doc, "
        f"bm25(docs, {_TITLE_WEIGHT}, 1.0) AS r FROM docs WHERE docs MATCH ?), "
        f"hits AS (SELECT doc >> {SLOT_BITS} AS sid, min(r) AS score FROM m "
    )
    if scoring == distinct:
        return f"{ranked}GROUP BY 1) ", (match,)
    if scoring:
        return (
            f"{ranked}WHERE doc IN (SELECT rowid FROM docs WHERE docs MATCH ?) GROUP BY 1) ",
            (" AND ".join(scoring), match),
        )
    return (
        f"WITH hits AS (SELECT sid, -(sid IN (SELECT rowid >> {SLOT_BITS} "
        "FROM docs WHERE docs MATCH ?)) AS score FROM (SELECT DISTINCT "
        f"rowid >> {SLOT_BITS} AS sid FROM docs WHERE docs MATCH ?)) ",
        (f"{{title}} : ({match})", match),
    )


def _more_than(db: sqlite3.Connection, match: str, n: int) -> bool:
    """Do more than ``n`` messages (or titles) match? Stops counting at n + 1."""
    row = db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM docs WHERE docs MATCH ? LIMIT ?)", (match, n + 1)
    ).fetchone()
    return bool(row[0] > n)


def _summaries(db: sqlite3.Connection, sids: list[int], *, with_sid: bool = False) -> list[Any]:
    """The summary rows of ``sids``, in that order (``(blob, sid)`` with ``with_sid``)."""
    marks = ",".join("?" * len(sids))
    blobs = dict(db.execute(f"SELECT sid, summary FROM sessions WHERE sid IN ({marks})", sids))
    return [(blobs[sid], sid) if with_sid else (blobs[sid],) for sid in sids]
