"""Claude.ai's data export: ``conversations.json`` (a list of conversations).

A message's ``text`` field runs the model's thinking and its answer together, so
messages are built from their ``content`` blocks: text is the content, thinking goes to
``metadata.thinking``, ``tool_use``/``tool_result`` become a tool call and a tool
message. Exports with parent links (``parent_message_uuid``) keep the newest branch.
"""

from __future__ import annotations

from typing import Any

from .conversation import Conversation, Tally, Turn, iso, item_id, text_of, tool_call
from .errors import Malformed
from .tree import branch, number

ROLES = {"human": "user", "user": "user", "assistant": "assistant"}


def is_claude(item: dict[str, Any]) -> bool:
    return "chat_messages" in item


def _messages(conv: dict[str, Any]) -> list[Any]:
    msgs = conv.get("chat_messages")
    if not isinstance(msgs, list):
        raise Malformed("`chat_messages` is not a list of messages")
    if not any(isinstance(m, dict) and m.get("parent_message_uuid") for m in msgs):
        return msgs  # the usual export: one list, in order
    nodes = {m["uuid"]: m for m in msgs if isinstance(m, dict) and isinstance(m.get("uuid"), str)}
    kids: dict[str, list[str]] = {}
    for uid, m in nodes.items():
        kids.setdefault(str(m.get("parent_message_uuid")), []).append(uid)
    return branch(
        nodes,
        conv.get("current_leaf_message_uuid"),
        lambda m: m.get("parent_message_uuid"),
        lambda m: kids.get(str(m.get("uuid")), []),
        lambda m: number(m.get("created_at")),
    )


def _attachments(m: dict[str, Any], tally: Tally) -> list[dict[str, Any]]:
    out = []
    for a in [*(m.get("attachments") or []), *(m.get("files") or [])]:
        if isinstance(a, dict):
            keep = ("file_name", "file_type", "file_size", "extracted_content")
            out.append({k: a[k] for k in keep if a.get(k) not in (None, "")})
            tally.attachments += 1
    return out


def _tool_output(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(
            text_of(c.get("text")) if isinstance(c, dict) else text_of(c) for c in content
        )
    return text_of(content)


def _turns(m: dict[str, Any], n: int, tally: Tally) -> list[Turn]:
    """One Claude message as turns: text and calls, then each tool result, and so on."""
    role = ROLES.get(str(m.get("sender")))
    if role is None:
        tally.unknown[f"sender {m.get('sender')!r}"] += 1
        return []
    uid = item_id(m.get("uuid"), f"m{n}")
    when = iso(m.get("created_at"))
    blocks = m.get("content")
    if not isinstance(blocks, list) or not blocks:  # older exports: text only
        blocks = [{"type": "text", "text": m.get("text")}]
    turns: list[Turn] = []
    text: list[str] = []
    thinking: list[str] = []
    calls: list[Any] = []

    def flush() -> None:
        meta: dict[str, Any] = {}
        if thinking and role == "assistant":
            meta["thinking"] = "\n\n".join(thinking)
            thinking.clear()
        body = "".join(text).strip("\n")
        if body or calls or meta:
            tid = uid if not turns else f"{uid}.{len(turns)}"
            turns.append(
                Turn(role, body, when, tid, meta, tool_calls=list(calls) if calls else None)
            )
        text.clear()
        calls.clear()

    for i, b in enumerate(blocks):
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            text.append(text_of(b.get("text")))
        elif kind == "thinking":
            thinking.append(text_of(b.get("thinking")))
        elif kind == "tool_use":
            call_id = item_id(b.get("id"), f"{uid}.call{i}")
            calls.append(tool_call(call_id, text_of(b.get("name")), b.get("input") or {}))
        elif kind == "tool_result":
            pending = [c.id for c in calls]
            flush()
            used = b.get("tool_use_id")
            answered = used if isinstance(used, str) else (pending[0] if pending else None)
            name = b.get("name") if isinstance(b.get("name"), str) else None
            turns.append(
                Turn(
                    "tool",
                    _tool_output(b),
                    when,
                    f"{uid}.{len(turns)}",
                    {},
                    tool_call_id=answered,
                    name=name,
                )
            )
        elif isinstance(b.get("text"), str):
            text.append(b["text"])
        else:
            tally.unknown[str(kind)] += 1
    flush()
    attached = _attachments(m, tally)
    if attached:
        if not turns:
            turns.append(Turn(role, "", when, uid, {}))
        turns[0].metadata["attachments"] = attached
    return turns


def parse(conv: dict[str, Any], tally: Tally) -> Conversation | None:
    turns: list[Turn] = []
    for n, m in enumerate(_messages(conv)):
        if not isinstance(m, dict):
            raise Malformed(f"chat_messages[{n}] is not an object")
        turns.extend(_turns(m, n, tally))
    if not turns:
        return None
    source_id = conv.get("uuid")
    if not isinstance(source_id, str) or not source_id:
        source_id = f"untitled:{conv.get('name')}:{conv.get('created_at')}:{turns[0].message_id}"
    meta: dict[str, Any] = {}
    if isinstance(conv.get("summary"), str) and conv["summary"]:
        meta["summary"] = conv["summary"]
    created = iso(conv.get("created_at")) or turns[0].timestamp or "1970-01-01T00:00:00.000Z"
    return Conversation("claude", source_id, text_of(conv.get("name")), created, turns, meta)
