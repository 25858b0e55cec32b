"""Command handlers: what events a validated request produces, given a session's state.

Each ``build_*`` runs with the session locked and its ``SessionState`` caught up (a
journal under its flock, a PostgreSQL row under ``FOR UPDATE``);
it returns the events to write and the result to hand back, or raises to refuse.
Deduplication comes first (a retry of an acknowledged request is answered with its
original seq even if ``expected_seq`` has since gone stale), then ``expected_seq``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET

from .errors import InvalidRequest, SequenceConflict
from .events import (
    ErrorRecorded,
    ErrorRecordedData,
    Event,
    MessageAppended,
    MessageAppendedData,
    MessageCompleted,
    MessageCompletedData,
    MessageDelta,
    MessageDeltaData,
    MessageEdited,
    MessageEditedData,
    SessionUpdated,
    SessionUpdatedData,
    new_event_id,
    now_iso,
)
from .fold import appended_message, edited_message
from .model import Message
from .requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    RecordErrorRequest,
    SaveMessage,
    SaveRequest,
    UpdateRequest,
    tool_calls_of,
)
from .state import SessionState


class Result(msgspec.Struct, frozen=True):
    """The answer to a write: the seq it got (or had, if a duplicate) and its message."""

    seq: int
    duplicate: bool = False
    message_id: str | None = None
    message: Message | None = None


class SaveResult(msgspec.Struct, frozen=True):
    seq: int
    appended: int
    edited: int


Build = Callable[[SessionState], tuple[list[Event], Any]]


def _duplicate(j: SessionState, event_id: str | None) -> Result | None:
    if event_id is None or event_id not in j.event_ids:
        return None
    mid = j.message_of_event.get(event_id)
    return Result(
        j.event_ids[event_id], True, mid, j.folder.message(mid) if mid is not None else None
    )


def _expect(j: SessionState, expected: int | None) -> None:
    if expected is not None and expected != j.last_seq:
        raise SequenceConflict(j.session_id, expected, j.last_seq)


def _existing(j: SessionState, message_id: str) -> Message:
    m = j.folder.message(message_id)
    if m is None:
        raise InvalidRequest(
            f"invalid message_id: session {j.session_id!r} has no message {message_id!r}; "
            "append it first (with partial=true to stream into it)",
            "message_id",
        )
    return m


def with_tools(data: MessageAppendedData, req: AppendRequest | SaveMessage) -> MessageAppendedData:
    """``data`` with the request's tool fields; the ones it lacks stay unset (absent)."""
    calls = tool_calls_of(req.tool_calls)
    return msgspec.structs.replace(
        data,
        tool_calls=UNSET if calls is None else calls,
        tool_call_id=UNSET if req.tool_call_id is None else req.tool_call_id,
        name=UNSET if req.name is None else req.name,
    )


def _tool_change(old: Message, cm: SaveMessage) -> dict[str, Any]:
    """The tool fields a saved message changes (as ``MessageEditedData`` fields).

    A client that leaves a field out keeps it, as with metadata: a save never removes."""
    change: dict[str, Any] = {}
    calls = tool_calls_of(cm.tool_calls)
    if calls is not None and calls != old.tool_calls:
        change["tool_calls"] = calls
    if cm.tool_call_id is not None and cm.tool_call_id != old.tool_call_id:
        change["tool_call_id"] = cm.tool_call_id
    if cm.name is not None and cm.name != old.name:
        change["name"] = cm.name
    return change


def build_append(req: AppendRequest) -> Build:
    def build(j: SessionState) -> tuple[list[Event], Result]:
        dup = _duplicate(j, req.id)
        if dup is not None:
            return [], dup
        mid = req.message_id or new_event_id()
        if mid in j.message_seq:
            return [], Result(j.message_seq[mid], True, mid, j.folder.message(mid))
        _expect(j, req.expected_seq)
        ts = now_iso()
        data = MessageAppendedData(
            message_id=mid,
            role=req.role,
            content=req.content,
            timestamp=req.timestamp or ts,
            metadata=req.metadata,
            status="partial" if req.partial else "complete",
        )
        if req.tool_calls or req.tool_call_id is not None or req.name is not None:
            data = with_tools(data, req)
        ev = MessageAppended(seq=j.last_seq + 1, id=req.id or new_event_id(), ts=ts, data=data)
        return [ev], Result(ev.seq, False, mid, appended_message(data))

    return build


def build_delta(req: DeltaRequest) -> Build:
    def build(j: SessionState) -> tuple[list[Event], Result]:
        dup = _duplicate(j, req.id)
        if dup is not None:
            return [], dup
        _existing(j, req.message_id)
        if req.message_id not in j.partial:
            raise InvalidRequest(
                f"invalid message_id: message {req.message_id!r} is complete; deltas go only "
                "to a message appended with partial=true and not yet completed",
                "message_id",
            )
        data = MessageDeltaData(req.message_id, req.content, req.mode)
        ev = MessageDelta(seq=j.last_seq + 1, id=req.id or new_event_id(), ts=now_iso(), data=data)
        return [ev], Result(ev.seq, False, req.message_id)

    return build


