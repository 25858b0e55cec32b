"""What every source parser produces: a neutral conversation, and its session events.

A parser turns one conversation of a foreign export into a ``Conversation`` (the
branch the user last saw, in order); ``session_events`` turns that into the journal of
one session. The session id is derived from the source and its conversation id, so
importing the same export again finds the sessions it wrote and adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from ..events import (
    Event,
    MessageAppended,
    MessageAppendedData,
    SessionStarted,
    SessionStartedData,
    SessionUpdated,
    SessionUpdatedData,
    ToolCall,
    ToolFunction,
)
from ..requests import ITEM_ID_PATTERN

_ITEM_ID = re.compile(ITEM_ID_PATTERN)


@dataclass
class Turn:
    """One message of an imported conversation."""

    role: str  # user | assistant | system | tool
    content: str
    timestamp: str | None = None
    message_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class Conversation:
    source: str  # chatgpt | claude | openwebui
    source_id: str
    title: str
    created_at: str
    turns: list[Turn]
    metadata: dict[str, Any] = field(default_factory=dict)
    archived: bool = False
    pinned: bool = False
    tags: list[str] = field(default_factory=list)


@dataclass
class Tally:
    """What an import met besides sessions: reported to the user, never an error."""

    conversations: int = 0
    empty: int = 0  # conversations with no message worth keeping: skipped
    duplicates: int = 0  # the same conversation more than once in the input
    unknown: Counter[str] = field(default_factory=Counter)  # content types with no text
    attachments: int = 0  # files/images noted in metadata (their bytes are not in exports)


# -- helpers shared by the parsers ------------------------------------------------


def iso(value: Any) -> str | None:
    """A source time as our ISO 8601 UTC with milliseconds and ``Z``; None if absent.

    Takes epoch seconds (ChatGPT, Open WebUI), epoch milliseconds (some Open WebUI
    versions) and ISO strings (Claude: microseconds, ``Z`` or an offset)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        t = float(value)
        if t > 1e11:  # milliseconds
            t /= 1000.0
        if not 0 <= t < 253402300800:  # before year 10000
            return None
        sec = int(t)
        return (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{int((t - sec) * 1000):03d}Z"
        )
    if isinstance(value, str):
        m = _ISO.match(value.strip())
        if m is None:
            return None
        date, clock, frac, zone = m.groups()
        ms = (frac or "")[:3].ljust(3, "0")
        if zone not in (None, "Z", "z", "+00:00", "+0000"):
            try:
                dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
                return iso(dt.timestamp())
            except ValueError:
                return None
        return f"{date}T{clock}.{ms}Z"
    return None


_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def item_id(raw: Any, fallback: str) -> str:
    """A source's message id if it is a valid message id here, else ``fallback``."""
    return raw if isinstance(raw, str) and _ITEM_ID.match(raw) else fallback


def tool_call(call_id: str, name: str, arguments: Any) -> ToolCall:
    """An OpenAI-style call; arguments that are not already a string become JSON."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(call_id, ToolFunction(name or "tool", arguments))


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (exports omit and null freely)."""
    return value if isinstance(value, dict) else {}


def text_of(value: Any) -> str:
    """Text from a value that should be a string but may be anything (never raises)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def session_id_for(source: str, source_id: str) -> str:
    """12 lowercase hex characters, the same for the same conversation every time."""
    return hashlib.sha256(f"{source}\0{source_id}".encode()).hexdigest()[:12]


# -- events -----------------------------------------------------------------------


def session_events(conv: Conversation) -> tuple[str, list[Event]]:
    """The session id and journal of one imported conversation.

    Event times never go backwards (a message may carry an earlier time than the one
    before it: regenerated answers do); each message keeps its own time as its
    ``timestamp``. Event ids are derived too, so the same file gives the same bytes."""
    sid = session_id_for(conv.source, conv.source_id)
    meta = {"type": "chat", **conv.metadata, "source": conv.source, "source_id": conv.source_id}
    start = conv.created_at
    events: list[Event] = [
        SessionStarted(
            seq=1, id=f"import-{sid}-1", ts=start, data=SessionStartedData("User", meta, conv.title)
        )
    ]
    ts = start
    for i, t in enumerate(conv.turns):
        when = t.timestamp or ts
        ts = max(ts, when)
        seq = len(events) + 1
        data = MessageAppendedData(
            t.message_id or f"{sid}-{i}",
            t.role,  # type: ignore[arg-type]
            t.content,
            when,
            t.metadata,
        )
        if t.tool_calls or t.tool_call_id is not None or t.name is not None:
            data = msgspec.structs.replace(
                data,
                **{
                    k: v
                    for k, v in (
                        ("tool_calls", t.tool_calls),
                        ("tool_call_id", t.tool_call_id),
                        ("name", t.name),
                    )
                    if v
                },
            )
        events.append(MessageAppended(seq=seq, id=f"import-{sid}-{seq}", ts=ts, data=data))
    if conv.archived or conv.pinned or conv.tags:
        seq = len(events) + 1
        flags = SessionUpdatedData(
            tags=list(dict.fromkeys(conv.tags)) or None,
            pinned=True if conv.pinned else None,
            archived=True if conv.archived else None,
        )
        events.append(SessionUpdated(seq=seq, id=f"import-{sid}-{seq}", ts=ts, data=flags))
    return sid, events
