"""Folding events into the canonical session: a pure function, plus the incremental
``Folder`` that the store keeps per open journal (so a hot load costs a list copy)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from msgspec import UNSET

from .errors import JournalCorrupt
from .events import (
    ErrorRecorded,
    Event,
    MessageAppended,
    MessageAppendedData,
    MessageCompleted,
    MessageDelta,
    MessageEdited,
    MessageEditedData,
    SessionStarted,
    SessionUpdated,
)
from .model import PREVIEW_CHARS, ErrorEntry, Message, Session, Stats, Summary, session_type


def appended_message(ap: MessageAppendedData) -> Message:
    """The message a ``message.appended`` adds."""
    return Message(
        ap.role,
        ap.content,
        ap.timestamp,
        ap.metadata,
        ap.message_id,
        ap.status,
        ap.tool_calls,
        ap.tool_call_id,
        ap.name,
    )


def edited_message(m: Message, ed: MessageEditedData) -> Message:
    """``m`` after a ``message.edited``: fields the edit leaves unset stay as they were."""
    return msgspec.structs.replace(
        m,
        content=ed.content,
        metadata=m.metadata if ed.metadata is None else ed.metadata,
        tool_calls=m.tool_calls if ed.tool_calls is UNSET else ed.tool_calls,
        tool_call_id=m.tool_call_id if ed.tool_call_id is UNSET else ed.tool_call_id,
        name=m.name if ed.name is UNSET else ed.name,
    )


class Folder:
    """Applies events one at a time to a working copy of a session.

    Messages are frozen; an edit replaces the list slot, so a ``Session`` handed out
    by :meth:`session` never changes under its holder.
    """

    __slots__ = ("_errors", "_messages", "_pos", "_session", "_sid", "_stats")

    def __init__(self, session_id: str, base: Session | None = None) -> None:
        self._session: Session | None = None
        self._messages: list[Message] = []
        self._errors: list[ErrorEntry] = []
        self._pos: dict[str, int] = {}
        self._stats = Stats()
        if base is not None:
            if base.session_id != session_id:
                raise ValueError(f"base is {base.session_id!r}, not {session_id!r}")
            self._session = msgspec.structs.replace(base)
            self._messages = list(base.messages)
            self._errors = list(base.errors)
            self._stats = msgspec.structs.replace(base.stats)
            self._pos = {m.message_id: i for i, m in enumerate(self._messages)}
        self._sid = session_id

    @property
    def seq(self) -> int:
        return 0 if self._session is None else self._session.seq

    def message(self, message_id: str) -> Message | None:
        i = self._pos.get(message_id)
        return None if i is None else self._messages[i]

    def index_of(self, message_id: str) -> int | None:
        """The message's position in the session (messages are never removed)."""
        return self._pos.get(message_id)

    def message_count(self) -> int:
        return len(self._messages)

    def messages(self) -> list[Message]:
        """The live list (do not mutate): for read-only scans such as save matching."""
        return self._messages

    def session_metadata(self) -> dict[str, Any]:
        return {} if self._session is None else self._session.metadata

    def view(self) -> Session:
        """The working session itself, lists shared: read it at once, under the journal
        lock, and never keep it (``session()`` gives an independent copy)."""
        s = self._session
        if s is None:
            raise JournalCorrupt(f"session {self._sid!r} has no events")
        s.messages, s.errors, s.stats = self._messages, self._errors, self._stats
        return s

    def apply(self, event: Event) -> None:
        s = self._session
        if s is None:
            if not isinstance(event, SessionStarted):
                raise JournalCorrupt(
                    f"session {self._sid!r}: the first event must be session.started, "
                    f"got seq {event.seq}"
                )
            d = event.data
            self._session = Session(
                session_id=self._sid,
                user_name=d.user_name,
                started_at=event.ts,
                last_updated=event.ts,
                messages=[],
                metadata=d.metadata,
                stats=Stats(),
                errors=[],
                seq=event.seq,
                title=d.title,
            )
            return
        s.seq = event.seq
        s.last_updated = event.ts
        match event:
            case MessageAppended(data=ap):
                if ap.message_id in self._pos:
                    return  # the engine never writes this; a foreign tool might
                self._pos[ap.message_id] = len(self._messages)
                self._messages.append(appended_message(ap))
                st = self._stats
                st.total_messages += 1
                if ap.role == "user":
                    st.user_messages += 1
                elif ap.role == "assistant":
                    st.assistant_messages += 1
            case MessageDelta(data=dl):
                self._replace(
                    dl.message_id,
                    lambda m: msgspec.structs.replace(
                        m, content=dl.content if dl.mode == "replace" else m.content + dl.content
                    ),
                )
            case MessageCompleted(data=cp):
                self._replace(
                    cp.message_id,
                    lambda m: msgspec.structs.replace(
                        m,
                        status="complete",
                        content=m.content if cp.content is None else cp.content,
                    ),
                )
            case MessageEdited(data=ed):
                self._replace(ed.message_id, lambda m: edited_message(m, ed))
            case SessionUpdated(data=up):
                if up.title is not None:
                    s.title = up.title
                if up.tags is not None:
                    s.tags = list(up.tags)
                if up.pinned is not None:
                    s.pinned = up.pinned
                if up.archived is not None:
                    s.archived = up.archived
                if up.metadata is not None:
                    s.metadata = up.metadata
            case ErrorRecorded(data=er):
                self._errors.append(ErrorEntry(er.message, event.ts, er.details))
                self._stats.errors += 1
            case SessionStarted():
                raise JournalCorrupt(
                    f"session {self._sid!r}: a second session.started at seq {event.seq}"
                )

    def _replace(self, message_id: str, change: Callable[[Message], Message]) -> None:
        i = self._pos.get(message_id)
        if i is not None:
            self._messages[i] = change(self._messages[i])

    def session(self) -> Session:
        """An independent Session for the events applied so far."""
        s = self._session
        if s is None:
            raise JournalCorrupt(f"session {self._sid!r} has no events")
        return msgspec.structs.replace(
            s,
            messages=list(self._messages),
            errors=list(self._errors),
            stats=msgspec.structs.replace(self._stats),
            tags=list(s.tags),
        )


