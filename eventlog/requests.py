"""Request Structs: the single source of validation, error messages and API schema.

The server decodes request bodies straight into these; the engine checks any it is
handed that did not come from ``parse`` (``check``), so Python callers get the same
errors as HTTP clients.
"""

from __future__ import annotations

import re
import weakref
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from .errors import InvalidRequest, PayloadTooLarge
from .events import DeltaMode, Role, ToolCall, ToolFunction

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ITEM_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_CONTENT_CHARS = 1_000_000
MAX_TITLE_CHARS = 500
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_SAVE_MESSAGES = 100_000
# Nesting of a request (metadata, details, req_id are free-form JSON). Anything accepted
# must also be encodable inside every answer and event frame that carries it, which
# nests it a few levels deeper: msgspec stops near the interpreter's recursion limit.
MAX_DEPTH = 64

SessionId = Annotated[str, Meta(pattern=SESSION_ID_PATTERN, description="1-64 of A-Z a-z 0-9 _ -")]
ItemId = Annotated[str, Meta(pattern=ITEM_ID_PATTERN, description="1-128 of A-Z a-z 0-9 _ . : -")]
Content = Annotated[str, Meta(max_length=MAX_CONTENT_CHARS)]
Title = Annotated[str, Meta(max_length=MAX_TITLE_CHARS)]
Tag = Annotated[str, Meta(min_length=1, max_length=MAX_TAG_CHARS)]
Tags = Annotated[list[Tag], Meta(max_length=MAX_TAGS)]
Seq = Annotated[int, Meta(ge=0)]
Metadata = dict[str, Any]
Date = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}(T[0-9:.]+Z?)?$", description="YYYY-MM-DD")]

_SID_RE = re.compile(SESSION_ID_PATTERN)

ToolCallId = Annotated[str, Meta(min_length=1, max_length=256)]
ToolName = Annotated[str, Meta(min_length=1, max_length=256)]
MAX_TOOL_CALLS = 128


class ToolFunctionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: ToolName
    arguments: Annotated[str, Meta(max_length=MAX_CONTENT_CHARS, description="a JSON string")]


class ToolCallIn(msgspec.Struct, frozen=True):
    """``{"id", "type": "function", "function": {"name", "arguments"}}`` (OpenAI chat)."""

    id: ToolCallId
    function: ToolFunctionIn
    type: Literal["function"] = "function"


ToolCallsIn = Annotated[list[ToolCallIn], Meta(max_length=MAX_TOOL_CALLS)]


def check_tool_fields(
    role: str, tool_calls: list[ToolCallIn] | None, tool_call_id: str | None, name: str | None
) -> None:
    """OpenAI's rules: calls on assistant messages, ``tool_call_id``/``name`` on tool ones.
    Raised as ValueError so that msgspec reports it as a validation error."""
    if tool_calls and role != "assistant":
        raise ValueError(
            f"invalid tool_calls: only an assistant message carries tool_calls (role is {role!r})"
        )
    for what, value in (("tool_call_id", tool_call_id), ("name", name)):
        if value is not None and role != "tool":
            raise ValueError(
                f"invalid {what}: only a tool message carries {what} (role is {role!r}); "
                "a tool's output is appended with role 'tool'"
            )
    seen: set[str] = set()
    for call in tool_calls or ():
        if call.id in seen:
            raise ValueError(
                f"invalid tool_calls: the call id {call.id!r} appears twice; each call of a "
                "message needs its own id"
            )
        seen.add(call.id)


def tool_calls_of(calls: list[ToolCallIn] | None) -> list[ToolCall] | None:
    """The stored form of a request's calls (``None`` for none, as ``[]`` means none too)."""
    if not calls:
        return None
    return [ToolCall(c.id, ToolFunction(c.function.name, c.function.arguments)) for c in calls]


class StartRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    user_name: Annotated[str, Meta(min_length=1, max_length=200)] = "User"
    metadata: Metadata = msgspec.field(default_factory=lambda: {"type": "chat"})
    title: Title = ""


class LoadRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    message_limit: Annotated[int, Meta(ge=1)] | None = None
    message_before: Annotated[int, Meta(ge=0)] | None = None


class ListRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 0  # SQLite's largest integer
    query: Annotated[str, Meta(max_length=500)] | None = None
    type: Annotated[str, Meta(max_length=64)] | None = None
    tag: Tag | None = None
    since: Date | None = None
    until: Date | None = None
    archived: bool | None = False


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    role: Role
    content: Content
    metadata: Metadata = msgspec.field(default_factory=dict)
    message_id: ItemId | None = None
    id: ItemId | None = None
    expected_seq: Seq | None = None
    partial: bool = False
    timestamp: Date | None = None
    tool_calls: ToolCallsIn | None = None
    tool_call_id: ToolCallId | None = None
    name: ToolName | None = None

    def __post_init__(self) -> None:
        if self.tool_calls is not None or self.tool_call_id is not None or self.name is not None:
            check_tool_fields(self.role, self.tool_calls, self.tool_call_id, self.name)


class DeltaRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    message_id: ItemId
    content: Content
    mode: DeltaMode = "append"
    id: ItemId | None = None


class CompleteRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    message_id: ItemId
    content: Content | None = None
    id: ItemId | None = None


class EditRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    message_id: ItemId
    content: Content
    metadata: Metadata | None = None
    id: ItemId | None = None


class UpdateRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    title: Title | None = None
    tags: Tags | None = None
    pinned: bool | None = None
    archived: bool | None = None
    metadata: Metadata | None = None
    expected_seq: Seq | None = None
    id: ItemId | None = None


