"""ChatGPT's data export: ``conversations.json`` (or its split ``conversations-NNN.json``).

A conversation is a tree (``mapping``: node id -> {message, parent, children}); the
branch the user last saw is the path from ``current_node`` up to the root. Regenerated
answers are sibling branches, and a child may carry an earlier time than its parent, so
order comes only from the parent links, never from times.
"""

from __future__ import annotations

import json
from typing import Any

from .conversation import Conversation, Tally, Turn, iso, item_id, obj, text_of, tool_call
from .errors import Malformed
from .tree import branch, number

# content types that carry no message: handled where they occur
_NOT_MESSAGES = frozenset(
    {"user_editable_context", "model_editable_context", "thoughts", "reasoning_recap"}
)


def is_chatgpt(item: dict[str, Any]) -> bool:
    return "mapping" in item


def _time(node: dict[str, Any]) -> float:
    msg = node.get("message")
    return number(msg.get("create_time")) if isinstance(msg, dict) else float("-inf")


def current_branch(mapping: dict[str, Any], current: Any) -> list[dict[str, Any]]:
    return branch(mapping, current, lambda n: n.get("parent"), lambda n: n.get("children"), _time)


def _text(content: dict[str, Any], meta: dict[str, Any], tally: Tally) -> str | None:
    """The text of a message's content, or None for a content type with no text."""
    ctype = content.get("content_type")
    parts = content.get("parts")
    if isinstance(parts, list):
        texts: list[str] = []
        for p in parts:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, dict):
                if isinstance(p.get("text"), str):  # audio transcriptions
                    texts.append(p["text"])
                else:  # an image or file: its bytes are not in the export
                    note = {
                        k: p[k]
                        for k in ("content_type", "asset_pointer", "width", "height", "size_bytes")
                        if p.get(k) is not None
                    }
                    meta.setdefault("attachments", []).append(note)
                    tally.attachments += 1
        return "\n".join(t for t in texts if t)
    for key in ("text", "result"):  # code, execution_output, tether_*, system_error
        if isinstance(content.get(key), str):
            return str(content[key])
    tally.unknown[str(ctype)] += 1
    return None


def parse(conv: dict[str, Any], tally: Tally) -> Conversation | None:
    """One conversation of the export, or None when it has no message to keep."""
    mapping = conv.get("mapping")
    if not isinstance(mapping, dict):
        raise Malformed("`mapping` is not an object of message nodes")
    session_meta: dict[str, Any] = {}
    turns: list[Turn] = []
    open_calls: list[str] = []
    thinking: list[str] = []
    for node in current_branch(mapping, conv.get("current_node")):
        m = node.get("message")
        if not isinstance(m, dict):
            continue  # the root node has message null
        content = obj(m.get("content"))
        ctype = content.get("content_type")
        meta_in = obj(m.get("metadata"))
        author = obj(m.get("author"))
        role = author.get("role")
        if ctype == "user_editable_context":  # custom instructions: the session's context
            given = {k: content[k] for k in ("user_profile", "user_instructions") if content.get(k)}
            if given:
                session_meta["custom_instructions"] = given
            continue
        if ctype == "thoughts":  # a reasoning model's thoughts: kept beside the answer
            for t in content.get("thoughts") or []:
                if isinstance(t, dict) and t.get("content"):
                    thinking.append(text_of(t.get("content")))
            continue
        if ctype in _NOT_MESSAGES or meta_in.get("is_visually_hidden_from_conversation"):
            continue
        meta: dict[str, Any] = {}
        text = _text(content, meta, tally)
        if text is None:
            continue
        if isinstance(meta_in.get("model_slug"), str):
            meta["model"] = meta_in["model_slug"]
        for a in meta_in.get("attachments") or []:
            if isinstance(a, dict):
                meta.setdefault("attachments", []).append(
                    {k: a[k] for k in ("name", "mime_type", "mimeType", "size") if k in a}
                )
                tally.attachments += 1
        mid = item_id(m.get("id") or node.get("id"), f"n{len(turns)}")
        when = iso(m.get("create_time"))
        recipient = m.get("recipient")
        if role == "assistant" and isinstance(recipient, str) and recipient not in ("all", ""):
            # code the assistant ran (or a command to a tool): a tool call
            args: Any = {"code" if ctype == "code" else "text": text}
            try:
                if isinstance(json.loads(text), dict):
                    args = text  # a command already in JSON (image generation, canvas…)
            except ValueError:
                pass
            if content.get("language") and isinstance(args, dict):
                meta["language"] = content["language"]
            open_calls.append(mid)
            turns.append(
                Turn("assistant", "", when, mid, meta, tool_calls=[tool_call(mid, recipient, args)])
            )
            continue
        if role == "tool":
            name = author.get("name") if isinstance(author.get("name"), str) else None
            call_id = open_calls.pop(0) if open_calls else None
            if not text and call_id is None and not meta:
                continue
            turns.append(
                Turn("tool", text, when, mid, meta, tool_call_id=call_id, name=name or None)
            )
            continue
        if role not in ("user", "assistant", "system") or (
            not text and not meta.get("attachments")
        ):
            continue  # empty messages (and empty system prompts) say nothing
        if role == "user":
            open_calls.clear()
        if role == "assistant" and thinking:
            meta["thinking"] = "\n\n".join(thinking)
            thinking.clear()
        turns.append(Turn(role, text, when, mid, meta))
    if not turns:
        return None
    source_id = conv.get("conversation_id") or conv.get("id")
    if not isinstance(source_id, str) or not source_id:
        source_id = "untitled:" + json.dumps(
            [conv.get("title"), conv.get("create_time"), turns[0].message_id]
        )
    slug = conv.get("default_model_slug")
    if isinstance(slug, str):
        session_meta["model"] = slug
    created = iso(conv.get("create_time")) or turns[0].timestamp or "1970-01-01T00:00:00.000Z"
    return Conversation(
        "chatgpt",
        source_id,
        text_of(conv.get("title")),
        created,
        turns,
        session_meta,
        archived=conv.get("is_archived") is True,
        pinned=conv.get("is_starred") is True,
    )
