"""Imports of ChatGPT, Claude.ai and Open WebUI exports (SPEC §11): the real files in
``../shared/import-samples`` (read in place) and messy fixtures in the same formats."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlog.backend import Backend
from eventlog.backends.file.backend import FileBackend
from eventlog.imports import ImportFailed, ImportReport, import_files
from eventlog.imports.tree import branch
from eventlog.model import Message, Session
from eventlog.requests import AppendRequest, ExportRequest, ListRequest, LoadRequest
from tests import import_fixtures as fx
from tests.conftest import PYTHON, ROOT, Api, tree
from tests.test_training_exports import check_openai_chat_example, llamafactory_sharegpt_accepts

SAMPLES = ROOT.parent / "shared" / "import-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="../shared/import-samples is absent"
)


def _write(path: Path, value: Any) -> Path:
    path.write_bytes(
        value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    )
    return path


async def _import(b: Backend, *paths: Path, replace: bool = False) -> ImportReport:
    return await import_files(b, [(str(p), p.name) for p in paths], replace=replace)


async def _sessions(b: Backend) -> dict[str, Session]:
    """Every session, keyed by its source conversation id."""
    out = {}
    for row in (await b.list(ListRequest(limit=1000, archived=None))).sessions:
        s = (await b.load(LoadRequest(session_id=row.session_id))).session
        out[s.metadata["source_id"]] = s
    return out


def _kept(conv: dict[str, Any]) -> int:
    """Messages of a bulk conversation that an import keeps (the regenerated "alt"
    answers and the hidden system node are not on the branch shown)."""
    return sum(
        1
        for n in conv["mapping"].values()
        if n["message"]
        and n["message"]["content"]["parts"][0]
        and not n["message"]["content"]["parts"][0].startswith("alt ")
    )


def _said(s: Session) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in s.messages]


# -- the real exports ---------------------------------------------------------------


@needs_samples
async def test_real_chatgpt_code_interpreter_export(backend: Backend) -> None:
    report = await _import(backend, SAMPLES / "c2g_conversations.json")
    assert (report.conversations, len(report.imported), report.empty) == (1, 1, 0)
    s = (await _sessions(backend))["966da5c4-5bb7-4e4d-ab6d-a7316b96266e"]
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
    await _import(backend, SAMPLES / "owi_gpt_example.json")
    s = (await _sessions(backend))["6857150a-cd20-800f-a5f7-d2404f94b935"]
    roles = [m.role for m in s.messages]
    assert roles == ["user", "assistant"] * 5  # hidden system and context nodes left out
    assert s.messages[0].content == "Can you explain how photosynthesis works in simple terms?"
    assert s.messages[1].timestamp < s.messages[0].timestamp  # the answer's own (earlier) time
    assert "1 to 2 paragraphs" in s.metadata["custom_instructions"]["user_instructions"]
    assert s.messages[1].metadata["model"] == "gpt-4o"


@needs_samples
async def test_real_claude_exports_keep_thinking_out_of_the_content(backend: Backend) -> None:
    await _import(
        backend, SAMPLES / "ad_conversations.json", SAMPLES / "owi_claude_thinking_example.json"
    )
    got = await _sessions(backend)
    dog = got["b49c0fc0-85d8-475c-bd2d-ee89f31f592c"]
    assert dog.title == "Bleep bloop" and dog.metadata["source"] == "claude"
    answer = dog.messages[1]
    assert answer.content.startswith("Dog saliva does contain some antibacterial compounds")
    assert "The user is asking" not in answer.content
    assert answer.metadata["thinking"].startswith("The user is asking about the belief")
    demo = got["11111111-2222-3333-4444-555555555555"]  # its `text` fields are empty
    assert _said(demo) == [
        ("user", "Can you greet me?"),
        ("assistant", "Hello there! It's great to hear from you."),
    ]
    assert "warmly" in demo.messages[1].metadata["thinking"]


@needs_samples
async def test_real_claude_export_with_redacted_text_skips_and_counts_empty_ones(
    backend: Backend,
) -> None:
    report = await _import(backend, SAMPLES / "owi_claude_example.json")
    assert report.conversations == 85 and report.empty + len(report.imported) == 85
    assert report.empty > 80 and report.imported  # the file's text is redacted to ""


@needs_samples
async def test_real_open_webui_export_without_an_id(backend: Backend) -> None:
    report = await _import(backend, SAMPLES / "owi_webui-json.json")
    assert len(report.imported) == 1
    (s,) = (await _sessions(backend)).values()
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
    first = await _import(backend, *files)
    assert len(first.imported) == 6
    before = await _sessions(backend)
    again = await _import(backend, *files)
    assert again.imported == [] and sorted(again.skipped) == sorted(first.imported)
    assert await _sessions(backend) == before


# -- messy fixtures -----------------------------------------------------------------


async def test_chatgpt_branches_hidden_nodes_images_thoughts_and_archive(
    backend: Backend, tmp_path: Path
) -> None:
    report = await _import(backend, _write(tmp_path / "conversations.json", fx.chatgpt_messy()))
    assert (report.conversations, report.empty, len(report.imported)) == (5, 1, 4)
    assert report.unknown_content == {"fancy_new_widget": 1} and report.attachments == 1
    got = await _sessions(backend)
    s = got["conv-branches"]
    assert _said(s) == [
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
    await _import(backend, _write(tmp_path / "c.json", fx.chatgpt_messy()))
    s = (await _sessions(backend))["conv-code"]
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
    await _import(backend, _write(tmp_path / "c.json", fx.chatgpt_messy()))
    got = await _sessions(backend)
    assert _said(got["conv-dangling"]) == [("user", "Pick one"), ("assistant", "newest leaf")]
    assert _said(got["conv-cycle"]) == [("user", "in a cycle"), ("assistant", "still in it")]


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
    report = await _import(backend, _write(tmp_path / "conversations.json", fx.claude_messy()))
    assert (report.conversations, report.empty, report.unknown_content) == (
        3,
        1,
        {"token_budget": 1},
    )
    got = await _sessions(backend)
    s = got["c-tools"]
    assert _said(s) == [
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
    assert _said(old) == [("user", "text only, no blocks"), ("assistant", "an answer")]
    assert old.started_at == "2023-12-31T22:00:00.000Z"  # +02:00 in the export


async def test_open_webui_list_export_branches_flags_and_tags(
    backend: Backend, tmp_path: Path
) -> None:
    await _import(backend, _write(tmp_path / "chats.json", fx.openwebui_messy()))
    got = await _sessions(backend)
    w = got["w-branch"]
    assert _said(w) == [
        ("user", "Erzähl einen Witz"),
        ("assistant", "Warum… 🤡"),
        ("user", "Noch einer"),
    ]
    assert w.pinned and w.tags == ["witze"] and w.metadata["source"] == "openwebui"
    d = got["w-dangling"]
    assert _said(d) == [("user", "hi"), ("assistant", "newer leaf")] and d.archived


async def test_zip_exports_with_split_chatgpt_files_and_claude(
    backend: Backend, tmp_path: Path
) -> None:
    bulk = fx.chatgpt_bulk(30)
    gpt_zip = fx.zip_export(
        {
            "conversations-000.json": bulk[:20],
            "conversations-001.json": bulk[20:],
            "chat.html": b"<html></html>",
            "user.json": {"id": "user-1"},
        }
    )
    claude_zip = fx.zip_export(
        {"conversations.json": fx.claude_messy(), "users.json": [], "projects.json": []}
    )
    report = await _import(
        backend, _write(tmp_path / "gpt.zip", gpt_zip), _write(tmp_path / "claude.zip", claude_zip)
    )
    assert len(report.imported) == 32 and report.conversations == 33
    s = (await _sessions(backend))[bulk[3]["conversation_id"]]
    assert len(s.messages) == _kept(bulk[3]) and not any(
        m.content.startswith("alt ") for m in s.messages
    )


async def test_a_five_megabyte_export(backend: Backend, tmp_path: Path) -> None:
    data = fx.chatgpt_export_of_size(5 * 1024 * 1024, seed=5)
    assert len(data) >= 5 * 1024 * 1024
    report = await _import(backend, _write(tmp_path / "conversations.json", data))
    n = len(json.loads(data))
    assert len(report.imported) == report.conversations == n
    total = (await backend.list(ListRequest(limit=1))).total_sessions
    assert total == n


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (
            b'[{"mapping": {}, "id": "ok"}, {"chat_messages": [',
            "conversation 2: the JSON is malformed",
        ),
        (b"[1, 2]", "conversation 1: expected a conversation object"),
        (b'[{"title": "x"}]', "conversation 1: not a ChatGPT"),
        (b'[{"mapping": [1], "id": "c9"}]', "conversation 1 (id c9): `mapping` is not an object"),
        (b"hello", "the first byte: expected JSON"),
        (b"", "the start: the file is empty"),
        (b"PK\x03\x04garbage", "the zip archive: it cannot be read"),
    ],
)
async def test_a_malformed_file_names_the_file_and_place_and_writes_nothing(
    backend: Backend, tmp_path: Path, content: bytes, where: str
) -> None:
    good = _write(tmp_path / "good.json", fx.chatgpt_bulk(3))
    bad = _write(tmp_path / "bad.json", content)
    with pytest.raises(ImportFailed) as e:
        await _import(backend, good, bad)
    assert e.value.message.startswith(f"cannot import {bad.name}: {where}"), e.value.message
    assert "Nothing was imported" in e.value.message
    assert (await backend.list(ListRequest())).total_sessions == 0


async def test_a_zip_without_conversations_is_refused(backend: Backend, tmp_path: Path) -> None:
    z = _write(tmp_path / "photos.zip", fx.zip_export({"a.txt": b"x"}))
    with pytest.raises(ImportFailed, match=r"holds no conversations\.json"):
        await _import(backend, z)


async def test_replace_rewrites_a_session_changed_since_its_import(
    backend: Backend, tmp_path: Path
) -> None:
    convs = fx.chatgpt_bulk(2)
    f = _write(tmp_path / "c.json", convs)
    sid = (await _import(backend, f)).imported[0]
    await backend.append(AppendRequest(session_id=sid, role="user", content="added later"))
    again = await _import(backend, f)
    assert len(again.skipped) == 2 and sid in again.skipped and again.imported == []
    replaced = await _import(backend, f, replace=True)
    assert sorted(replaced.replaced) == sorted(replaced.imported) and sid in replaced.replaced
    s = (await backend.load(LoadRequest(session_id=sid))).session
    assert len(s.messages) == _kept(convs[0]) and s.messages[-1].content != "added later"


async def test_the_same_conversation_twice_in_one_import_is_written_once(
    backend: Backend, tmp_path: Path
) -> None:
    f = _write(tmp_path / "a.json", fx.chatgpt_bulk(2))
    g = _write(tmp_path / "b.json", fx.chatgpt_bulk(3))
    report = await _import(backend, f, g)
    assert len(report.imported) == 3 and report.duplicates == 2


# -- the server, the command line ------------------------------------------------------


async def test_http_import_of_a_zip_then_again_then_replace(api: Api) -> None:
    body = fx.zip_export({"conversations.json": fx.chatgpt_messy()})
    headers = {"Content-Type": "application/zip"}
    status, out = await api.post("import", data=body, headers=headers)
    assert status == 200 and len(out["imported"]) == 4 and out["empty"] == 1
    status, out = await api.post("import", data=body, headers=headers)
    assert status == 200 and out["imported"] == [] and len(out["skipped"]) == 4
    status, out = await api.post("/api/sessions/import?replace=true", data=body, headers=headers)
    assert status == 200 and len(out["replaced"]) == 4


async def test_http_import_streams_progress_lines_then_the_result(api: Api) -> None:
    body = io.BytesIO(json.dumps(fx.chatgpt_bulk(40)).encode())
    async with api.client.post(
        "/api/sessions/import?progress=true",
        data=body,
        headers={"Content-Type": "application/json"},
    ) as r:
        lines = [json.loads(line) for line in (await r.read()).splitlines()]
    assert r.status == 200 and lines[-1]["success"] is True and len(lines[-1]["imported"]) == 40
    assert lines[-2] == {"phase": "writing", "done": 40, "total": 40}
    assert all(set(p) == {"phase", "done", "total"} for p in lines[:-1])


async def test_http_import_of_a_malformed_file_is_a_400_naming_it(api: Api, data_dir: Path) -> None:
    before = tree(data_dir)
    status, out = await api.post(
        "/api/sessions/import?filename=conversations.json",
        data=b'[{"mapping": {}}, {"mapping": 5}]',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and out["code"] == "invalid_request"
    assert out["error"].startswith("cannot import conversations.json: conversation 2")
    assert tree(data_dir) == before
    async with api.client.post(
        "/api/sessions/import?progress=1", data=b"[{", headers={"Content-Type": "application/json"}
    ) as r:
        last = json.loads((await r.read()).splitlines()[-1])
    assert last["success"] is False and last["code"] == "invalid_request" and last["status"] == 400


def test_cli_imports_several_files_and_reports_skips(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a = _write(tmp_path / "conversations.json", fx.chatgpt_messy())
    b = _write(tmp_path / "claude.zip", fx.zip_export({"conversations.json": fx.claude_messy()}))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "server", "import", "--data", str(data), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = run(str(a), str(b))
    assert out.returncode == 0 and len(out.stdout.split()) == 6, out.stderr
    assert "imported 6 session(s)" in out.stderr and "left out 2 empty" in out.stderr
    again = run(str(a), str(b))
    assert (
        again.returncode == 0
        and again.stdout == ""
        and "skipped 6 that already exist" in again.stderr
    )
    replaced = run("--replace", str(a))
    assert replaced.returncode == 0 and "replaced 4" in replaced.stderr
    bad = _write(tmp_path / "broken.json", b'[{"mapping": {}}, ')
    before = tree(data)
    out = run(str(bad))
    assert out.returncode == 2 and "cannot import " + str(bad) + ": conversation 2" in out.stderr
    assert "Traceback" not in out.stderr and tree(data) == before


def test_cli_imports_standard_input(tmp_path: Path) -> None:
    f = _write(tmp_path / "c.json", fx.chatgpt_bulk(2))
    with f.open("rb") as stdin:
        out = subprocess.run(
            [PYTHON, "-m", "server", "import", "--data", str(tmp_path / "d"), "-"],
            cwd=ROOT,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0 and len(out.stdout.split()) == 2, out.stderr


async def test_imported_sessions_are_ordinary_sessions(tmp_path: Path) -> None:
    """Listed, searchable, exportable as an events backup that round-trips."""
    b = FileBackend(tmp_path / "d")
    try:
        await _import(b, _write(tmp_path / "c.json", fx.chatgpt_messy()))
        found = await b.list(ListRequest(query="sicher", archived=None))
        assert [r.title for r in found.sessions] == ["Bild: Katze 🐱"]
        sid = found.sessions[0].session_id
        before = (await b.load(LoadRequest(session_id=sid))).session
        dump = b"".join(
            [c async for c in await b.export(ExportRequest(session_id=sid, format="events"))]
        )
        await b.delete(sid)
        await b.import_events(dump)
        assert (await b.load(LoadRequest(session_id=sid))).session == before
        assert isinstance(before.messages[0], Message)
    finally:
        await b.close()
    await asyncio.sleep(0)


async def test_a_bad_events_backup_among_good_files_writes_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    """Backups were checked only when written: a good one before a bad one got in."""
    good = _write(tmp_path / "c.json", fx.chatgpt_bulk(2))
    line = {
        "session_id": "s1",
        "type": "session.started",
        "seq": 1,
        "id": "e",
        "ts": "2026-01-01T00:00:00.000Z",
        "data": {"user_name": "U", "metadata": {}},
    }
    ok = _write(tmp_path / "ok.jsonl", (json.dumps(line) + "\n").encode())
    bad = _write(
        tmp_path / "bad.jsonl",
        (json.dumps(line) + "\n" + json.dumps({**line, "seq": 3}) + "\n").encode(),
    )
    with pytest.raises(
        ImportFailed, match=r"^cannot import bad\.jsonl: the events export: invalid import: line 2"
    ):
        await _import(backend, good, ok, bad)
    assert (await backend.list(ListRequest())).total_sessions == 0
    report = await _import(backend, good, ok)
    assert len(report.imported) == 3 and "s1" in report.imported
