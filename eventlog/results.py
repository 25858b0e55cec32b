"""What reads answer, the same on every backend: a loaded session, a list page."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from .errors import InvalidRequest
from .model import Session, Summary


class LoadResult:
    """A loaded session; with a message limit, ``session.messages`` is a slice that
    starts at index ``message_start`` of the full list."""

    __slots__ = ("message_start", "session")

    def __init__(self, session: Session, message_start: int) -> None:
        self.session = session
        self.message_start = message_start

    @classmethod
    def window(cls, session: Session, limit: int | None, before: int | None) -> LoadResult:
        """``session`` cut to its last ``limit`` messages before index ``before``."""
        n = len(session.messages)
        end = n if before is None else min(before, n)
        start = 0 if limit is None else max(0, end - limit)
        if start != 0 or end != n:
            session.messages = session.messages[start:end]
        return cls(session, start)


class SearchHit(msgspec.Struct):
    """Why a session matched a ``query``: its best-matching message (or its title) and a
    snippet of it with each matched term between ``\u0002`` and ``\u0003`` (plain text
    otherwise; a page turns the marks into highlights)."""

    session_id: str
    message_index: int | None  # index into the session's messages; None: the title
    snippet: str


class ListResult(msgspec.Struct):
    """One page of the session list plus aggregates over every matching session; with a
    query, ``hits`` says why each listed session matched (a backend may leave it empty)."""

    sessions: list[Summary]
    total_sessions: int
    sessions_today: int
    sessions_this_week: int
    total_messages: int
    limit: int
    offset: int
    has_more: bool
    hits: list[SearchHit] = msgspec.field(default_factory=list)

    @classmethod
    def page(
        cls,
        sessions: list[Summary],
        aggs: tuple[int, int, int, int],
        limit: int,
        offset: int,
        hits: list[SearchHit] | None = None,
    ) -> ListResult:
        """A page, its aggregates (total, today, this week, messages) and search hits."""
        total, n_today, n_week, messages = aggs
        return cls(
            sessions=sessions,
            total_sessions=total,
            sessions_today=n_today,
            sessions_this_week=n_week,
            total_messages=messages,
            limit=limit,
            offset=offset,
            has_more=offset + len(sessions) < total,
            hits=hits or [],
        )


def iso_ms(dt: datetime) -> str:
    """``dt`` as the store writes times: ISO 8601, milliseconds, ``Z``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def until_bound(until: str | None) -> tuple[str, str | None]:
    """(operator, value) for ``started_at`` so a bare date includes that whole day."""
    if until is not None and len(until) == 10:
        try:
            day = datetime.strptime(until, "%Y-%m-%d") + timedelta(days=1)
        except OverflowError:  # 9999-12-31: no next day, and nothing starts after it
            return "<=", until + "T99"
        except ValueError:  # the pattern lets 2026-13-45 through
            raise InvalidRequest(
                f"invalid until: {until!r} is not a date (expected YYYY-MM-DD)", "until"
            ) from None
        return "<", day.strftime("%Y-%m-%d")
    return "<=", until


class ImportOutcome(msgspec.Struct):
    """What ``Backend.import_sessions`` did with a batch of sessions."""

    imported: list[str] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)  # existed; left as they were
    replaced: list[str] = msgspec.field(default_factory=list)  # existed; now the imported one
