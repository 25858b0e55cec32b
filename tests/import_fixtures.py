"""Exports in the real formats of ChatGPT, Claude.ai and Open WebUI, as messy as real
ones: regenerated branches, children older than their parents, hidden system nodes,
custom instructions, code-interpreter traffic, images, thinking, unicode, empty
conversations. (Bulk and sized ChatGPT exports: ``chatgpt_shapes``.)"""

from __future__ import annotations

from typing import Any

from tests.chatgpt_shapes import T0, chatgpt_bulk, chatgpt_export_of_size, zip_export
from tests.chatgpt_shapes import link as _link
from tests.chatgpt_shapes import node as _node
from tests.chatgpt_shapes import text as _text

__all__ = [
    "chatgpt_bulk",
    "chatgpt_export_of_size",
    "chatgpt_messy",
    "claude_messy",
    "openwebui_messy",
    "zip_export",
]


def chatgpt_messy() -> list[dict[str, Any]]:
    """Five ChatGPT conversations, one per trap (see each comment)."""
    convs = []
    # 1. root null, hidden system, custom instructions, a regenerated answer (the user
    #    kept the FIRST one: current_node leads there though the second is newer), an
    #    answer timed before its prompt, an image part, thoughts, unicode
    m = _link(
        {
            "root": _node("root", None, None, None, None),
            "sys": _node("sys", "root", "system", _text(""), None, hidden=True),
            "ctx": _node(
                "ctx",
                "sys",
                "user",
                {
                    "content_type": "user_editable_context",
                    "user_profile": "Ich heiße Zoë.",
                    "user_instructions": "Réponds brièvement.",
                },
                None,
                hidden=True,
            ),
            "u1": _node(
                "u1",
                "ctx",
                "user",
                {
                    "content_type": "multimodal_text",
                    "parts": [
                        {
                            "content_type": "image_asset_pointer",
                            "asset_pointer": "file-service://file-abc",
                            "width": 10,
                            "height": 20,
                        },
                        "What is in this picture? 🖼️ 日本語",
                    ],
                },
                T0 + 10,
            ),
            "a1": _node(
                "a1", "u1", "assistant", _text("A cat. 🐱 (kept)"), T0 + 9
            ),  # older than its prompt
            "a1b": _node(
                "a1b", "u1", "assistant", _text("A dog. (regenerated, not kept)"), T0 + 30
            ),
            "u2": _node("u2", "a1", "user", _text("Sure?"), T0 + 40),
            "th": _node(
                "th",
                "u2",
                "assistant",
                {
                    "content_type": "thoughts",
                    "thoughts": [{"summary": "s", "content": "Think about the tail."}],
                },
                T0 + 41,
            ),
            "rr": _node(
                "rr",
                "th",
                "assistant",
                {"content_type": "reasoning_recap", "content": "Thought for 2s"},
                T0 + 42,
            ),
            "a2": _node("a2", "rr", "assistant", _text("Yes — ganz sicher."), T0 + 43),
        }
    )
    convs.append(
        {
            "title": "Bild: Katze 🐱",
            "create_time": T0,
            "update_time": T0 + 50,
            "mapping": m,
            "current_node": "a2",
            "conversation_id": "conv-branches",
            "id": "conv-branches",
            "default_model_slug": "gpt-4o",
            "is_archived": True,
        }
    )
    # 2. code interpreter: code + execution_output, twice; an unknown content type
    #    with text and one without
    m = _link(
        {
            "r": _node("r", None, None, None, None),
            "u": _node("u", "r", "user", _text("Compute 2**100"), T0 + 100),
            "c": _node(
                "c",
                "u",
                "assistant",
                {"content_type": "code", "language": "python", "text": "print(2**100)"},
                T0 + 101,
                recipient="python",
            ),
            "o": _node(
                "o",
                "c",
                "tool",
                {"content_type": "execution_output", "text": "1267650600228229401496703205376"},
                T0 + 102,
                name="python",
            ),
            "a": _node(
                "a", "o", "assistant", _text("It is 1267650600228229401496703205376."), T0 + 103
            ),
            "u2": _node("u2", "a", "user", _text("Plot it"), T0 + 104),
            "c2": _node(
                "c2",
                "u2",
                "assistant",
                {"content_type": "code", "language": "python", "text": "import matplotlib"},
                T0 + 105,
                recipient="python",
            ),
            "o2": _node(
                "o2",
                "c2",
                "tool",
                {"content_type": "execution_output", "text": "\n<<ImageDisplayed>>"},
                T0 + 106,
                name="python",
            ),
            "w": _node(
                "w",
                "o2",
                "tool",
                {
                    "content_type": "tether_quote",
                    "url": "https://x",
                    "title": "X",
                    "text": "quoted text",
                },
                T0 + 107,
                name="browser",
            ),
            "z": _node(
                "z",
                "w",
                "assistant",
                {"content_type": "fancy_new_widget", "blob": [1, 2]},
                T0 + 108,
            ),
            "a2": _node("a2", "z", "assistant", _text("Done."), T0 + 109),
        }
    )
    convs.append(
        {
            "title": "Code",
            "create_time": T0 + 100,
            "update_time": T0 + 110,
            "mapping": m,
            "current_node": "a2",
            "conversation_id": "conv-code",
        }
    )
    # 3. current_node dangling: the newest leaf (by its own time) is the branch kept
    m = _link(
        {
            "r": _node("r", None, None, None, None),
            "u": _node("u", "r", "user", _text("Pick one"), T0 + 200),
            "x": _node("x", "u", "assistant", _text("old leaf"), T0 + 201),
            "y": _node("y", "u", "assistant", _text("newest leaf"), T0 + 205),
            "w": _node("w", "u", "assistant", _text("middle leaf"), T0 + 203),
        }
    )
    convs.append(
        {
            "title": "Dangling",
            "create_time": T0 + 200,
            "mapping": m,
            "current_node": "gone",
            "conversation_id": "conv-dangling",
        }
    )
    # 4. no current_node, and a cycle: the walk ends, nothing loops
    m = _link(
        {
            "p": _node("p", "q", "user", _text("in a cycle"), T0 + 300),
            "q": _node("q", "p", "assistant", _text("still in it"), T0 + 301),
        }
    )
    convs.append(
        {"title": "Cycle", "create_time": T0 + 300, "mapping": m, "conversation_id": "conv-cycle"}
    )
    # 5. empty: only a root and a hidden system message
    m = _link(
        {
            "r": _node("r", None, None, None, None),
            "s": _node("s", "r", "system", _text(""), None, hidden=True),
        }
    )
    convs.append(
        {
            "title": "Empty",
            "create_time": T0 + 400,
            "mapping": m,
            "current_node": "s",
            "conversation_id": "conv-empty",
        }
    )
    return convs


