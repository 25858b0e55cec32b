"""``sessionlog tail SESSION``: a session as a readable transcript, followed live.

Messages print as ``[HH:MM] role: text``. On a terminal, a message that is still
streaming is redrawn in place as its deltas arrive (as long as it is the last thing on
screen); piped, each message prints once, when it is complete, so a log file holds
the final texts only. ``--events`` prints the raw journal events as JSON lines.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import sys
from dataclasses import dataclass
from typing import TextIO

from eventlog.events import (
    ErrorRecorded,
    Event,
    MessageAppended,
    MessageCompleted,
    MessageDelta,
    MessageEdited,
    SessionStarted,
    SessionUpdated,
    encoder,
)

CLEAR_TO_END = "\x1b[J"


def _up(rows: int) -> str:
    """Back to the first column ``rows`` rows up (ECMA-48 CPL)."""
    return f"\x1b[{rows}F"


@dataclass
class Line:
    """One message as the transcript shows it."""

    time: str
    role: str
    content: str
    partial: bool
    edited: bool = False

    def text(self) -> str:
        state = " (streaming…)" if self.partial else " (edited)" if self.edited else ""
        return f"[{self.time}] {self.role}{state}: {self.content}"


class Transcript:
    """Folds events into messages and prints them; ``live`` redraws in place."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self.messages: dict[str, Line] = {}
        self.shown: set[str] = set()  # printed in final form (pipe mode)
        self.last: str | None = None  # the message drawn last (terminal mode)
        self.last_rows = 0

    def apply(self, ev: Event) -> str | None:
        """Fold one event; returns the message id it changed, or None."""
        match ev:
            case MessageAppended(data=d):
                partial = d.status == "partial"
                self.messages[d.message_id] = Line(ev.ts[11:16], d.role, d.content, partial)
                return d.message_id
            case MessageDelta(data=d) if d.message_id in self.messages:
                m = self.messages[d.message_id]
                m.content = d.content if d.mode == "replace" else m.content + d.content
                return d.message_id
            case MessageCompleted(data=d) if d.message_id in self.messages:
                m = self.messages[d.message_id]
                m.partial = False
                if d.content is not None:
                    m.content = d.content
                return d.message_id
            case MessageEdited(data=d) if d.message_id in self.messages:
                m = self.messages[d.message_id]
                m.content, m.edited = d.content, True
                return d.message_id
            case _:
                return None

    def note(self, ev: Event) -> str | None:
        """A one-line note for events that are not messages."""
        match ev:
            case SessionStarted(data=d):
                title = f" “{d.title}”" if d.title else ""
                return f"— session{title} started by {d.user_name} at {ev.ts[:16]}"
            case SessionUpdated(data=d):
                parts = []
                if d.title is not None:
                    parts.append(f"title: {d.title or '(none)'}")
                if d.tags is not None:
                    parts.append(f"tags: {', '.join(d.tags) or '(none)'}")
                for flag in ("pinned", "archived"):
                    value = getattr(d, flag)
                    if value is not None:
                        parts.append(flag if value else f"not {flag}")
                return f"— {'; '.join(parts)}" if parts else None
            case ErrorRecorded(data=d):
                return f"— error: {d.message}"
            case _:
                return None

    def feed(self, ev: Event) -> None:
        changed = self.apply(ev)
        if changed is not None:
            self.show(changed)
            return
        note = self.note(ev)
        if note is not None:
            self.write(note)
            self.last = None

    def show(self, message_id: str) -> None:
        m = self.messages[message_id]
        if not self.live:
            if m.partial or (message_id in self.shown and not m.edited):
                return  # piped: the final text, once (an edit prints again)
            self.shown.add(message_id)
            self.write(m.text())
            return
        if self.last == message_id:
            self.out.write(_up(self.last_rows) + CLEAR_TO_END)  # redraw in place
        self.write(m.text())
        self.last = message_id
        self.last_rows = self._rows(m.text())

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    @staticmethod
    def _rows(text: str) -> int:
        width = max(shutil.get_terminal_size().columns, 20)
        return sum(max(1, -(-len(line) // width)) for line in text.split("\n"))


def last_messages(events: list[Event], n: int) -> list[Event]:
    """The events from the one that started the n-th last message on (n <= 0: none)."""
    if n <= 0:
        return []
    starts = [i for i, e in enumerate(events) if isinstance(e, MessageAppended)]
    if len(starts) <= n:
        return events
    return events[starts[-n] :]


def cmd_tail(args: argparse.Namespace) -> int:
    """Print a session (last ``--lines`` messages), then follow it until ^C."""
    import watchfiles

    from eventlog.backends.file.store import Store
    from eventlog.notify import Published

    transcript = Transcript(sys.stdout, live=sys.stdout.isatty())

    def emit(ev: Event) -> None:
        if args.events:
            print(encoder.encode(ev).decode(), flush=True)
        else:
            transcript.feed(ev)

    def start(history: list[Event]) -> None:
        if args.events:
            shown = history[-args.lines :] if args.lines > 0 else []
        else:
            # fold everything (a message may have started before the window), print the window
            shown = last_messages(history, args.lines)
            for ev in history[: len(history) - len(shown)]:
                transcript.apply(ev)
        for ev in shown:
            emit(ev)

    if args.database:
        from . import cli_db

        return cli_db.tail(args, start, emit)
    q: queue.Queue[object] = queue.Queue()
    store = Store(args.data, background=False, reconcile=False)
    try:
        path = store.path_of(args.session_id)
        store.subscribe(lambda n: q.put(n) if isinstance(n, Published) else None)
        store.watch(args.session_id)
        history = store.events(args.session_id, 0)
        start(history)
        last = max(history[-1].seq if history else 0, store.head(args.session_id))
        for _ in watchfiles.watch(path, debounce=50, step=20, raise_interrupt=False):
            store.refresh(args.session_id)
            while not q.empty():
                n = q.get()
                assert isinstance(n, Published)
                for ev in n.events:
                    if ev.seq > last:
                        emit(ev)
                        last = ev.seq
            if not os.path.exists(path):
                print("session deleted", file=sys.stderr)
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()
    return 0
