"""The ``openai`` and ``sharegpt`` exports load unchanged where they are used (SPEC §11):
OpenAI's fine-tuning chat format with tool calls, LLaMA-Factory's sharegpt loader, and
Hugging Face ``datasets`` (run offline)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import UNSET

from eventlog.backends.file.store import Store
from eventlog.events import ToolCall, ToolFunction
from eventlog.formats import sharegpt_turns
from eventlog.model import Message, Session, Stats
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    ExportRequest,
    LoadRequest,
    StartRequest,
    parse,
)
from tests.conftest import PYTHON, ROOT


def _call(cid: str, name: str, args: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


# A messy session: greeting first, a system prompt, two user messages in a row, text
# before a tool call, parallel calls, a still-streaming message and an unanswered prompt.
MESSY: list[dict[str, Any]] = [
    {"role": "assistant", "content": "Hi! I'm the weather bot."},
    {"role": "system", "content": "You answer about the weather. Antworte kurz. 天气"},
    {"role": "user", "content": "Hello"},
    {"role": "user", "content": "Weather in Zürich and Bern?"},
    {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            _call("c1", "weather", '{"city": "Zürich"}'),
            _call("c2", "weather", '{"city": "Bern"}'),
        ],
    },
    {"role": "tool", "content": '{"t": 21}', "tool_call_id": "c1", "name": "weather"},
    {"role": "tool", "content": '{"t": 19}', "tool_call_id": "c2", "name": "weather"},
    {"role": "assistant", "content": "Zürich 21 °C, Bern 19 °C. 🌤"},
    {"role": "user", "content": "And Geneva?"},
    {"role": "assistant", "content": "", "tool_calls": [_call("c3", "weather", "not json")]},
    {"role": "tool", "content": "no data"},  # stored without its call id
    {"role": "assistant", "content": "No data for Geneva."},
    {"role": "user", "content": "thanks"},
]


def _store_with_sessions(data: Path) -> Store:
    store = Store(data)
    sid = store.start(StartRequest(title="messy")).session_id
    for m in MESSY:
        store.write(parse(AppendRequest, {"session_id": sid, **m}))
    store.write(
        AppendRequest(
            session_id=sid, role="assistant", content="typing…", partial=True, message_id="p"
        )
    )
    plain = store.start(StartRequest()).session_id
    for role, text in [
        ("user", "2+2?"),
        ("assistant", "4"),
        ("user", "and 3+3?"),
        ("assistant", "6"),
    ]:
        store.write(AppendRequest(session_id=plain, role=role, content=text))  # type: ignore[arg-type]
    store.start(StartRequest())  # empty: no line in either export
    return store


def _export(store: Store, fmt: str, out: Path) -> list[dict[str, Any]]:
    out.write_bytes(b"".join(store.export(ExportRequest(all=True, format=fmt))))  # type: ignore[arg-type]
    return [json.loads(line) for line in out.read_text("utf-8").splitlines()]


def check_openai_chat_example(example: dict[str, Any]) -> None:
    """OpenAI's fine-tuning checks for one chat example (its documented rules)."""
    assert set(example) <= {"messages", "tools", "parallel_tool_calls"}
    msgs = example["messages"]
    assert msgs and any(m["role"] == "assistant" for m in msgs)
    open_calls: set[str] = set()
    for m in msgs:
        assert m["role"] in ("system", "user", "assistant", "tool"), m
        assert set(m) <= {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}, m
        if m["role"] == "assistant" and "tool_calls" in m:
            for c in m["tool_calls"]:
                assert c["type"] == "function" and isinstance(c["function"]["arguments"], str)
                assert c["function"]["name"] and c["id"]
                open_calls.add(c["id"])
            assert isinstance(m.get("content", ""), str)
        else:
            assert isinstance(m["content"], str), m
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_calls, m  # every output answers a call
            open_calls.discard(m["tool_call_id"])


def llamafactory_sharegpt_accepts(example: dict[str, Any]) -> bool:
    """LLaMA-Factory's ``SharegptDatasetConverter`` test, with its default tags: after an
    optional leading system turn, even turns are human|observation, odd ones
    gpt|function_call, and the count is even; otherwise it drops the row as broken."""
    msgs = example["conversations"]
    if msgs and msgs[0]["from"] == "system":
        msgs = msgs[1:]
    accept = (("human", "observation"), ("gpt", "function_call"))
    if any(m["from"] not in accept[i % 2] for i, m in enumerate(msgs)):
        return False
    return len(msgs) % 2 == 0 and len(msgs) > 0


def test_openai_export_passes_the_fine_tuning_checks_with_tool_calls(tmp_path: Path) -> None:
    with _store_with_sessions(tmp_path / "d") as store:
        rows = _export(store, "openai", tmp_path / "o.jsonl")
    assert len(rows) == 2
    for row in rows:
        check_openai_chat_example(row)
    msgs = rows[0]["messages"] if len(rows[0]["messages"]) > 4 else rows[1]["messages"]
    calls = [m for m in msgs if "tool_calls" in m]
    assert calls[0]["content"] == "Let me look." and "content" not in calls[1]
    tools = [m for m in msgs if m["role"] == "tool"]
    assert [t["tool_call_id"] for t in tools] == ["c1", "c2", "c3"]
    assert tools[0]["name"] == "weather" and "typing…" not in json.dumps(msgs, ensure_ascii=False)


