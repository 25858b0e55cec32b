"""Imports of ChatGPT, Claude.ai and Open WebUI exports (SPEC §11), what each becomes:
the real files in ``../shared/import-samples`` (read in place) and messy fixtures in the
same formats. Files, zips, errors, the server and the CLI: test_imports_io.py."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from eventlog.backend import Backend
from eventlog.imports.tree import branch
from eventlog.requests import ExportRequest, ListRequest
from tests import import_fixtures as fx
from tests.import_helpers import SAMPLES, needs_samples, run_import, said, sessions_by_source, write
from tests.test_training_exports import check_openai_chat_example, llamafactory_sharegpt_accepts

# -- the real exports ---------------------------------------------------------------


@needs_samples
async def test_real_chatgpt_code_interpreter_export(backend: Backend) -> None:
    report = await run_import(backend, SAMPLES / "c2g_conversations.json")
    assert (report.conversations, len(report.imported), report.empty) == (1, 1, 0)
    s = (await sessions_by_source(backend))["966da5c4-5bb7-4e4d-ab6d-a7316b96266e"]
    assert s.title == "Average Distance in U(0,1)" and s.started_at == "2023-09-21T19:57:53.968Z"
    assert s.metadata["source"] == "chatgpt" and not any(m.role == "system" for m in s.messages)
    calls = [m for m in s.messages if m.tool_calls]
    outputs = [m for m in s.messages if m.role == "tool"]
    assert len(calls) == len(outputs) == 11
    assert [o.tool_call_id for o in outputs] == [c.tool_calls[0].id for c in calls]  # type: ignore[index]
    first = calls[0].tool_calls[0]  # type: ignore[index]
    assert (
        first.function.name == "python"
        and "integrate" in json.loads(first.function.arguments)["code"]
    )
    assert outputs[0].content == "0" and outputs[0].name == "python"
    assert s.messages[0].content.startswith("given two random independent variables")
    assert s.messages[-1].content.startswith("Here's the updated graph with the mean")
    # and its training exports are valid as they stand
    out = b"".join(
        [
            c
            async for c in await backend.export(
                ExportRequest(session_id=s.session_id, format="openai")
            )
        ]
    )
    check_openai_chat_example(json.loads(out))
    out = b"".join(
        [
            c
            async for c in await backend.export(
                ExportRequest(session_id=s.session_id, format="sharegpt")
            )
        ]
    )
    assert llamafactory_sharegpt_accepts(json.loads(out))


@needs_samples
async def test_real_chatgpt_export_follows_parents_not_times_and_keeps_custom_instructions(
    backend: Backend,
) -> None:
    await run_import(backend, SAMPLES / "owi_gpt_example.json")
    s = (await sessions_by_source(backend))["6857150a-cd20-800f-a5f7-d2404f94b935"]
    roles = [m.role for m in s.messages]
    assert roles == ["user", "assistant"] * 5  # hidden system and context nodes left out
    assert s.messages[0].content == "Can you explain how photosynthesis works in simple terms?"
    assert s.messages[1].timestamp < s.messages[0].timestamp  # the answer's own (earlier) time
    assert "1 to 2 paragraphs" in s.metadata["custom_instructions"]["user_instructions"]
    assert s.messages[1].metadata["model"] == "gpt-4o"


@needs_samples
async def test_real_claude_exports_keep_thinking_out_of_the_content(backend: Backend) -> None:
    await run_import(
        backend, SAMPLES / "ad_conversations.json", SAMPLES / "owi_claude_thinking_example.json"
    )
    got = await sessions_by_source(backend)
    dog = got["b49c0fc0-85d8-475c-bd2d-ee89f31f592c"]
    assert dog.title == "Bleep bloop" and dog.metadata["source"] == "claude"
    answer = dog.messages[1]
    assert answer.content.startswith("Dog saliva does contain some antibacterial compounds")
    assert "The user is asking" not in answer.content
    assert answer.metadata["thinking"].startswith("The user is asking about the belief")
    demo = got["11111111-2222-3333-4444-555555555555"]  # its `text` fields are empty
    assert said(demo) == [
        ("user", "Can you greet me?"),
        ("assistant", "Hello there! It's great to hear from you."),
    ]
    assert "warmly" in demo.messages[1].metadata["thinking"]


@needs_samples
async def test_real_claude_export_with_redacted_text_skips_and_counts_empty_ones(
    backend: Backend,
) -> None:
    report = await run_import(backend, SAMPLES / "owi_claude_example.json")
    assert report.conversations == 85 and report.empty + len(report.imported) == 85
    assert report.empty > 80 and report.imported  # the file's text is redacted to ""


@needs_samples
async def test_real_open_webui_export_without_an_id(backend: Backend) -> None:
    report = await run_import(backend, SAMPLES / "owi_webui-json.json")
    assert len(report.imported) == 1
    (s,) = (await sessions_by_source(backend)).values()
    assert s.metadata["source"] == "openwebui" and s.metadata["source_id"].startswith("root:")
    assert s.title == "🧠 Goldwater Rule Ethics" and [m.role for m in s.messages] == [
        "user",
        "assistant",
    ]
    assert s.messages[1].metadata["model"] == "deepseek/deepseek-chat:free"
    assert s.messages[1].content.startswith("The principle you")


@needs_samples
async def test_importing_the_same_files_again_adds_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    files = sorted(SAMPLES.glob("*.json"))
    first = await run_import(backend, *files)
    assert len(first.imported) == 6
    before = await sessions_by_source(backend)
    again = await run_import(backend, *files)
    assert again.imported == [] and sorted(again.skipped) == sorted(first.imported)
    assert await sessions_by_source(backend) == before


# -- messy fixtures -----------------------------------------------------------------


async def test_chatgpt_branches_hidden_nodes_images_thoughts_and_archive(
    backend: Backend, tmp_path: Path
) -> None:
    report = await run_import(backend, write(tmp_path / "conversations.json", fx.chatgpt_messy()))
    assert (report.conversations, report.empty, len(report.imported)) == (5, 1, 4)
    assert report.unknown_content == {"fancy_new_widget": 1} and report.attachments == 1
    got = await sessions_by_source(backend)
    s = got["conv-branches"]
    assert said(s) == [
        ("user", "What is in this picture? 🖼️ 日本語"),
        ("assistant", "A cat. 🐱 (kept)"),  # the branch current_node leads to
        ("user", "Sure?"),
        ("assistant", "Yes — ganz sicher."),
    ]
    assert s.messages[0].metadata["attachments"][0]["asset_pointer"] == "file-service://file-abc"
    assert s.messages[3].metadata["thinking"] == "Think about the tail."
    assert s.metadata["custom_instructions"] == {
        "user_profile": "Ich heiße Zoë.",
        "user_instructions": "Réponds brièvement.",
    }
    assert s.archived and s.title == "Bild: Katze 🐱" and s.started_at == "2025-06-15T15:06:40.000Z"
    listed = (await backend.list(ListRequest())).sessions
    assert "conv-branches" not in {r.session_id for r in listed}  # archived: left out by default


async def test_chatgpt_code_interpreter_becomes_tool_calls(
    backend: Backend, tmp_path: Path
) -> None:
    await run_import(backend, write(tmp_path / "c.json", fx.chatgpt_messy()))
    s = (await sessions_by_source(backend))["conv-code"]
    assert [m.role for m in s.messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    call = s.messages[1].tool_calls[0]  # type: ignore[index]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "python",
        {"code": "print(2**100)"},
    )
    assert (s.messages[2].tool_call_id, s.messages[2].name) == (call.id, "python")
    assert (
        s.messages[7].content == "quoted text" and not s.messages[7].tool_call_id
    )  # answers no call


async def test_chatgpt_dangling_or_missing_current_node_and_cycles(
    backend: Backend, tmp_path: Path
) -> None:
    await run_import(backend, write(tmp_path / "c.json", fx.chatgpt_messy()))
    got = await sessions_by_source(backend)
    assert said(got["conv-dangling"]) == [("user", "Pick one"), ("assistant", "newest leaf")]
    assert said(got["conv-cycle"]) == [("user", "in a cycle"), ("assistant", "still in it")]


@given(
    st.dictionaries(
        st.sampled_from("abcdefgh"),
        st.tuples(st.one_of(st.none(), st.sampled_from("abcdefghz")), st.integers(0, 5)),
        max_size=8,
    ),
    st.one_of(st.none(), st.sampled_from("abcdefghz")),
)
def test_any_tree_gives_a_parent_linked_path_and_ends(
    nodes: dict[str, tuple[str | None, int]], current: str | None
) -> None:
    """Whatever the links (cycles, dangling parents, no current node), the walk ends
    and each node of the path is the parent of the next."""
    mapping = {k: {"id": k, "parent": p, "t": t} for k, (p, t) in nodes.items()}
    kids: dict[str, list[str]] = {}
    for k, (p, _) in nodes.items():
        kids.setdefault(str(p), []).append(k)
    path = branch(
        mapping,
        current,
        lambda n: n["parent"],
        lambda n: kids.get(n["id"], []),
        lambda n: float(n["t"]),
    )
    assert len({n["id"] for n in path}) == len(path)
    assert all(path[i + 1]["parent"] == path[i]["id"] for i in range(len(path) - 1))
    if current in mapping:
        assert path[-1]["id"] == current
    assert bool(path) == bool(mapping)


async def test_claude_tool_use_attachments_old_format_and_empty(
    backend: Backend, tmp_path: Path
) -> None:
    report = await run_import(backend, write(tmp_path / "conversations.json", fx.claude_messy()))
    assert (report.conversations, report.empty, report.unknown_content) == (
        3,
        1,
        {"token_budget": 1},
    )
    got = await sessions_by_source(backend)
    s = got["c-tools"]
    assert said(s) == [
        ("user", "Wie ist das Wetter?"),
        ("assistant", "Ich schaue nach."),
        ("tool", "21 °C, sonnig"),
        ("assistant", "Es sind 21 °C."),
    ]
    assert s.messages[1].metadata["thinking"] == "Let me think."
    call = s.messages[1].tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_1",
        "web_search",
        {"query": "Wetter Zürich"},
    )
    assert (s.messages[2].tool_call_id, s.messages[2].name) == ("toolu_1", "web_search")
    assert s.messages[0].metadata["attachments"][0]["extracted_content"] == "Zürich, CH"
    old = got["c-old"]
    assert said(old) == [("user", "text only, no blocks"), ("assistant", "an answer")]
    assert old.started_at == "2023-12-31T22:00:00.000Z"  # +02:00 in the export


async def test_open_webui_list_export_branches_flags_and_tags(
    backend: Backend, tmp_path: Path
) -> None:
    await run_import(backend, write(tmp_path / "chats.json", fx.openwebui_messy()))
    got = await sessions_by_source(backend)
    w = got["w-branch"]
    assert said(w) == [
        ("user", "Erzähl einen Witz"),
        ("assistant", "Warum… 🤡"),
        ("user", "Noch einer"),
    ]
    assert w.pinned and w.tags == ["witze"] and w.metadata["source"] == "openwebui"
    d = got["w-dangling"]
    assert said(d) == [("user", "hi"), ("assistant", "newer leaf")] and d.archived


async def test_claude_export_with_parent_links_keeps_the_newest_branch(
    backend: Backend, tmp_path: Path
) -> None:
    """Claude exports that carry ``parent_message_uuid`` list every branch, edited
    prompts included: only the newest leaf's path is the conversation."""

    def msg(uid: str, parent: str, sender: str, text: str, at: str) -> dict[str, object]:
        return {
            "uuid": uid,
            "parent_message_uuid": parent,
            "sender": sender,
            "text": text,
            "content": [{"type": "text", "text": text}],
            "created_at": at,
        }

    root = "00000000-0000-4000-8000-000000000000"
    conv = {
        "uuid": "c-branches",
        "name": "Edited prompt",
        "created_at": "2025-05-01T00:00:00Z",
        "chat_messages": [
            msg("h1", root, "human", "first try", "2025-05-01T00:00:01Z"),
            msg("a1", "h1", "assistant", "answer to the first try", "2025-05-01T00:00:02Z"),
            msg("h2", root, "human", "edited prompt", "2025-05-01T00:01:00Z"),
            msg("a2", "h2", "assistant", "answer to the edit", "2025-05-01T00:01:05Z"),
        ],
    }
    await run_import(backend, write(tmp_path / "conversations.json", [conv]))
    s = (await sessions_by_source(backend))["c-branches"]
    assert said(s) == [("user", "edited prompt"), ("assistant", "answer to the edit")]
