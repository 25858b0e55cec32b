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


class ListResult(msgspec.Struct):
    """One page of the session list plus aggregates over every matching session."""

    sessions: list[Summary]
    total_sessions: int
    sessions_today: int
    sessions_this_week: int
    total_messages: int
    limit: int
    offset: int
    has_more: bool


class ImportOutcome(msgspec.Struct):
    """What ``Backend.import_sessions`` did with a batch of sessions."""

    imported: list[str] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)  # existed; left as they were
    replaced: list[str] = msgspec.field(default_factory=list)  # existed; now the imported one
