"""What the store tells its listeners: durable events, and session lifecycle changes.

Listeners run on the thread that made the events durable, in seq order per session;
they must be quick (the server's hands the notice to its event loop and returns).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import msgspec

from .events import Event
from .model import Summary


class Published(msgspec.Struct, frozen=True):
    """Events of one session, durable, in seq order."""

    session_id: str
    events: list[Event]


class Lifecycle(msgspec.Struct, frozen=True):
    """A change the session browser shows: started, updated (any new event), deleted."""

    type: Literal["session.started", "session.updated", "session.deleted"]
    session_id: str
    summary: Summary | None = None


Notice = Published | Lifecycle
Listener = Callable[[Notice], None]


class Hub:
    """A thread-safe list of listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def add(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that removes it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def listening(self) -> bool:
        """Is anyone listening? (Then list rows are worth computing.)"""
        return bool(self._listeners)

    def emit(self, notice: Notice) -> None:
        for listener in self._listeners:
            listener(notice)