def claude_messy() -> list[dict[str, Any]]:
    """Claude.ai conversations: thinking merged into ``text``, tools, attachments, empty."""

    def block(kind: str, **kw: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "start_timestamp": "2025-03-01T10:00:01.123456Z",
            "stop_timestamp": None,
            **kw,
        }

    return [
        {
            "uuid": "c-tools",
            "name": "Wetter in Zürich ☀️",
            "summary": "",
            "created_at": "2025-03-01T10:00:00.654321Z",
            "updated_at": "2025-03-01T10:05:00Z",
            "account": {"uuid": "acc"},
            "chat_messages": [
                {
                    "uuid": "h1",
                    "text": "Wie ist das Wetter?",
                    "content": [block("text", text="Wie ist das Wetter?", citations=[])],
                    "sender": "human",
                    "created_at": "2025-03-01T10:00:01.000000Z",
                    "attachments": [
                        {
                            "file_name": "notes.txt",
                            "file_size": 12,
                            "file_type": "txt",
                            "extracted_content": "Zürich, CH",
                        }
                    ],
                    "files": [],
                },
                {
                    "uuid": "a1",
                    "text": "Let me think.Ich schaue nach.Es sind 21 °C.",
                    "content": [
                        block(
                            "thinking",
                            thinking="Let me think.",
                            summaries=[{"summary": "Thinking"}],
                            cut_off=False,
                        ),
                        block("text", text="Ich schaue nach.", citations=[]),
                        block(
                            "tool_use",
                            id="toolu_1",
                            name="web_search",
                            input={"query": "Wetter Zürich"},
                        ),
                        block(
                            "tool_result",
                            tool_use_id="toolu_1",
                            name="web_search",
                            content=[{"type": "text", "text": "21 °C, sonnig"}],
                            is_error=False,
                        ),
                        block("token_budget"),
                        block("text", text="Es sind 21 °C.", citations=[]),
                    ],
                    "sender": "assistant",
                    "created_at": "2025-03-01T10:00:05.000000Z",
                    "attachments": [],
                    "files": [],
                },
            ],
        },
        {
            "uuid": "c-empty",
            "name": "",
            "created_at": "2025-03-02T00:00:00Z",
            "updated_at": "2025-03-02T00:00:00Z",
            "chat_messages": [],
        },
        {
            "uuid": "c-old",
            "name": "Old format",
            "created_at": "2024-01-01T00:00:00+02:00",
            "updated_at": "2024-01-01T00:00:00Z",
            "chat_messages": [
                {
                    "uuid": "o1",
                    "text": "text only, no blocks",
                    "sender": "human",
                    "created_at": "2024-01-01T00:00:01+02:00",
                },
                {
                    "uuid": "o2",
                    "text": "an answer",
                    "content": [],
                    "sender": "assistant",
                    "created_at": "2024-01-01T00:00:02+02:00",
                },
            ],
        },
    ]


