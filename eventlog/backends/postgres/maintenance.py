"""``verify`` and ``reindex`` for a database: the events table checked and the derived
tables (list rows, search docs, snapshots' marks, totals) rebuilt from it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from ...events import Event, SessionStarted, decoder
from ...fold import fold
from ...model import Session
from .backend import PostgresBackend
from .importer import DOCS_SQL, SESSION_COLUMNS, doc_rows, session_row

_session = msgspec.json.Decoder(Session)


# the whole list row from the importer's own row builder (session_id is $1)
_UPDATE_ROW = (
    "UPDATE sessions SET "
    + ", ".join(f"{col} = ${i}" for i, col in enumerate(SESSION_COLUMNS, 1) if i > 1)
    + " WHERE session_id = $1"
)


_LOCK_HEAD = "SELECT head FROM sessions WHERE session_id = $1 FOR UPDATE"
_EVENTS = "SELECT seq, event_id, message_id, body FROM events WHERE session_id = $1 ORDER BY seq"


class Problem(msgspec.Struct, frozen=True):
    session_id: str
    what: str


async def _sessions(b: PostgresBackend) -> AsyncIterator[tuple[str, int, list[Any]]]:
    """(session id, head, event rows) for every session, one session's events at a time."""
    async with b.db.conn("listing sessions") as c:
        heads = await c.fetch("SELECT session_id, head FROM sessions ORDER BY session_id")
    for sid, head in heads:
        async with b.db.conn("reading events") as c:
            rows = await c.fetch(_EVENTS, sid)
        yield sid, head, rows


def _check(sid: str, head: int, rows: list[Any]) -> tuple[list[Event], list[str]]:
    events: list[Event] = []
    problems = []
    for i, (seq, event_id, _mid, body) in enumerate(rows, 1):
        if seq != i:
            problems.append(f"seq {seq} where {i} was expected (a gap)")
            break
        try:
            ev = decoder.decode(body)
        except msgspec.DecodeError as e:
            problems.append(f"seq {seq}: the stored event cannot be decoded ({e})")
            break
        if ev.seq != seq or ev.id != event_id:
            problems.append(f"seq {seq}: the row's seq/id disagree with its event body")
        if (i == 1) != isinstance(ev, SessionStarted):
            problems.append(f"seq {seq}: session.started must be the first event, and only it")
        events.append(ev)
    if len(rows) != head:
        problems.append(f"head says seq {head} but {len(rows)} event(s) are stored")
    return events, problems


async def verify(b: PostgresBackend, progress: Callable[[int], None]) -> tuple[int, list[Problem]]:
    """Check every session's events (gap-free from 1, decodable, head right) and its
    snapshot (equal to folding the events it covers). Returns (sessions, problems)."""
    await b.open()
    problems: list[Problem] = []
    n = 0
    async for sid, head, rows in _sessions(b):
        events, found = _check(sid, head, rows)
        async with b.db.conn("reading a snapshot") as c:
            snap = await c.fetchrow("SELECT seq, body FROM snapshots WHERE session_id = $1", sid)
        if (
            snap is not None
            and not found
            and _session.decode(snap[1]) != fold(sid, events[: snap[0]])
        ):
            found.append(f"the snapshot at seq {snap[0]} differs from folding the events")
        problems += [Problem(sid, what) for what in found]
        n += 1
        progress(n)
    return n, problems


async def reindex(b: PostgresBackend, progress: Callable[[int], None]) -> int:
    """Rebuild every list row and search doc from the events, then the totals from the
    rows. Safe while other instances write: each session is rebuilt under its head's
    row lock (the lock writers take), so no append lands between reading its events and
    writing its row; the totals are recounted in one transaction that holds writers off
    for its length (a count over ``sessions``), so no counter delta is lost or counted
    twice."""
    await b.open()
    n = 0
    async with b.db.conn("listing sessions") as c:
        sids = [r[0] for r in await c.fetch("SELECT session_id FROM sessions ORDER BY 1")]
    for sid in sids:
        async with b.db.conn("reindexing a session") as c, c.transaction():
            if await c.fetchval(_LOCK_HEAD, sid) is None:
                continue  # deleted meanwhile
            rows = await c.fetch(_EVENTS, sid)
            events = [decoder.decode(r[3]) for r in rows]
            session = fold(sid, events)
            await c.execute(_UPDATE_ROW, *session_row(session))
            await c.execute("DELETE FROM docs WHERE session_id = $1", sid)
            await c.executemany(DOCS_SQL, doc_rows(sid, events))
        n += 1
        progress(n)
    async with b.db.conn("recounting totals") as c, c.transaction():
        # no rollup meanwhile (it only ever tries this lock, so taking it first cannot
        # deadlock); SHARE: writers, who update a row and add its delta in one
        # transaction, wait, and every delta committed before is in the rows counted
        await c.execute("SELECT pg_advisory_xact_lock(hashtext('sessionlog_rollup'))")
        await c.execute("LOCK TABLE sessions IN SHARE MODE")
        await c.execute("DELETE FROM counter_deltas")
        await c.execute("DELETE FROM totals")
        await c.execute(
            "INSERT INTO totals (archived, type, n, messages) "
            "SELECT archived, type, count(*), coalesce(sum(messages), 0) FROM sessions "
            "GROUP BY 1, 2"
        )
    return n
