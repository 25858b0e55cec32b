"""SessionlogSession with the real openai-agents SDK, offline (a scripted model), on a
data directory and on a real server."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, Runner, SessionSettings, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.memory.session import Session, _session_accepts_wrapper
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from eventlog.integrations import loop
from eventlog.integrations.openai_agents import SessionlogSession
from eventlog.integrations.store import backend_for
from eventlog.requests import ListRequest, LoadRequest

from .adapters_helpers import target

__all__ = ["target"]

set_tracing_disabled(True)  # nothing leaves the machine

ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "Wie ist das Wetter in Zürich? 🌧"},
    {"role": "developer", "content": [{"type": "input_text", "text": "be terse"}]},
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "call the weather tool"}],
        "encrypted_content": "gAAAA==",
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "weather",
        "arguments": '{"city": "Zürich"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 11.5}'},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "11.5 °C", "annotations": [], "logprobs": []}],
    },
    {"role": "user", "content": "thanks", "extra": {"nested": [1, 2.5, None, True]}},
]


async def test_items_come_back_as_the_exact_json(target: str) -> None:
    s = SessionlogSession("exact", target)
    assert isinstance(s, Session)
    await s.add_items(ITEMS[:3])
    await s.add_items(ITEMS[3:])
    assert await SessionlogSession("exact", target).get_items() == ITEMS


async def test_get_items_gives_the_latest_n_oldest_first(target: str) -> None:
    s = SessionlogSession("limits", target)
    assert await s.get_items() == [] and await s.get_items(3) == []
    await s.add_items(ITEMS)
    assert await s.get_items(0) == []
    assert await s.get_items(2) == ITEMS[-2:]
    assert await s.get_items(100) == ITEMS
    limited = SessionlogSession("limits", target, session_settings=SessionSettings(limit=3))
    assert await limited.get_items() == ITEMS[-3:]
    assert await limited.get_items(1) == ITEMS[-1:]  # an explicit limit wins
    as_dict = SessionlogSession("limits", target, session_settings={"limit": 2})
    assert await as_dict.get_items() == ITEMS[-2:]


async def test_pop_item_returns_and_removes_the_newest(target: str) -> None:
    s = SessionlogSession("pop", target)
    assert await s.pop_item() is None
    await s.add_items(ITEMS[:3])
    assert await s.pop_item() == ITEMS[2]
    assert await s.get_items() == ITEMS[:2]
    await s.add_items([ITEMS[5]])
    assert await s.pop_item() == ITEMS[5]
    assert await s.pop_item() == ITEMS[1]
    assert await s.pop_item() == ITEMS[0]
    assert await s.pop_item() is None


async def test_concurrent_pops_never_return_the_same_item(target: str) -> None:
    items = [{"role": "user", "content": f"item {i}"} for i in range(12)]
    first = SessionlogSession("race", target)
    await first.add_items(items)
    pops = [SessionlogSession("race", target).pop_item() for _ in range(20)]
    got = await asyncio.gather(*pops)
    popped = [g for g in got if g is not None]
    assert sorted(p["content"] for p in popped) == sorted(i["content"] for i in items)
    assert got.count(None) == 8 and await first.get_items() == []


def test_pops_from_threads_that_each_run_their_own_loop_never_collide(target: str) -> None:
    s = SessionlogSession("threads", target)
    items = [{"role": "user", "content": f"item {i}"} for i in range(16)]
    asyncio.run(s.add_items(items))
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        async def go() -> None:
            for _ in range(5):
                item = await s.pop_item()  # one object, used from several loops
                with lock:
                    results.append(item)

        asyncio.run(go())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    popped = [r["content"] for r in results if r is not None]
    assert sorted(popped) == sorted(i["content"] for i in items)
    assert results.count(None) == 4


async def test_clear_session_clears_only_its_session(target: str) -> None:
    a, b = SessionlogSession("a", target), SessionlogSession("b", target)
    await a.add_items(ITEMS[:2])
    await b.add_items(ITEMS[2:4])
    await a.clear_session()
    assert await a.get_items() == [] and await b.get_items() == ITEMS[2:4]
    await a.add_items([ITEMS[0]])
    assert await a.get_items() == [ITEMS[0]]


async def test_the_sessions_are_ordinary_sessions(target: str) -> None:
    s = SessionlogSession("agent run 1", target)
    await s.add_items(ITEMS)
    await s.pop_item()
    backend = backend_for(target)
    found = await loop.arun(backend.list(ListRequest(query="Zürich Wetter")))
    assert [x.session_id for x in found.sessions] == [s.sessionlog_id]
    assert found.sessions[0].type == "agents"
    session = (await loop.arun(backend.load(LoadRequest(session_id=s.sessionlog_id)))).session
    assert [(m.role, m.content) for m in session.messages][2:5] == [
        ("assistant", "call the weather tool"),
        ("assistant", 'weather({"city": "Zürich"})'),
        ("tool", '{"temp": 11.5}'),
    ]
    # the popped item is still in the journal, marked removed (the store deletes nothing)
    assert session.metadata["agents_removed"] == [session.messages[-1].message_id]


def test_no_parameter_is_named_wrapper() -> None:
    """The SDK passes its RunContextWrapper to sessions that take ``wrapper``; we do not."""
    for name in ("get_items", "add_items", "pop_item", "clear_session", "__init__"):
        assert "wrapper" not in inspect.signature(getattr(SessionlogSession, name)).parameters
    assert not _session_accepts_wrapper(SessionlogSession("w", "unused-dir"))


async def test_a_bad_item_is_refused_before_anything_is_written(target: str) -> None:
    s = SessionlogSession("bad", target)
    with pytest.raises(TypeError, match="must be a dict"):
        await s.add_items([ITEMS[0], "not an item"])  # type: ignore[list-item]
    assert await s.get_items() == []


class ScriptedModel(Model):
    """A model that answers from a script and records what it was sent (offline)."""

    def __init__(self, script: list[list[Any]]) -> None:
        self.script = script
        self.inputs: list[Any] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kw: Any
    ) -> ModelResponse:
        self.inputs.append(input)
        return ModelResponse(output=self.script.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kw: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("this test model does not stream")


def _text(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"11 °C in {city}"


async def test_runner_keeps_history_with_tool_calls_across_runs(target: str) -> None:
    call = ResponseFunctionToolCall(
        id="fc",
        call_id="call_9",
        type="function_call",
        name="weather",
        arguments='{"city": "Bern"}',
    )
    model = ScriptedModel([[call], [_text("11 °C")], [_text("you asked about Bern")]])
    agent = Agent(name="assistant", model=model, tools=[weather])
    session = SessionlogSession("runner", target)
    first = await Runner.run(agent, "weather in Bern?", session=session)
    assert first.final_output == "11 °C"
    second = await Runner.run(agent, "what did I ask?", session=session)
    assert second.final_output == "you asked about Bern"
    sent = model.inputs[-1]  # the third model call saw the whole history from the store
    kinds = [i.get("type", "message") for i in sent]
    assert kinds == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert sent[2]["output"] == "11 °C in Bern" and sent[-1]["content"] == "what did I ask?"
    assert await session.get_items() == [*sent, second.to_input_list()[-1]]


def test_runner_run_sync_uses_the_session(target: str) -> None:
    model = ScriptedModel([[_text("one")], [_text("two")]])
    agent = Agent(name="assistant", model=model)
    session = SessionlogSession("sync", target)
    try:
        assert Runner.run_sync(agent, "first", session=session).final_output == "one"
        assert Runner.run_sync(agent, "second", session=session).final_output == "two"
    finally:  # run_sync leaves the thread a default loop of its own: close it
        asyncio.get_event_loop_policy().get_event_loop().close()
        asyncio.set_event_loop(None)
    assert model.inputs[-1][0]["content"] == "first"
    assert len(asyncio.run(session.get_items())) == 4


async def test_a_remote_backend_object_is_shared_with_its_owner(tmp_path: Any) -> None:
    """The adapter drives a Backend on its own loop; a RemoteBackend the caller also
    uses on theirs keeps one connection pool per loop (aiohttp's are loop-bound)."""
    from eventlog.backends.remote import RemoteBackend

    from .served import ThreadedServer

    server = ThreadedServer(tmp_path / "data")
    backend = RemoteBackend(server.url)
    try:
        session = SessionlogSession("shared object", backend)
        await session.add_items(ITEMS[:2])
        listed = await backend.list(ListRequest(type="agents"))  # the owner's loop
        assert [s.session_id for s in listed.sessions] == [session.sessionlog_id]
        assert await session.get_items() == ITEMS[:2]
    finally:
        await loop.arun(backend.close())  # the adapters' loop's pool
        await backend.close()  # ours
        server.stop()


async def test_the_compaction_snapshot_replaces_the_suffix_only_if_unchanged(target: str) -> None:
    """The SDK's OpenAIResponsesCompactionSession swaps compacted items in through this
    hook: atomically, and never over history that changed after the snapshot."""
    s = SessionlogSession("compact", target)
    await s.add_items(ITEMS[:4])
    snap = await s._get_compaction_snapshot(2)
    assert snap is not None and snap.items == ITEMS[2:4] and not snap.complete
    stale = await s._get_compaction_snapshot(10)
    assert stale is not None and stale.complete
    summary = {"type": "compaction", "encrypted_content": "c0mpact"}
    assert await snap.replace_suffix(0, [summary])
    assert await s.get_items() == [*ITEMS[:2], summary]
    assert not await stale.replace_suffix(1, [summary])  # history changed since: refused
    assert await s.get_items() == [*ITEMS[:2], summary]