def build_complete(req: CompleteRequest) -> Build:
    def build(j: SessionState) -> tuple[list[Event], Result]:
        dup = _duplicate(j, req.id)
        if dup is not None:
            return [], dup
        m = _existing(j, req.message_id)
        if req.message_id not in j.partial:  # completing twice is a harmless retry
            return [], Result(j.last_seq, True, req.message_id, m)
        data = MessageCompletedData(req.message_id, req.content)
        ev = MessageCompleted(
            seq=j.last_seq + 1, id=req.id or new_event_id(), ts=now_iso(), data=data
        )
        content = m.content if req.content is None else req.content
        done = msgspec.structs.replace(m, status="complete", content=content)
        return [ev], Result(ev.seq, False, req.message_id, done)

    return build


def build_edit(req: EditRequest) -> Build:
    def build(j: SessionState) -> tuple[list[Event], Result]:
        dup = _duplicate(j, req.id)
        if dup is not None:
            return [], dup
        m = _existing(j, req.message_id)
        data = MessageEditedData(req.message_id, req.content, req.metadata)
        ev = MessageEdited(seq=j.last_seq + 1, id=req.id or new_event_id(), ts=now_iso(), data=data)
        return [ev], Result(ev.seq, False, req.message_id, edited_message(m, data))

    return build


def unique_tags(tags: list[str] | None) -> list[str] | None:
    """Tags without repeats, compared without case ("Work" and "work" are one tag); the
    first spelling given is kept."""
    if tags is None:
        return None
    seen: dict[str, str] = {}
    for tag in tags:
        seen.setdefault(tag.casefold(), tag)
    return list(seen.values())


def build_update(req: UpdateRequest) -> Build:
    tags = unique_tags(req.tags)
    data = SessionUpdatedData(req.title, tags, req.pinned, req.archived, req.metadata)
    if data == SessionUpdatedData():
        raise InvalidRequest(
            "invalid request: nothing to update; give at least one of title, tags, pinned, "
            "archived, metadata",
            None,
        )

    def build(j: SessionState) -> tuple[list[Event], Result]:
        dup = _duplicate(j, req.id)
        if dup is not None:
            return [], dup
        _expect(j, req.expected_seq)
        ev = SessionUpdated(
            seq=j.last_seq + 1, id=req.id or new_event_id(), ts=now_iso(), data=data
        )
        return [ev], Result(ev.seq)

    return build


def build_error(req: RecordErrorRequest) -> Build:
    def build(j: SessionState) -> tuple[list[Event], Result]:
        dup = _duplicate(j, req.id)
        if dup is not None:
            return [], dup
        data = ErrorRecordedData(req.message, req.details)
        ev = ErrorRecorded(seq=j.last_seq + 1, id=req.id or new_event_id(), ts=now_iso(), data=data)
        return [ev], Result(ev.seq)

    return build


def build_save(req: SaveRequest) -> Build:
    """Reconcile a client's full message list: append new ones, record changed ones as
    edits (matched by ``message_id``, else by position); never remove a message."""

    def build(j: SessionState) -> tuple[list[Event], SaveResult]:
        _expect(j, req.expected_seq)
        existing = j.folder.messages()
        ts = now_iso()
        events: list[Event] = []
        seq = j.last_seq
        appended = edited = 0
        claimed: set[str] = set()
        for i, cm in enumerate(req.messages or ()):
            if cm.message_id is not None and cm.message_id in j.message_seq:
                old: Message | None = j.folder.message(cm.message_id)
            elif cm.message_id is None and i < len(existing):
                old = existing[i]
            else:
                old = None
            if old is not None and old.message_id in claimed:
                old = None  # two client messages cannot both edit one stored message
            if old is None:
                mid = cm.message_id or new_event_id()
                if mid in claimed:
                    continue  # the same new message twice in one list
                seq += 1
                claimed.add(mid)
                data = MessageAppendedData(
                    mid, cm.role, cm.content, cm.timestamp or ts, cm.metadata
                )
                if cm.tool_calls or cm.tool_call_id is not None or cm.name is not None:
                    data = with_tools(data, cm)
                events.append(MessageAppended(seq=seq, id=new_event_id(), ts=ts, data=data))
                appended += 1
                continue
            claimed.add(old.message_id)
            tools = _tool_change(old, cm)
            if old.content != cm.content or (cm.metadata and cm.metadata != old.metadata) or tools:
                seq += 1
                meta = cm.metadata if cm.metadata and cm.metadata != old.metadata else None
                events.append(
                    MessageEdited(
                        seq=seq,
                        id=new_event_id(),
                        ts=ts,
                        data=MessageEditedData(old.message_id, cm.content, meta, **tools),
                    )
                )
                edited += 1
        cur = j.folder.session_metadata()
        if req.metadata is not None and req.metadata != cur:
            seq += 1
            events.append(
                SessionUpdated(
                    seq=seq,
                    id=new_event_id(),
                    ts=ts,
                    data=SessionUpdatedData(metadata=req.metadata),
                )
            )
        return events, SaveResult(seq, appended, edited)

    return build


WriteRequest = (
    AppendRequest
    | DeltaRequest
    | CompleteRequest
    | EditRequest
    | UpdateRequest
    | RecordErrorRequest
    | SaveRequest
)


def builder(req: WriteRequest) -> Build:
    """The handler for any write request (a validated one: see ``requests.check``)."""
    match req:
        case AppendRequest():
            return build_append(req)
        case DeltaRequest():
            return build_delta(req)
        case CompleteRequest():
            return build_complete(req)
        case EditRequest():
            return build_edit(req)
        case UpdateRequest():
            return build_update(req)
        case RecordErrorRequest():
            return build_error(req)
        case SaveRequest():
            return build_save(req)
