"""What both adapters share: opening a store, naming sessions, reading and writing them.

Framework session ids are any string; ours match ``^[A-Za-z0-9_-]{1,64}$``. An id that
already matches is used as it is (so an adapter can continue a session started on the
page or over HTTP); any other string becomes ``h`` + the first 40 hex digits of its
SHA-256, deterministic in every process. The framework's id is kept in the session's
metadata (``framework_session_id``) beside ``type`` (``langchain``/``agents``), so the
sessions are listed, searchable and filterable like any other. A session that does not
exist yet is created with that id, together with its first messages, by an ``events``
import (atomic: all or nothing; a concurrent creator simply wins).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import re
import threading
from typing import Any

from ..backend import Backend
from ..errors import SessionExists, SessionNotFound
from ..events import (
    MessageAppended,
    MessageAppendedData,
    SessionStarted,
    SessionStartedData,
    new_event_id,
    now_iso,
)
from ..formats import event_lines
from ..model import Session
from ..requests import SESSION_ID_PATTERN, LoadRequest, SaveMessage, SaveRequest
from . import loop

_ID_OK = re.compile(SESSION_ID_PATTERN)
Store = Backend | str

_opened: dict[str, Backend] = {}
_opened_lock = threading.Lock()


def open_store(target: str) -> Backend:
    """The backend for a target string: anything ``eventlog.connect`` takes."""
    from .. import connect

    return connect(target)


def backend_for(store: Store) -> Backend:
    """A Backend as given, or the one opened for a target (one per target per process:
    a history object per request must not open the data directory each time)."""
    if not isinstance(store, str):
        return store
    with _opened_lock:
        b = _opened.get(store)
        if b is None:
            b = _opened[store] = open_store(store)  # used only on the adapters' loop
        return b


def close_stores() -> None:
    """Close every backend the adapters opened from a target string (they are shared
    by every history/session on that target); the next use opens them again. Runs at
    exit; call it sooner to release a data directory or a server connection."""
    with _opened_lock:
        opened = list(_opened.values())
        _opened.clear()
    for b in opened:
        loop.run(b.close())


def _at_exit() -> None:
    with contextlib.suppress(Exception):  # at exit: nothing left to tell
        close_stores()


atexit.register(_at_exit)


def session_id_for(framework_id: str) -> str:
    """Our session id for a framework's session id (see the module docstring)."""
    if not isinstance(framework_id, str):
        raise TypeError(f"session_id must be a str, got {type(framework_id).__name__}")
    if _ID_OK.match(framework_id) and "\n" not in framework_id:
        return framework_id
    return "h" + hashlib.sha256(framework_id.encode()).hexdigest()[:40]


class FrameworkSession:
    """One framework session in a store: the operations both adapters are built from.
    Every coroutine here runs on the adapters' loop (``loop.run``/``loop.arun``)."""

    def __init__(self, kind: str, framework_id: str, store: Store) -> None:
        self.kind = kind
        self.framework_id = framework_id
        self.session_id = session_id_for(framework_id)
        self.store = store
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = backend_for(self.store)
        return self._backend

    async def load(self) -> Session | None:
        try:
            return (await self.backend.load(LoadRequest(session_id=self.session_id))).session
        except SessionNotFound:
            return None

    async def add(self, messages: list[SaveMessage]) -> None:
        """Append ``messages`` in order, in one write (a save of new message ids, which a
        retry cannot repeat); creates the session with them if it does not exist."""
        if not messages:
            return
        messages = [
            m
            if m.message_id
            else SaveMessage(
                role=m.role, content=m.content, metadata=m.metadata, message_id=new_event_id()
            )
            for m in messages
        ]
        try:
            await self.backend.save(SaveRequest(session_id=self.session_id, messages=messages))
            return
        except SessionNotFound:
            pass
        try:
            await self.backend.import_events(self._creation(messages))
            return
        except SessionExists:
            pass  # created meanwhile by another writer: append to it
        await self.backend.save(SaveRequest(session_id=self.session_id, messages=messages))

    def _creation(self, messages: list[SaveMessage]) -> bytes:
        ts = now_iso()
        meta: dict[str, Any] = {"type": self.kind, "framework_session_id": self.framework_id}
        events: list[Any] = [
            SessionStarted(
                seq=1,
                id=new_event_id(),
                ts=ts,
                data=SessionStartedData(user_name="User", metadata=meta, title=""),
            )
        ]
        for i, m in enumerate(messages, 2):
            data = MessageAppendedData(
                message_id=m.message_id or new_event_id(),
                role=m.role,
                content=m.content,
                timestamp=ts,
                metadata=m.metadata,
            )
            events.append(MessageAppended(seq=i, id=new_event_id(), ts=ts, data=data))
        return b"".join(event_lines(self.session_id, events))

    async def delete(self) -> None:
        with contextlib.suppress(SessionNotFound):
            await self.backend.delete(self.session_id)
