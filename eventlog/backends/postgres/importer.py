"""Writing whole sessions at once (an ``events`` import) in the caller's transaction."""

from __future__ import annotations

from typing import Any

from ...errors import SessionExists
from ...events import Event, MessageAppended, encoder
from ...fold import fold
from ...model import Session, summarize
from ...state import SessionState
from .writes import docs_of

# A search doc: the tsvector is built by the database, weighted A (title) or D (message).
DOCS_SQL = (
    "INSERT INTO docs (session_id, doc_id, tsv, body, position) VALUES "
    "($1, $2, setweight(to_tsvector('simple', $3), $4::text::\"char\"), $3, $5)"
)


def doc_rows(sid: str, events: list[Event]) -> list[tuple[str, str, str, str, int | None]]:
    """The search docs of a whole session, as ``DOCS_SQL`` rows."""
    state = SessionState(sid)
    state.apply_state(events)
    return [(sid, d.doc_id, d.text, d.weight, d.position) for d in docs_of(state, events)]


def session_row(s: Session) -> tuple[Any, ...]:
    """The ``sessions`` row of a folded session, in ``SESSION_COLUMNS`` order."""
    r = summarize(s)
    return (
        s.session_id,
        s.seq,
        s.started_at,
        s.last_updated,
        r.type,
        [t.casefold() for t in r.tags],
        r.pinned,
        r.archived,
        r.message_count,
        encoder.encode(r).decode(),
    )


SESSION_COLUMNS = [
    "session_id",
    "head",
    "started_at",
    "last_updated",
    "type",
    "tags",
    "pinned",
    "archived",
    "messages",
    "summary",
]

# one session counted once in the list's totals: (session_id, archived, type, messages)
COUNT_SQL = (
    "INSERT INTO counter_deltas (session_id, archived, type, n, messages) "
    "VALUES ($1, $2, $3, 1, $4)"
)


def count_row(s: Session) -> tuple[str, bool, str, int]:
    """A ``COUNT_SQL`` row for a session now in the list."""
    r = summarize(s)
    return s.session_id, r.archived, r.type, r.message_count


async def insert(c: Any, sessions: dict[str, list[Event]]) -> dict[str, Session]:
    """Insert parsed sessions (all, or none if any exists) in the caller's transaction;
    returns them folded (the caller hints other instances once it has committed)."""
    exists = await c.fetch(
        "SELECT session_id FROM sessions WHERE session_id = ANY($1)", list(sessions)
    )
    if exists:
        raise SessionExists(exists[0][0])
    folded = {sid: fold(sid, evs) for sid, evs in sessions.items()}
    await c.executemany(
        "INSERT INTO used_ids VALUES ($1) ON CONFLICT DO NOTHING", [(sid,) for sid in sessions]
    )
    await c.copy_records_to_table(
        "sessions", columns=SESSION_COLUMNS, records=[session_row(s) for s in folded.values()]
    )
    await c.copy_records_to_table(
        "events",
        columns=["session_id", "seq", "event_id", "message_id", "body"],
        records=[
            (
                sid,
                e.seq,
                e.id,
                e.data.message_id if isinstance(e, MessageAppended) else None,
                encoder.encode(e).decode(),
            )
            for sid, evs in sessions.items()
            for e in evs
        ],
    )
    await c.executemany(
        DOCS_SQL, [row for sid, evs in sessions.items() for row in doc_rows(sid, evs)]
    )
    await c.executemany(COUNT_SQL, [count_row(s) for s in folded.values()])
    return folded