class SaveMessage(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    """One message of a client's full list (the seed's shape, ``message_id`` optional)."""

    role: Role
    content: Content
    timestamp: Date | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    message_id: ItemId | None = None
    tool_calls: ToolCallsIn | None = None
    tool_call_id: ToolCallId | None = None
    name: ToolName | None = None

    def __post_init__(self) -> None:
        if self.tool_calls is not None or self.tool_call_id is not None or self.name is not None:
            check_tool_fields(self.role, self.tool_calls, self.tool_call_id, self.name)


class SaveRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    messages: Annotated[list[SaveMessage], Meta(max_length=MAX_SAVE_MESSAGES)] | None = None
    metadata: Metadata | None = None
    expected_seq: Seq | None = None


class DeleteRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId


class RecordErrorRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId
    message: Content
    details: Any = None
    id: ItemId | None = None


ExportFormat = Literal["openai", "sharegpt", "events", "markdown"]


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True, weakref=True):
    session_id: SessionId | None = None
    session_ids: Annotated[list[SessionId], Meta(max_length=100_000)] | None = None
    all: bool = False
    format: ExportFormat = "openai"


R = TypeVar("R", bound=msgspec.Struct)

_FIELD_RE = re.compile(r"at `\$\.?([^`]*)`")
_CHOICES = {
    "role": "'user', 'assistant', 'system', 'tool'",
    "mode": "'append', 'replace'",
    "format": "'openai', 'sharegpt', 'events', 'markdown'",
    "type": "'function'",
}
_OWN_RE = re.compile(r"invalid (tool_calls|tool_call_id|name): ")
_MISSING_RE = re.compile(r"missing required field `([^`]+)`")


def _field_of(err: msgspec.ValidationError) -> str | None:
    m = _FIELD_RE.search(str(err))
    return m.group(1) or None if m else None


def validation_error(err: msgspec.ValidationError) -> InvalidRequest:
    """Turn msgspec's message into ours: name the field, say what was expected."""
    text = str(err)
    field = _field_of(err)
    own = _OWN_RE.match(text)  # a rule of ours (``__post_init__``): already says it all
    if own:
        where = f"{field}.{own.group(1)}" if field else own.group(1)
        return InvalidRequest(text, where)
    missing = _MISSING_RE.search(text)
    if missing:  # msgspec reports it at the parent object: name the field itself
        field = f"{field}.{missing.group(1)}" if field else missing.group(1)
        return InvalidRequest(f"invalid {field}: this field is required ({text})", field)
    if "Expected `str` of length <=" in text or "Expected `array` of length <=" in text:
        return PayloadTooLarge(f"invalid {field or 'request'}: {text}", field)
    last = field.split(".")[-1].split("[")[0] if field else ""
    if "Invalid enum value" in text and last in _CHOICES:
        text = f"expected one of {_CHOICES[last]} ({text})"
    if field and field.split(".")[-1].split("[")[0] == "session_id" and "regex" in text:
        text = "expected 1-64 characters from A-Z a-z 0-9 _ - (" + text + ")"
    return InvalidRequest(f"invalid {field or 'request'}: {text}", field)


def parse(kind: type[R], data: bytes | str | dict[str, Any]) -> R:
    """Decode JSON bytes or convert a dict into ``kind``, raising InvalidRequest."""
    out = _decode(kind, data)
    _remember(out)
    return out


def _decode(kind: type[R], data: bytes | str | dict[str, Any]) -> R:
    try:
        if isinstance(data, dict):
            out = msgspec.convert(data, kind)
        else:
            out = msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as e:
        raise validation_error(e) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"the body is not valid JSON: {e}", None) from None
    except RecursionError:  # msgspec recurses per nesting level, even into Any
        raise InvalidRequest(TOO_DEEP, None) from None
    if _may_be_deep(data) and too_deep(out):
        raise InvalidRequest(TOO_DEEP, None)
    return out


# Requests that ``parse`` produced, so ``check`` does not validate them a second time
# (the server parses every body, then hands the Struct to the engine). Keyed by id and
# held weakly: an entry goes when its request does, so an id is never mistaken.
_parsed: dict[int, weakref.ref[Any]] = {}


def _remember(req: Any) -> None:
    if not type(req).__weakrefoffset__:
        return  # not a request type (the server's WebSocket frames): nothing checks it
    key = id(req)
    _parsed[key] = weakref.ref(req, lambda _ref: _parsed.pop(key, None))


def _may_be_deep(data: bytes | str | dict[str, Any]) -> bool:
    """A body with fewer brackets than MAX_DEPTH cannot nest that deep: counting them is
    a C-speed scan, the walk is not (it cost more than the rest of an append)."""
    if isinstance(data, dict):
        return True
    if isinstance(data, str):
        return data.count("{") + data.count("[") >= MAX_DEPTH
    return data.count(b"{") + data.count(b"[") >= MAX_DEPTH


TOO_DEEP = f"invalid request: the JSON is nested deeper than {MAX_DEPTH} levels"


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Is ``value`` (Structs, dicts, lists) nested deeper than ``limit``? Iterative."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list | tuple):
            children = v
        elif isinstance(v, msgspec.Struct):
            children = [getattr(v, f) for f in v.__struct_fields__]
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def check(req: R) -> R:
    """Validate a request Struct built by a Python caller (constructors do not check);
    one that ``parse`` produced is valid already."""
    ref = _parsed.get(id(req))
    if ref is not None and ref() is req:
        return req
    return _decode(type(req), msgspec.json.encode(req))  # used once: not remembered


def check_session_id(session_id: object) -> str:
    """A session id safe to put in a path, or InvalidRequest naming ``session_id``."""
    if not isinstance(session_id, str) or not _SID_RE.match(session_id) or "\n" in session_id:
        raise InvalidRequest(
            f"invalid session_id: expected 1-64 characters from A-Z a-z 0-9 _ -, got {session_id!r}",
            "session_id",
        )
    return session_id