def fold(session_id: str, events: Iterable[Event], base: Session | None = None) -> Session:
    """The canonical session after ``events``, starting from ``base`` (or nothing)."""
    f = Folder(session_id, base)
    for e in events:
        f.apply(e)
    return f.session()


def summary_of(session_id: str, events: list[Event]) -> Summary:
    """``summarize(fold(session_id, events))``, without building the messages: a cold
    start lists a whole store with it, and the messages were most of a fold's cost.
    It follows ``Folder.apply`` rule by rule (a property test holds the two equal); a
    journal that does not fold (no events, a misplaced session.started) goes through
    ``fold``, which raises what is wrong."""
    first = events[0] if events else None
    if not isinstance(first, SessionStarted):
        fold(session_id, events)  # raises JournalCorrupt, worded as for a load
        raise AssertionError("unreachable")
    d = first.data
    title, tags, pinned, archived, metadata = d.title, [], False, False, d.metadata
    ids: set[str] = set()
    users = assistants = 0
    preview_id: str | None = None  # the first user message: its content is the preview
    preview = ""
    for e in events[1:]:
        match e:
            case MessageAppended(data=ap):
                if ap.message_id in ids:
                    continue
                ids.add(ap.message_id)
                if ap.role == "user":
                    users += 1
                    if preview_id is None:
                        preview_id, preview = ap.message_id, ap.content
                elif ap.role == "assistant":
                    assistants += 1
            case MessageDelta(data=dl):
                if dl.message_id == preview_id:
                    preview = dl.content if dl.mode == "replace" else preview + dl.content
            case MessageCompleted(data=cp):
                if cp.message_id == preview_id and cp.content is not None:
                    preview = cp.content
            case MessageEdited(data=ed):
                if ed.message_id == preview_id:
                    preview = ed.content
            case SessionUpdated(data=up):
                if up.title is not None:
                    title = up.title
                if up.tags is not None:
                    tags = list(up.tags)
                if up.pinned is not None:
                    pinned = up.pinned
                if up.archived is not None:
                    archived = up.archived
                if up.metadata is not None:
                    metadata = up.metadata
            case SessionStarted():
                fold(session_id, events)  # raises JournalCorrupt: a second session.started
    last = events[-1]
    return Summary(
        session_id=session_id,
        user_name=d.user_name,
        title=title,
        started_at=first.ts,
        last_updated=last.ts,
        message_count=len(ids),
        user_messages=users,
        assistant_messages=assistants,
        preview=preview[:PREVIEW_CHARS],
        type=session_type(metadata),
        tags=tags,
        pinned=pinned,
        archived=archived,
        seq=last.seq,
    )
