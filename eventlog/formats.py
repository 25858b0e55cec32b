"""Export formats (training data and backups) and the parsing of an ``events`` export.

``events`` lines are journal events with the ``session_id`` added in front; importing
them rebuilds identical sessions on any backend, so export → delete → import
round-trips exactly and moves a store between backends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
from msgspec import UNSET

from .errors import InvalidRequest, SessionNotFound
from .events import Event, SessionStarted, ToolCall, encoder
from .fold import fold
from .lenient import decode_event
from .model import Session
from .requests import MAX_DEPTH, ExportRequest, check_session_id, too_deep

CONTENT_TYPES = {
    "openai": ("application/jsonl; charset=utf-8", "jsonl"),
    "sharegpt": ("application/jsonl; charset=utf-8", "jsonl"),
    "events": ("application/jsonl; charset=utf-8", "jsonl"),
    "markdown": ("text/markdown; charset=utf-8", "md"),
}


def filename(fmt: str, session_ids: list[str] | None) -> str:
    """A download name: ``sessionlog-<id>-<format>.<ext>`` or ``sessionlog-<format>…``."""
    ext = CONTENT_TYPES[fmt][1]
    who = session_ids[0] if session_ids and len(session_ids) == 1 else f"{len(session_ids or [])}"
    return f"sessionlog-{who}-{fmt}.{ext}" if session_ids else f"sessionlog-all-{fmt}.{ext}"


def _call(c: ToolCall) -> dict[str, Any]:
    return {
        "id": c.id,
        "type": c.type,
        "function": {"name": c.function.name, "arguments": c.function.arguments},
    }


def openai_messages(s: Session) -> list[dict[str, Any]]:
    """The complete messages in OpenAI's chat format: an assistant's ``tool_calls`` (its
    empty ``content`` left out, as the fine-tuning examples do), a tool message's
    ``tool_call_id`` and ``name``. A tool message stored without its call id answers the
    oldest call still open; one with no call to answer is left out (OpenAI's checks
    refuse a tool message without a ``tool_call_id``)."""
    out: list[dict[str, Any]] = []
    open_calls: list[str] = []
    for m in s.messages:
        if m.status != "complete":
            continue
        msg: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            if not m.content:
                del msg["content"]
            msg["tool_calls"] = [_call(c) for c in m.tool_calls]
            open_calls = [c.id for c in m.tool_calls]
        elif m.role == "tool":
            call_id = m.tool_call_id if m.tool_call_id is not UNSET else None
            if call_id is None and open_calls:
                call_id = open_calls[0]
            if call_id is None:
                continue  # output that answers no call: the format has no place for it
            msg["tool_call_id"] = call_id
            if call_id in open_calls:
                open_calls.remove(call_id)
            if m.name is not UNSET:
                msg["name"] = m.name
        out.append(msg)
    return out


def openai_line(s: Session) -> bytes | None:
    """Fine-tuning chat format: one ``{"messages": [...]}`` line per session."""
    msgs = openai_messages(s)
    return encoder.encode({"messages": msgs}) + b"\n" if msgs else None


# LLaMA-Factory's sharegpt converter reads ``conversations`` as turns that alternate
# strictly: even positions human|observation, odd ones gpt|function_call, an even count;
# the system prompt comes from the ``system`` column. Anything else it drops as broken.
_PROMPT_SIDE = {"human": 0, "observation": 0, "gpt": 1, "function_call": 1}


def _function_call_value(calls: list[ToolCall]) -> str:
    """A ``function_call`` turn: ``{"name", "arguments": {...}}`` (a list for parallel
    calls), arguments decoded from their JSON string where they are JSON."""
    out = []
    for c in calls:
        try:
            args: Any = json.loads(c.function.arguments)
        except ValueError:
            args = c.function.arguments
        out.append({"name": c.function.name, "arguments": args})
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False)


def sharegpt_turns(s: Session) -> tuple[str, list[dict[str, str]]]:
    """``(system, conversations)`` as LLaMA-Factory's sharegpt loader accepts them.

    System messages join into ``system``; consecutive turns of one side merge (two user
    messages become one human turn; an assistant's text before its tool call gives way
    to the ``function_call``, which the format cannot combine with text); a leading
    assistant turn (no prompt) and a trailing unanswered prompt are dropped."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for m in s.messages:
        if m.status != "complete":
            continue
        if m.role == "system":
            if m.content:
                system.append(m.content)
            continue
        if m.tool_calls:
            tag, value = "function_call", _function_call_value(m.tool_calls)
        else:
            tag = {"user": "human", "assistant": "gpt", "tool": "observation"}[m.role]
            value = m.content
        if turns and _PROMPT_SIDE[turns[-1][0]] == _PROMPT_SIDE[tag]:
            last_tag, last_value = turns[-1]
            if last_tag == tag == "function_call":
                merged = [*_as_list(last_value), *_as_list(value)]
                turns[-1] = (tag, json.dumps(merged, ensure_ascii=False))
            elif last_tag == tag:
                turns[-1] = (tag, f"{last_value}\n\n{value}" if last_value else value)
            elif tag == "function_call" or last_tag == "function_call":
                # text beside a call: the call is what the next observation answers
                turns[-1] = ("function_call", value if tag == "function_call" else last_value)
            else:  # a prompt and a tool output in a row: one human turn with both
                turns[-1] = ("human", f"{last_value}\n\n{value}")
            continue
        turns.append((tag, value))
    while turns and _PROMPT_SIDE[turns[0][0]] == 1:
        turns.pop(0)
    if turns and _PROMPT_SIDE[turns[-1][0]] == 0:
        turns.pop()
    return "\n\n".join(system), [{"from": t, "value": v} for t, v in turns]


def _as_list(value: str) -> list[Any]:
    v = json.loads(value)
    return v if isinstance(v, list) else [v]


def sharegpt_line(s: Session) -> bytes | None:
    """ShareGPT as LLaMA-Factory reads it: ``{"id", "system", "conversations": [...]}``."""
    system, conv = sharegpt_turns(s)
    if not conv:
        return None
    return encoder.encode({"id": s.session_id, "system": system, "conversations": conv}) + b"\n"


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
        who = f" `{m.name}`" if m.name is not UNSET else ""
        out += [f"### {m.role.capitalize()}{who} · {m.timestamp}{mark}", ""]
        if m.content:
            out += [m.content, ""]
        for c in m.tool_calls or ():
            out += [
                f"Calls `{c.function.name}` (`{c.id}`):",
                "",
                "```json",
                c.function.arguments,
                "```",
                "",
            ]
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


def named(req: ExportRequest) -> list[str]:
    """The sessions an export names (``session_ids`` then ``session_id``); refuses none."""
    ids = list(req.session_ids or []) + ([req.session_id] if req.session_id else [])
    if not ids:
        raise InvalidRequest(
            "invalid request: name what to export with session_id, session_ids or all: true",
            "session_id",
        )
    return ids


def chunk_of(session_id: str, fmt: str, events: list[Event]) -> bytes | None:
    """One session's part of an export, from its events (for backends without
    snapshots at hand); None when the format has nothing for it."""
    if fmt == "events":
        return b"".join(event_lines(session_id, events))
    render = {"openai": openai_line, "sharegpt": sharegpt_line, "markdown": markdown}[fmt]
    return render(fold(session_id, events))


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
