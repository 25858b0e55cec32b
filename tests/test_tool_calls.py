"""Tool calls in the message model (SPEC §10): stored, folded, loaded, saved, served.

The backend tests run on every backend of the conformance suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog.backend import Backend
from eventlog.backends.file.store import Store
from eventlog.errors import InvalidRequest
from eventlog.events import MessageAppendedData, ToolCall, ToolFunction, decoder, encoder
from eventlog.fold import fold
from eventlog.requests import (
    AppendRequest,
    ExportRequest,
    LoadRequest,
    SaveMessage,
    SaveRequest,
    StartRequest,
    parse,
)
from tests.conftest import Api

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
}


def _tool_turn(sid: str) -> list[AppendRequest]:
    return [
        parse(AppendRequest, {"session_id": sid, "role": "user", "content": "Weather in Zürich?"}),
        parse(
            AppendRequest,
            {"session_id": sid, "role": "assistant", "content": "", "tool_calls": [CALL]},
        ),
        parse(
            AppendRequest,
            {
                "session_id": sid,
                "role": "tool",
                "content": '{"temp": 21}',
                "tool_call_id": "call_1",
                "name": "get_weather",
            },
        ),
        parse(AppendRequest, {"session_id": sid, "role": "assistant", "content": "21 °C."}),
    ]


async def test_tool_fields_are_stored_and_loaded(backend: Backend) -> None:
    sid = (await backend.start(StartRequest())).session_id
    for req in _tool_turn(sid):
        await backend.append(req)
    msgs = [
        msgspec.to_builtins(m)
        for m in (await backend.load(LoadRequest(session_id=sid))).session.messages
    ]
    assert msgs[1]["tool_calls"] == [CALL] and msgs[1]["content"] == ""
    assert (msgs[2]["tool_call_id"], msgs[2]["name"]) == ("call_1", "get_weather")
    # messages without tool traffic keep the JSON they always had: no null tool keys
    assert set(msgs[0]) == {"role", "content", "timestamp", "metadata", "message_id", "status"}
    assert "tool_calls" not in msgs[2] and "tool_call_id" not in msgs[1]


async def test_tool_fields_survive_an_events_export_and_import(
    backend: Backend, tmp_path: Path
) -> None:
    sid = (await backend.start(StartRequest())).session_id
    for req in _tool_turn(sid):
        await backend.append(req)
    before = (await backend.load(LoadRequest(session_id=sid))).session
    data = b"".join(
        [c async for c in await backend.export(ExportRequest(session_id=sid, format="events"))]
    )
    await backend.delete(sid)
    assert await backend.import_events(data) == [sid]
    assert (await backend.load(LoadRequest(session_id=sid))).session.messages == before.messages


async def test_save_appends_tool_messages_and_records_changed_calls_as_edits(
    backend: Backend,
) -> None:
    sid = (await backend.start(StartRequest())).session_id
    listed: list[dict[str, Any]] = [
        {"role": "user", "content": "hi", "message_id": "u1"},
        {"role": "assistant", "content": "", "message_id": "a1", "tool_calls": [CALL]},
        {"role": "tool", "content": "sunny", "message_id": "t1", "tool_call_id": "call_1"},
    ]
    r = await backend.save(parse(SaveRequest, {"session_id": sid, "messages": listed}))
    assert (r.appended, r.edited) == (3, 0)
    # the same list again changes nothing; leaving the tool fields out keeps them
    r = await backend.save(parse(SaveRequest, {"session_id": sid, "messages": listed}))
    bare = [{k: v for k, v in m.items() if k not in ("tool_calls", "tool_call_id")} for m in listed]
    r2 = await backend.save(parse(SaveRequest, {"session_id": sid, "messages": bare}))
    assert (r.appended, r.edited, r2.appended, r2.edited) == (0, 0, 0, 0)
    changed = json.loads(json.dumps(listed))
    changed[1]["tool_calls"][0]["function"]["arguments"] = '{"city": "Bern"}'
    r = await backend.save(parse(SaveRequest, {"session_id": sid, "messages": changed}))
    assert (r.appended, r.edited) == (0, 1)
    s = (await backend.load(LoadRequest(session_id=sid))).session
    assert s.messages[1].tool_calls == [
        ToolCall("call_1", ToolFunction("get_weather", '{"city": "Bern"}'))
    ]
    assert s.messages[2].tool_call_id == "call_1"


@pytest.mark.parametrize(
    ("message", "field", "says"),
    [
        ({"role": "user", "content": "x", "tool_calls": [CALL]}, "tool_calls", "only an assistant"),
        (
            {"role": "assistant", "content": "x", "tool_call_id": "c"},
            "tool_call_id",
            "only a tool message",
        ),
        ({"role": "user", "content": "x", "name": "f"}, "name", "only a tool message"),
        (
            {"role": "assistant", "content": "", "tool_calls": [CALL, CALL]},
            "tool_calls",
            "appears twice",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {"a": 1}}}],
            },
            "tool_calls[0].function.arguments",
            "Expected `str`",
        ),
        (
            {"role": "assistant", "content": "", "tool_calls": [{**CALL, "type": "code"}]},
            "tool_calls[0].type",
            "function",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "", "function": CALL["function"]}],
            },
            "tool_calls[0].id",
            "length",
        ),
    ],
)
def test_bad_tool_fields_are_refused_naming_the_field(
    message: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse(AppendRequest, {"session_id": "s", **message})
    assert e.value.field == field and says in e.value.message
    with pytest.raises(InvalidRequest) as e:
        parse(SaveRequest, {"session_id": "s", "messages": [message]})
    assert e.value.field == f"messages[0].{field}" and says in e.value.message


def test_null_and_empty_tool_fields_mean_none() -> None:
    """OpenAI SDK dumps carry ``"tool_calls": null`` (or ``[]``) on every message."""
    for calls in (None, []):
        req = parse(
            AppendRequest, {"session_id": "s", "role": "user", "content": "x", "tool_calls": calls}
        )
        assert not req.tool_calls
    SaveMessage(role="user", content="x", tool_calls=None)


def test_journal_lines_without_tool_fields_are_unchanged_and_old_lines_still_decode() -> None:
    """Journals written before tool calls existed must decode, and re-encode byte for byte."""
    old = (
        b'{"type":"message.appended","seq":2,"id":"e","ts":"2026-01-01T00:00:00.000Z","data":'
        b'{"message_id":"m","role":"user","content":"hi","timestamp":"2026-01-01T00:00:00.000Z",'
        b'"metadata":{},"status":"complete"}}'
    )
    assert encoder.encode(decoder.decode(old)) == old
    data = MessageAppendedData(
        "m", "assistant", "", "t", {}, tool_calls=[ToolCall("c", ToolFunction("f", "{}"))]
    )
    assert (
        b'"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"},"type":"function"}]'
        in encoder.encode(data)
    )
    assert b"tool_call_id" not in encoder.encode(data)


def test_snapshot_plus_tail_equals_a_fold_from_the_start_with_tool_calls(store: Store) -> None:
    sid = store.start(StartRequest()).session_id
    reqs = _tool_turn(sid)
    for req in reqs[:2]:
        store.write(req)
    store.compact()
    for req in reqs[2:]:
        store.write(req)
    loaded = store.load(LoadRequest(session_id=sid)).session
    assert loaded == fold(sid, store.events(sid, 0))
    assert loaded.messages[1].tool_calls and loaded.messages[2].name == "get_weather"


async def test_http_and_websocket_appends_carry_tool_calls_to_subscribers(api: Api) -> None:
    sid = await api.start()
    ws = await api.ws()
    await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": 1})
    assert (await ws.receive_json())["op"] == "subscribed"
    out = await api.ok(
        "append", {"session_id": sid, "role": "assistant", "content": "", "tool_calls": [CALL]}
    )
    assert out["message"]["tool_calls"] == [CALL]
    await ws.send_json(
        {
            "op": "append",
            "req_id": 1,
            "session_id": sid,
            "role": "tool",
            "content": "21",
            "tool_call_id": "call_1",
            "name": "get_weather",
        }
    )
    frames = [await ws.receive_json() for _ in range(3)]
    events = [f for f in frames if f["op"] == "event"]
    assert events[0]["data"]["tool_calls"] == [CALL]
    assert (events[1]["data"]["tool_call_id"], events[1]["data"]["name"]) == (
        "call_1",
        "get_weather",
    )
    status, err = await api.post(
        "append", {"session_id": sid, "role": "user", "content": "", "tool_calls": [CALL]}
    )
    assert status == 400 and err["code"] == "invalid_request" and "tool_calls" in err["error"]
    loaded = (await api.ok("load", {"session_id": sid}))["session"]["messages"]
    assert loaded[0]["tool_calls"] == [CALL] and loaded[1]["tool_call_id"] == "call_1"
    await ws.close()
