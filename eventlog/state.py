"""What a writer must know of a session to decide a write: its folded state plus the
maps that make retries idempotent. Every backend keeps one per session it writes to
and hands it to ``ops`` under its per-session lock (a flock, a row lock)."""

from __future__ import annotations

from collections.abc import Iterable

from .events import Event, MessageAppended, MessageCompleted
from .fold import Folder


class SessionState:
    """A session's state at ``last_seq``: ``apply`` events in seq order to advance it."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.event_ids: dict[str, int] = {}
        self.message_seq: dict[str, int] = {}  # message_id -> seq of its message.appended
        self.message_of_event: dict[str, str] = {}  # event id -> message_id it appended
        self.partial: set[str] = set()  # message ids still streaming
        self.folder = Folder(session_id)

    @property
    def last_seq(self) -> int:
        return self.folder.seq

    def apply_state(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.folder.apply(ev)
            self.event_ids[ev.id] = ev.seq
            match ev:
                case MessageAppended(data=d):
                    self.message_seq[d.message_id] = ev.seq
                    self.message_of_event[ev.id] = d.message_id
                    if d.status == "partial":
                        self.partial.add(d.message_id)
                case MessageCompleted(data=d):
                    self.partial.discard(d.message_id)
