"""The canonical session JSON (the seed's structure plus seq, title, tags, flags)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from .events import OptionalStr, ToolCalls


class Message(msgspec.Struct, frozen=True, gc=False):
    role: str
    content: str
    timestamp: str
    metadata: dict[str, Any]
    message_id: str
    status: str = "complete"
    # OpenAI-chat tool fields (SPEC §10), absent from the JSON when unset
    tool_calls: ToolCalls = UNSET
    tool_call_id: OptionalStr = UNSET
    name: OptionalStr = UNSET


class Stats(msgspec.Struct):
    total_messages: int = 0
    user_messages: int = 0
    assistant_messages: int = 0
    errors: int = 0


class ErrorEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    message: str
    timestamp: str
    details: Any = None


class Session(msgspec.Struct):
    """A session as clients see it: what ``fold`` produces and ``load`` returns."""

    session_id: str
    user_name: str
    started_at: str
    last_updated: str
    messages: list[Message]
    metadata: dict[str, Any]
    stats: Stats
    errors: list[ErrorEntry]
    seq: int
    title: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    pinned: bool = False
    archived: bool = False


class Snapshot(Session):
    """The compactor's file: a Session plus the journal byte offset it covers."""

    journal_offset: int = 0


class Summary(msgspec.Struct, omit_defaults=True):
    """One row of the session list (``damaged``, only present when set, says why the
    session cannot be read: what ``verify`` reports for its journal)."""

    session_id: str
    user_name: str
    title: str
    started_at: str
    last_updated: str
    message_count: int
    user_messages: int
    assistant_messages: int
    preview: str
    type: str
    tags: list[str]
    pinned: bool
    archived: bool
    seq: int
    damaged: str = ""


PREVIEW_CHARS = 100


def session_type(metadata: dict[str, Any]) -> str:
    """The list's ``type`` of a session: ``metadata["type"]`` when it is a string, else
    "chat" (a journal written by another tool may hold anything there)."""
    kind = metadata.get("type", "chat")
    return kind if isinstance(kind, str) else "chat"


def summarize(session: Session) -> Summary:
    """The list row of a session: counts, first user message as preview, type."""
    preview = ""
    # without a user message (the stats say so) do not scan: this runs on every
    # append, and an assistant-only session would make each append O(messages)
    if session.stats.user_messages:
        preview = next((m.content for m in session.messages if m.role == "user"), "")
    return Summary(
        session_id=session.session_id,
        user_name=session.user_name,
        title=session.title,
        started_at=session.started_at,
        last_updated=session.last_updated,
        message_count=session.stats.total_messages,
        user_messages=session.stats.user_messages,
        assistant_messages=session.stats.assistant_messages,
        preview=preview[:PREVIEW_CHARS],
        type=session_type(session.metadata),
        tags=list(session.tags),
        pinned=session.pinned,
        archived=session.archived,
        seq=session.seq,
    )


def to_session(snapshot: Snapshot) -> Session:
    """Drop the file-only field of a snapshot."""
    fields = msgspec.structs.asdict(snapshot)
    del fields["journal_offset"]
    return Session(**fields)
