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
from .importer import COUNT_SQL, DOCS_SQL, SESSION_COLUMNS, count_row, doc_rows, session_row

_session = msgspec.json.Decoder(Session)


# the whole list row from the importer's own row builder (session_id is $1)
_UPDATE_ROW = (
    "UPDATE sessions SET "
    + ", ".join(f"{col} = ${i}" for i, col in enumerate(SESSION_COLUMNS, 1) if i > 1)
    + " WHERE session_id = $1"
)


class Problem(msgspec.Struct, frozen=True):
    session_id: str
    what: str


async def _sessions(b: PostgresBackend) -> AsyncIterator[tuple[str, int, list[Any]]]:
    """(session id, head, event rows) for every session, one session's events at a time."""
    async with b.db.conn("listing sessions") as c:
        heads = await c.fetch("SELECT session_id, head FROM sessions ORDER BY session_id")
    for sid, head in heads:
        async with b.db.conn("reading events") as c:
            rows = await c.fetch(
                "SELECT seq, event_id, message_id, body FROM events WHERE session_id = $1 "
                "ORDER BY seq",
                sid,
            )
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
    """Rebuild every list row, search doc and the totals from the events."""
    await b.open()
    n = 0
    async with b.db.conn("resetting totals") as c, c.transaction():
        await c.execute("LOCK TABLE totals")
        await c.execute("DELETE FROM counter_deltas")
        await c.execute("DELETE FROM totals")
    async for sid, _head, rows in _sessions(b):
        events = [decoder.decode(r[3]) for r in rows]
        session = fold(sid, events)
        async with b.db.conn("reindexing a session") as c, c.transaction():
            await c.execute(_UPDATE_ROW, *session_row(session))
            await c.execute("DELETE FROM docs WHERE session_id = $1", sid)
            await c.executemany(DOCS_SQL, doc_rows(sid, events))
            await c.execute(COUNT_SQL, *count_row(session))
        n += 1
        progress(n)
    async with b.db.conn("rolling up totals") as c:
        await c.execute("SELECT sessionlog_rollup()")
    return n
