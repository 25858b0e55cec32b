"""Export formats (training data and backups) and the parsing of an ``events`` export.

``events`` lines are journal events with the ``session_id`` added in front; importing
them rebuilds identical sessions on any backend, so export → delete → import
round-trips exactly and moves a store between backends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import msgspec

from .errors import InvalidRequest, SessionNotFound
from .events import Event, SessionStarted, encoder
from .lenient import decode_event
from .model import Session
from .requests import MAX_DEPTH, check_session_id, too_deep

CONTENT_TYPES = {
    "openai": ("application/jsonl; charset=utf-8", "jsonl"),
    "sharegpt": ("application/jsonl; charset=utf-8", "jsonl"),
    "events": ("application/jsonl; charset=utf-8", "jsonl"),
    "markdown": ("text/markdown; charset=utf-8", "md"),
}
SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "system": "system", "tool": "tool"}


def filename(fmt: str, session_ids: list[str] | None) -> str:
    """A download name: ``sessionlog-<id>-<format>.<ext>`` or ``sessionlog-<format>…``."""
    ext = CONTENT_TYPES[fmt][1]
    who = session_ids[0] if session_ids and len(session_ids) == 1 else f"{len(session_ids or [])}"
    return f"sessionlog-{who}-{fmt}.{ext}" if session_ids else f"sessionlog-all-{fmt}.{ext}"


def openai_line(s: Session) -> bytes | None:
    """Fine-tuning chat format: one ``{"messages": [{role, content}…]}`` per session."""
    msgs = [{"role": m.role, "content": m.content} for m in s.messages if m.status == "complete"]
    return encoder.encode({"messages": msgs}) + b"\n" if msgs else None


def sharegpt_line(s: Session) -> bytes | None:
    """ShareGPT: ``{"conversations": [{"from": human|gpt|system|tool, "value"}…]}``."""
    conv = [
        {"from": SHAREGPT_FROM[m.role], "value": m.content}
        for m in s.messages
        if m.status == "complete"
    ]
    return encoder.encode({"id": s.session_id, "conversations": conv}) + b"\n" if conv else None


def markdown(s: Session) -> bytes:
    """A readable transcript."""
    out = [f"# {s.title or 'Session ' + s.session_id}", ""]
    out.append(
        f"*Session `{s.session_id}` · {s.user_name} · started {s.started_at} · "
        f"{s.stats.total_messages} messages*"
    )
    if s.tags:
        out.append("Tags: " + ", ".join(s.tags))
    out.append("")
    for m in s.messages:
        mark = " *(incomplete)*" if m.status == "partial" else ""
        out += [f"### {m.role.capitalize()} · {m.timestamp}{mark}", "", m.content, ""]
    return ("\n".join(out) + "\n---\n\n").encode()


def chunks(
    ids: list[str],
    fmt: str,
    events_of: Callable[[str], list[Event]],
    session_of: Callable[[str], Session],
) -> Iterator[bytes]:
    """The export of ``ids`` in ``fmt``, a chunk per session (streamed for many)."""
    render = {"openai": openai_line, "sharegpt": sharegpt_line, "markdown": markdown}.get(fmt)
    for sid in ids:
        try:
            if render is None:
                yield b"".join(event_lines(sid, events_of(sid)))
                continue
            chunk = render(session_of(sid))
        except SessionNotFound:
            continue  # deleted while a long export ran
        if chunk:
            yield chunk


def event_lines(session_id: str, events: Iterable[Event]) -> Iterator[bytes]:
    """Journal events with ``session_id`` in front: the backup format."""
    head = b'{"session_id":' + encoder.encode(session_id) + b","
    for e in events:
        yield head + encoder.encode(e)[1:] + b"\n"


class _Keyed(msgspec.Struct):
    session_id: str


_keyed = msgspec.json.Decoder(_Keyed)


def parse_events(data: bytes) -> dict[str, list[Event]]:
    """Group an ``events`` export by session, checking every line; raise on the first
    problem with its line number (nothing is written by a refused import)."""
    sessions: dict[str, list[Event]] = {}
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            sid = _keyed.decode(line).session_id
            ev = decode_event(line)
        except (msgspec.DecodeError, RecursionError) as e:
            raise InvalidRequest(
                f"invalid import: line {n} is not an event of an `events` export ({e})", "events"
            ) from None
        check_session_id(sid)
        if too_deep(ev):
            raise InvalidRequest(
                f"invalid import: line {n}: nested deeper than {MAX_DEPTH} levels", "events"
            )
        evs = sessions.setdefault(sid, [])
        want = len(evs) + 1
        if ev.seq != want:
            raise InvalidRequest(
                f"invalid import: line {n}: session {sid!r} expected seq {want}, got {ev.seq}; "
                "an `events` export lists each session's events in order from seq 1",
                "events",
            )
        if (want == 1) != isinstance(ev, SessionStarted):
            raise InvalidRequest(
                f"invalid import: line {n}: session {sid!r} must start with session.started "
                "(and have only one)",
                "events",
            )
        evs.append(ev)
    if not sessions:
        raise InvalidRequest("invalid import: no events found; send an `events` export", "events")
    return sessions