def test_sharegpt_export_alternates_strictly_as_llamafactory_reads_it(tmp_path: Path) -> None:
    with _store_with_sessions(tmp_path / "d") as store:
        rows = _export(store, "sharegpt", tmp_path / "s.jsonl")
    assert len(rows) == 2 and all(llamafactory_sharegpt_accepts(r) for r in rows)
    messy = next(r for r in rows if r["system"])
    assert messy["system"].startswith("You answer about the weather")
    tags = [t["from"] for t in messy["conversations"]]
    assert tags == [
        "human",
        "function_call",
        "observation",
        "gpt",
        "human",
        "function_call",
        "observation",
        "gpt",
    ]
    conv = messy["conversations"]
    assert conv[0]["value"] == "Hello\n\nWeather in Zürich and Bern?"  # merged same-role turns
    assert json.loads(conv[1]["value"]) == [
        {"name": "weather", "arguments": {"city": "Zürich"}},
        {"name": "weather", "arguments": {"city": "Bern"}},
    ]
    assert json.loads(conv[5]["value"]) == {"name": "weather", "arguments": "not json"}


@pytest.mark.parametrize(
    "roles",
    [
        ["assistant"],
        ["user"],
        ["tool", "user", "assistant"],
        ["user", "assistant", "assistant", "tool", "user"],
        ["user", "tool", "tool", "assistant", "user", "user", "assistant", "system"],
    ],
)
def test_any_role_sequence_gives_alternating_sharegpt_turns(
    roles: list[str], tmp_path: Path
) -> None:
    with Store(tmp_path / "d") as store:
        sid = store.start(StartRequest()).session_id
        for i, role in enumerate(roles):
            store.write(AppendRequest(session_id=sid, role=role, content=f"m{i}"))  # type: ignore[arg-type]
        session = store.load(LoadRequest(session_id=sid)).session
    _, conv = sharegpt_turns(session)
    assert not conv or llamafactory_sharegpt_accepts({"conversations": conv})


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["user", "assistant", "system", "tool"]),
            st.booleans(),
            st.text(max_size=5),
        ),
        max_size=14,
    )
)
def test_sharegpt_turns_alternate_for_any_conversation(turns: list[tuple[str, bool, str]]) -> None:
    """Whatever the roles, calls and contents, LLaMA-Factory accepts the row (or there
    is no row), and the system prompt never lands among the turns."""
    msgs = [
        Message(
            role,
            text,
            "2026-01-01T00:00:00.000Z",
            {},
            f"m{i}",
            tool_calls=[ToolCall(f"c{i}", ToolFunction("f", "{}"))]
            if calls and role == "assistant"
            else UNSET,
        )
        for i, (role, calls, text) in enumerate(turns)
    ]
    session = Session("s", "U", "t", "t", msgs, {}, Stats(), [], 1)
    _, conv = sharegpt_turns(session)
    assert not conv or llamafactory_sharegpt_accepts({"conversations": conv})
    assert all(c["from"] != "system" for c in conv)


def test_both_exports_load_in_hugging_face_datasets_offline(tmp_path: Path) -> None:
    with _store_with_sessions(tmp_path / "d") as store:
        _export(store, "openai", tmp_path / "openai.jsonl")
        _export(store, "sharegpt", tmp_path / "sharegpt.jsonl")
    # a child process: ``datasets`` reads its offline switches at import time
    code = (
        "import json, sys, datasets\n"
        "o = datasets.load_dataset('json', data_files=sys.argv[1], split='train', cache_dir=sys.argv[3])\n"
        "s = datasets.load_dataset('json', data_files=sys.argv[2], split='train', cache_dir=sys.argv[3])\n"
        "print(json.dumps({'o': o.to_list(), 's': s.to_list()}))\n"
    )
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    out = subprocess.run(
        [
            PYTHON,
            "-c",
            code,
            str(tmp_path / "openai.jsonl"),
            str(tmp_path / "sharegpt.jsonl"),
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert len(loaded["o"]) == 2 and len(loaded["s"]) == 2
    msgs = max((r["messages"] for r in loaded["o"]), key=len)
    call = next(m for m in msgs if m.get("tool_calls"))
    assert call["tool_calls"][0]["function"]["name"] == "weather"
    assert [m["tool_call_id"] for m in msgs if m["role"] == "tool"] == ["c1", "c2", "c3"]
    assert all(llamafactory_sharegpt_accepts(r) for r in loaded["s"])


def test_export_into_a_closed_pipe_prints_no_traceback(tmp_path: Path) -> None:
    """``sessionlog export … | head`` ended in a BrokenPipeError traceback."""
    with Store(tmp_path / "d") as store:
        for _ in range(300):
            sid = store.start(StartRequest()).session_id
            store.write(AppendRequest(session_id=sid, role="user", content="x" * 2000))
    cmd = f"{PYTHON} -m server export --all --format openai --data {tmp_path / 'd'} | head -c 10"
    out = subprocess.run(
        ["bash", "-c", cmd + "; echo rc=${PIPESTATUS[0]}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Traceback" not in out.stderr and "Error" not in out.stderr, out.stderr
    assert out.stdout.startswith('{"messages') and "rc=141" in out.stdout


def test_complete_messages_only(tmp_path: Path) -> None:
    """A message still streaming is not training data; once completed it is."""
    with Store(tmp_path / "d") as store:
        sid = store.start(StartRequest()).session_id
        store.write(AppendRequest(session_id=sid, role="user", content="q"))
        store.write(
            AppendRequest(
                session_id=sid, role="assistant", content="a", partial=True, message_id="m"
            )
        )
        assert _export(store, "sharegpt", tmp_path / "1.jsonl") == []
        store.write(CompleteRequest(session_id=sid, message_id="m", content="answer"))
        rows = _export(store, "sharegpt", tmp_path / "2.jsonl")
    assert rows[0]["conversations"][1] == {"from": "gpt", "value": "answer"}
