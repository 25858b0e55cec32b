"""Journal events: frozen, tagged msgspec Structs in one union, and their codec.

A journal line is ``{"type": T, "seq": N, "id": I, "ts": TS, "data": {...}}``; the
``type`` tag selects the Struct, so decoding a line validates it in one step.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

Role = Literal["user", "assistant", "system", "tool"]
Status = Literal["complete", "partial"]
DeltaMode = Literal["append", "replace"]


_second: tuple[int, str] = (0, "")


def now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds and ``Z`` (the seed's format)."""
    global _second
    t = time.time()
    sec = int(t)
    cached = _second  # one tuple read: threads may replace it concurrently
    if cached[0] != sec:  # formatting costs more than the rest of an append's bookkeeping
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{int((t - sec) * 1000):03d}Z"


_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count()


def _new_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_new_prefix)


def new_event_id() -> str:
    """A fresh, unique id: 64 random bits per process + a counter (32 hex characters).

    Unique is all an event or message id needs to be; a syscall per id is not."""
    return f"{_id_prefix}{next(_id_counter):016x}"


# -- event payloads ---------------------------------------------------------------


class ToolFunction(msgspec.Struct, frozen=True, gc=False):
    """The function an assistant calls: its name and its arguments as a JSON string
    (OpenAI's chat format keeps them a string, so odd model output survives as is)."""

    name: str
    arguments: str


class ToolCall(msgspec.Struct, frozen=True, gc=False):
    """One entry of an assistant message's ``tool_calls`` (OpenAI chat format)."""

    id: str
    function: ToolFunction
    type: Literal["function"] = "function"


# Tool fields are UNSET unless given, and UNSET fields are never encoded: journals and
# canonical JSON without tool traffic stay byte-identical to what they were before.
ToolCalls = list[ToolCall] | UnsetType
OptionalStr = str | UnsetType


class SessionStartedData(msgspec.Struct, frozen=True, gc=False):
    user_name: str
    metadata: dict[str, Any]
    title: str = ""


class MessageAppendedData(msgspec.Struct, frozen=True, gc=False):
    message_id: str
    role: Role
    content: str
    timestamp: str
    metadata: dict[str, Any]
    status: Status = "complete"
    tool_calls: ToolCalls = UNSET  # assistant: the calls it made
    tool_call_id: OptionalStr = UNSET  # tool: the call this output answers
    name: OptionalStr = UNSET  # tool: the function's name


class MessageDeltaData(msgspec.Struct, frozen=True, gc=False):
    message_id: str
    content: str
    mode: DeltaMode = "append"


class MessageCompletedData(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    message_id: str
    content: str | None = None


class MessageEditedData(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    message_id: str
    content: str
    metadata: dict[str, Any] | None = None
    tool_calls: ToolCalls = UNSET  # replaces the message's calls when given
    tool_call_id: OptionalStr = UNSET
    name: OptionalStr = UNSET


class SessionUpdatedData(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    title: str | None = None
    tags: list[str] | None = None
    pinned: bool | None = None
    archived: bool | None = None
    metadata: dict[str, Any] | None = None


class ErrorRecordedData(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    message: str
    details: Any = None


# -- events -----------------------------------------------------------------------


class _Event(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
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
