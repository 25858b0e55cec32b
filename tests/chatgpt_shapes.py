"""ChatGPT export shapes for tests and the bench: message nodes, bulk conversations
shaped like a real export (real field names and per-node metadata, uuid ids), an export
of a given size, and export .zip files."""

from __future__ import annotations

import io
import json
import random
import zipfile
from typing import Any

T0 = 1_750_000_000.0  # 2025-06-15


def node(
    nid: str,
    parent: str | None,
    role: str | None,
    content: dict[str, Any] | None,
    t: float | None,
    *,
    hidden: bool = False,
    recipient: str = "all",
    name: str | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    msg = None
    if role is not None and content is not None:
        meta: dict[str, Any] = {"model_slug": "gpt-4o"} if role == "assistant" else {}
        if hidden:
            meta["is_visually_hidden_from_conversation"] = True
        meta.update(extra_meta or {})
        msg = {
            "id": nid,
            "author": {"role": role, "name": name, "metadata": {}},
            "create_time": t,
            "update_time": None,
            "content": content,
            "status": "finished_successfully",
            "end_turn": True,
            "weight": 1.0,
            "metadata": meta,
            "recipient": recipient,
            "channel": None,
        }
    return {"id": nid, "message": msg, "parent": parent, "children": []}


def text(*parts: Any) -> dict[str, Any]:
    return {"content_type": "text", "parts": list(parts)}


def link(mapping: dict[str, Any]) -> dict[str, Any]:
    for nid, node in mapping.items():
        p = node["parent"]
        if p in mapping:
            mapping[p]["children"].append(nid)
    return mapping


def _uuid(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _real_meta(role: str, parent: str, rnd: random.Random) -> dict[str, Any]:
    """The metadata a real export carries on every node (field names as ChatGPT writes them)."""
    request = f"{rnd.getrandbits(64):016x}-LHR"
    if role == "user":
        return {
            "selected_sources": [],
            "selected_github_repos": [],
            "serialization_metadata": {"custom_symbol_offsets": []},
            "request_id": request,
            "message_source": None,
            "timestamp_": "absolute",
            "message_type": None,
        }
    return {
        "finish_details": {"type": "stop", "stop_tokens": [200002]},
        "is_complete": True,
        "citations": [],
        "content_references": [],
        "message_type": None,
        "model_slug": "gpt-4o",
        "default_model_slug": "gpt-4o",
        "parent_id": parent,
        "request_id": request,
        "timestamp_": "absolute",
    }


def chatgpt_bulk(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` conversations shaped like a real ChatGPT export: uuid ids, the hidden system
    node, the metadata of every node, 4-30 messages of realistic length (answers a few
    hundred words), a regenerated answer in most (not the branch kept)."""
    rnd = random.Random(seed)
    vocab = [
        "the",
        "a",
        "model",
        "tree",
        "branch",
        "node",
        "Zürich",
        "naïve",
        "café",
        "日本",
        "emoji",
        "🚀",
        "data",
        "export",
        "stream",
        "parse",
        "token",
        "because",
        "which",
        "photosynthesis",
        "energy",
        "is",
        "and",
        "of",
        "to",
        "in",
    ]
    out = []
    for c in range(n):
        cid = _uuid(rnd)
        t = T0 + c * 1000 + seed * 1e6
        root, system = _uuid(rnd), _uuid(rnd)
        nodes: dict[str, Any] = {
            root: node(root, None, None, None, None),
            system: node(system, root, "system", text(""), None, hidden=True),
        }
        parent = system
        turns = rnd.randrange(4, 31)
        for i in range(turns):
            role = "user" if i % 2 == 0 else "assistant"
            words = rnd.randrange(8, 40) if role == "user" else rnd.randrange(80, 400)
            words_text = " ".join(rnd.choice(vocab) for _ in range(words))
            nid = _uuid(rnd)
            nodes[nid] = node(
                nid,
                parent,
                role,
                text(words_text),
                t + i * 7,
                extra_meta=_real_meta(role, parent, rnd),
            )
            if role == "assistant" and i == 1:  # a regenerated sibling, not kept
                alt = _uuid(rnd)
                nodes[alt] = node(
                    alt,
                    parent,
                    role,
                    text("alt " + words_text),
                    t + i * 7 + 3,
                    extra_meta=_real_meta(role, parent, rnd),
                )
            parent = nid
        link(nodes)
        out.append(
            {
                "title": f"Conversation {c} — ünïcode",
                "create_time": t,
                "update_time": t + turns * 7,
                "mapping": nodes,
                "moderation_results": [],
                "current_node": parent,
                "plugin_ids": None,
                "conversation_id": cid,
                "conversation_template_id": None,
                "gizmo_id": None,
                "gizmo_type": None,
                "is_archived": False,
                "is_starred": None,
                "safe_urls": [],
                "blocked_urls": [],
                "default_model_slug": "gpt-4o",
                "conversation_origin": None,
                "voice": None,
                "async_status": None,
                "disabled_tool_ids": [],
                "is_do_not_remember": False,
                "memory_scope": "global_enabled",
                "sugar_item_id": None,
                "id": cid,
            }
        )
    return out


def chatgpt_export_of_size(target_bytes: int, seed: int = 7) -> bytes:
    """A ChatGPT ``conversations.json`` of at least ``target_bytes``."""
    ten = len(json.dumps(chatgpt_bulk(10, seed), ensure_ascii=False).encode()) / 10
    n = int(target_bytes / ten) + 1
    return json.dumps(chatgpt_bulk(n, seed), ensure_ascii=False).encode()


def zip_export(files: dict[str, Any]) -> bytes:
    """An export .zip: each value JSON-encoded (or bytes as they are) under its name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in files.items():
            zf.writestr(
                name, value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False)
            )
    return buf.getvalue()
