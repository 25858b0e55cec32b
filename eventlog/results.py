"""What reads answer, the same on every backend: a loaded session, a list page."""

from __future__ import annotations

import msgspec

from .model import Session, Summary


class LoadResult:
    """A loaded session; with a message limit, ``session.messages`` is a slice that
    starts at index ``message_start`` of the full list."""

    __slots__ = ("message_start", "session")

    def __init__(self, session: Session, message_start: int) -> None:
        self.session = session
        self.message_start = message_start


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
