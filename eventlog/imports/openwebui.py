"""Open WebUI's chat export (JSON): one chat, or a list of them.

"Export chat" gives the chat object itself (``{"id", "title", "history", "messages"…}``);
"Export all chats" gives a list of ``{"id", "title", "chat": {...}, "created_at"…}``.
Chats keep a tree (``history.messages`` with ``parentId``, ``history.currentId``); the
branch shown is the path from ``currentId`` up to the root.
"""

from __future__ import annotations

import json
from typing import Any

from .conversation import Conversation, Tally, Turn, iso, item_id, obj, text_of
from .errors import Malformed
from .tree import branch, number

ROLES = frozenset({"user", "assistant", "system"})


def is_openwebui(item: dict[str, Any]) -> bool:
    chat = item.get("chat")
    inner = chat if isinstance(chat, dict) else item
    return isinstance(inner.get("history"), dict) or (
        isinstance(inner.get("messages"), list) and "models" in inner
    )


def _path(chat: dict[str, Any]) -> list[Any]:
    history = chat.get("history")
    if isinstance(history, dict) and isinstance(history.get("messages"), dict):
        return branch(
            history["messages"],
            history.get("currentId"),
            lambda m: m.get("parentId"),
            lambda m: m.get("childrenIds"),
            lambda m: number(m.get("timestamp")),
        )
    msgs = chat.get("messages")
    if not isinstance(msgs, list):
        raise Malformed("the chat has neither `history.messages` nor a `messages` list")
    return msgs


def _content(value: Any, meta: dict[str, Any], tally: Tally) -> str:
    if isinstance(value, list):  # OpenAI-style parts
        texts = []
        for p in value:
            if isinstance(p, dict) and p.get("type") == "text":
                texts.append(text_of(p.get("text")))
            elif isinstance(p, dict):
                meta.setdefault("attachments", []).append({"type": p.get("type")})
                tally.attachments += 1
            else:
                texts.append(text_of(p))
        return "\n".join(texts)
    return text_of(value)


def parse(item: dict[str, Any], tally: Tally) -> Conversation | None:
    chat = item["chat"] if isinstance(item.get("chat"), dict) else item
    turns: list[Turn] = []
    for n, m in enumerate(_path(chat)):
        if not isinstance(m, dict):
            raise Malformed(f"message {n} is not an object")
        role = m.get("role")
        if role not in ROLES:
            tally.unknown[f"role {role!r}"] += 1
            continue
        meta: dict[str, Any] = {}
        text = _content(m.get("content"), meta, tally)
        for f in m.get("files") or []:
            if isinstance(f, dict):
                inner = obj(f.get("file"))
                name = f.get("name") or inner.get("filename")
                meta.setdefault("attachments", []).append(
                    {k: v for k, v in (("name", name), ("type", f.get("type"))) if v}
                )
                tally.attachments += 1
        if isinstance(m.get("model"), str):
            meta["model"] = m["model"]
        if isinstance(m.get("usage"), dict):
            meta["usage"] = m["usage"]
        if not text and not meta.get("attachments"):
            continue  # empty prompts, answers that failed before a token came
        turns.append(Turn(role, text, iso(m.get("timestamp")), item_id(m.get("id"), f"m{n}"), meta))
    if not turns:
        return None
    source_id = item.get("id") or chat.get("id")
    if not isinstance(source_id, str) or not source_id:
        # exports of a single chat may carry "id": "": its first message is stable
        source_id = "root:" + (
            turns[0].message_id or json.dumps([chat.get("title"), chat.get("timestamp")])
        )
    meta_out: dict[str, Any] = {}
    models = chat.get("models")
    if isinstance(models, list) and models and isinstance(models[0], str):
        meta_out["model"] = models[0]
    tags = chat.get("tags")
    if not isinstance(tags, list) and isinstance(item.get("meta"), dict):
        tags = item["meta"].get("tags")
    created = (
        iso(item.get("created_at"))
        or iso(chat.get("timestamp"))
        or turns[0].timestamp
        or "1970-01-01T00:00:00.000Z"
    )
    return Conversation(
        "openwebui",
        source_id,
        text_of(item.get("title") or chat.get("title")),
        created,
        turns,
        meta_out,
        archived=item.get("archived") is True,
        pinned=item.get("pinned") is True,
        tags=[t for t in tags or [] if isinstance(t, str) and 0 < len(t) <= 64][:64],
    )