def openwebui_messy() -> list[dict[str, Any]]:
    """Open WebUI's "export all chats" list: a regenerated branch, a dangling currentId."""

    def msg(
        mid: str, parent: str | None, role: str, content: str, ts: int, kids: list[str]
    ) -> dict[str, Any]:
        return {
            "id": mid,
            "parentId": parent,
            "childrenIds": kids,
            "role": role,
            "content": content,
            "timestamp": ts,
            "model": "llama3" if role == "assistant" else None,
        }

    branchy = {
        "u1": msg("u1", None, "user", "Erzähl einen Witz", 1_700_000_000, ["a1", "a2"]),
        "a1": msg("a1", "u1", "assistant", "first try (not shown)", 1_700_000_050, []),
        "a2": msg(
            "a2", "u1", "assistant", "Warum… 🤡", 1_700_000_010, ["u2"]
        ),  # kept, though older
        "u2": msg("u2", "a2", "user", "Noch einer", 1_700_000_060, ["a3"]),
        "a3": msg("a3", "u2", "assistant", "", 1_700_000_061, []),  # failed: empty
    }
    dangling = {
        "x1": msg("x1", None, "user", "hi", 1_700_100_000, ["x2", "x3"]),
        "x2": msg("x2", "x1", "assistant", "older leaf", 1_700_100_001, []),
        "x3": msg("x3", "x1", "assistant", "newer leaf", 1_700_100_002, []),
    }

    def chat(
        cid: str, title: str, nodes: dict[str, Any], current: str, **outer: Any
    ) -> dict[str, Any]:
        return {
            "id": cid,
            "user_id": "u",
            "title": title,
            "chat": {
                "id": cid,
                "title": title,
                "models": ["llama3"],
                "history": {"messages": nodes, "currentId": current},
                "messages": list(nodes.values()),
                "tags": ["witze"],
                "timestamp": 1_700_000_000_000,
            },
            "created_at": 1_700_000_000,
            "updated_at": 1_700_000_100,
            **outer,
        }

    return [
        chat("w-branch", "Witze", branchy, "u2", pinned=True),
        chat("w-dangling", "Dangling", dangling, "nope", archived=True),
    ]
