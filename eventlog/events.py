"""Journal events: frozen, tagged msgspec Structs in one union, and their codec.

A journal line is ``{"type": T, "seq": N, "id": I, "ts": TS, "data": {...}}``; the
``type`` tag selects the Struct, so decoding a line validates it in one step.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

Role = Literal["user", "assistant", "system", "tool"]
Status = Literal["complete", "partial"]
DeltaMode = Literal["append", "replace"]


def now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds and ``Z`` (the seed's format)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_event_id() -> str:
    """A fresh, unique event id (128 random bits, hex)."""
    return os.urandom(16).hex()


# -- event payloads ---------------------------------------------------------------


class SessionStartedData(msgspec.Struct, frozen=True):
    user_name: str
    metadata: dict[str, Any]
    title: str = ""


class MessageAppendedData(msgspec.Struct, frozen=True):
    message_id: str
    role: Role
    content: str
    timestamp: str
    metadata: dict[str, Any]
    status: Status = "complete"


class MessageDeltaData(msgspec.Struct, frozen=True):
    message_id: str
    content: str
    mode: DeltaMode = "append"


class MessageCompletedData(msgspec.Struct, frozen=True, omit_defaults=True):
    message_id: str
    content: str | None = None


class MessageEditedData(msgspec.Struct, frozen=True, omit_defaults=True):
    message_id: str
    content: str
    metadata: dict[str, Any] | None = None


class SessionUpdatedData(msgspec.Struct, frozen=True, omit_defaults=True):
    title: str | None = None
    tags: list[str] | None = None
    pinned: bool | None = None
    archived: bool | None = None
    metadata: dict[str, Any] | None = None


class ErrorRecordedData(msgspec.Struct, frozen=True, omit_defaults=True):
    message: str
    details: Any = None


# -- events -----------------------------------------------------------------------


class _Event(msgspec.Struct, frozen=True, tag_field="type"):
    seq: int
    id: str
    ts: str


class SessionStarted(_Event, frozen=True, tag="session.started"):
    data: SessionStartedData


class MessageAppended(_Event, frozen=True, tag="message.appended"):
    data: MessageAppendedData


class MessageDelta(_Event, frozen=True, tag="message.delta"):
    data: MessageDeltaData


class MessageCompleted(_Event, frozen=True, tag="message.completed"):
    data: MessageCompletedData


class MessageEdited(_Event, frozen=True, tag="message.edited"):
    data: MessageEditedData


class SessionUpdated(_Event, frozen=True, tag="session.updated"):
    data: SessionUpdatedData


class ErrorRecorded(_Event, frozen=True, tag="error.recorded"):
    data: ErrorRecordedData


Event = (
    SessionStarted
    | MessageAppended
    | MessageDelta
    | MessageCompleted
    | MessageEdited
    | SessionUpdated
    | ErrorRecorded
)
EVENT_TYPES: tuple[str, ...] = (
    "session.started",
    "message.appended",
    "message.delta",
    "message.completed",
    "message.edited",
    "session.updated",
    "error.recorded",
)

encoder = msgspec.json.Encoder()
decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode_line(event: Event) -> bytes:
    """One journal line, newline-terminated."""
    return encoder.encode(event) + b"\n"


def event_type(event: Event) -> str:
    """The wire ``type`` tag of an event."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]
