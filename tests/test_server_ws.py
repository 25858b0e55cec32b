"""The WebSocket of SPEC §5 against a real server: ordering across windows, resumable
subscriptions under concurrent appends, errors that keep the socket open, list events,
and the bounded send queue that disconnects a client that does not read."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from eventlog.events import decoder
from server.config import Limits
from server.state import CONNECTIONS

from .conftest import Api, ServerProcess, both_backends

pytestmark = pytest.mark.asyncio
WS = aiohttp.ClientWebSocketResponse


async def recv(ws: WS, timeout: float = 10) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def recv_op(ws: WS, op: str, timeout: float = 10) -> dict[str, Any]:
    """The next frame with ``op``, skipping others (e.g. events before an ack)."""
    while True:
        frame = await recv(ws, timeout)
        if frame["op"] == op:
            return frame


async def subscribe(ws: WS, sid: str, after_seq: int | None = None) -> int:
    frame: dict[str, Any] = {"op": "subscribe", "session_id": sid}
    if after_seq is not None:
        frame["after_seq"] = after_seq
    await ws.send_json(frame)
    got = await recv(ws)
    assert got["op"] == "subscribed" and got["session_id"] == sid, got
    return int(got["seq"])


def journal_seqs(data_dir: Path, sid: str) -> list[int]:
    [path] = data_dir.glob(f"sessions/*/{sid}.jsonl")
    return [decoder.decode(line).seq for line in path.read_bytes().splitlines()]


@both_backends
async def test_two_windows_see_each_others_appends_in_the_same_order(api: Api) -> None:
    sid = await api.start()
    a, b = await api.ws(), await api.ws()
    for w in (a, b):
        assert await subscribe(w, sid, after_seq=0) == 1
    for i in range(40):  # both windows write at once, interleaved
        for name, w in (("a", a), ("b", b)):
            await w.send_json(
                {
                    "op": "append",
                    "req_id": f"{name}{i}",
                    "session_id": sid,
                    "role": "user",
                    "content": f"{name} {i}",
                }
            )

    async def events(w: WS) -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []
        while len(seen) < 81:
            f = await recv(w)
            if f["op"] == "event":
                seen.append((f["seq"], f["data"].get("content", f["type"])))
        return seen

    seen_a, seen_b = await asyncio.gather(events(a), events(b))
    assert seen_a == seen_b
    assert [s for s, _ in seen_a] == list(range(1, 82))
    assert {c for _, c in seen_a[1:]} == {f"{n} {i}" for n in "ab" for i in range(40)}


async def test_acks_arrive_only_once_the_append_is_in_the_journal(api: Api, data_dir: Path) -> None:
    sid = await api.start()
    ws = await api.ws()
    for i in range(20):
        await ws.send_json(
            {"op": "append", "req_id": i, "session_id": sid, "role": "user", "content": str(i)}
        )
    acks = [await recv_op(ws, "ack") for _ in range(20)]
    assert sorted(a["req_id"] for a in acks) == list(range(20))
    assert sorted(a["seq"] for a in acks) == list(range(2, 22))
    assert all(a["duplicate"] is False and a["message_id"] for a in acks)
    assert journal_seqs(data_dir, sid) == list(range(1, 22))
    await ws.send_json(
        {
            "op": "append",
            "req_id": "again",
            "session_id": sid,
            "role": "user",
            "content": "0",
            "message_id": acks[0]["message_id"],
        }
    )
    dup = await recv_op(ws, "ack")
    assert dup["duplicate"] is True and dup["seq"] == acks[0]["seq"]


async def test_resubscribing_at_random_points_during_2000_appends_loses_and_repeats_nothing(
    make_api: Any,
) -> None:
    """Three clients drop their socket at random moments while 2,000 appends race in over
    HTTP and WebSocket, and resume with after_seq = the last seq they saw: each must end
    up with exactly 1..N, which only holds if the live listener is registered before the
    head is read and the backlog is merged without gaps or duplicates."""
    api: Api = await make_api()
    sid = await api.start()
    total = 2000
    rng = random.Random(7)

    async def ws_writer() -> None:
        ws = await api.ws()
        for i in range(total // 2):
            await ws.send_json(
                {
                    "op": "append",
                    "req_id": i,
                    "session_id": sid,
                    "role": "user",
                    "content": f"ws {i}",
                }
            )
        for _ in range(total // 2):
            assert (await recv_op(ws, "ack", timeout=60))["seq"] > 1
        await ws.close()

    async def http_writer() -> None:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await api.ok(
                    "append", {"session_id": sid, "role": "assistant", "content": f"http {i}"}
                )

        await asyncio.gather(*(one(i) for i in range(total // 2)))

    async def reader() -> list[int]:
        got: list[int] = []
        reconnects = 0
        while len(got) < total + 1:
            ws = await api.ws()
            await subscribe(ws, sid, after_seq=got[-1] if got else 0)
            budget = rng.randint(20, 400)
            while budget and len(got) < total + 1:
                f = await recv(ws, timeout=30)
                if f["op"] == "event":
                    got.append(f["seq"])
                    budget -= 1
            await ws.close()
            reconnects += 1
        assert reconnects >= 3
        return got

    results = await asyncio.gather(reader(), reader(), reader(), ws_writer(), http_writer())
    for got in results[:3]:
        assert got == list(range(1, total + 2))


@both_backends
async def test_subscribe_without_after_seq_is_live_only(api: Api) -> None:
    sid = await api.start()
    await api.ok("append", {"session_id": sid, "role": "user", "content": "old"})
    ws = await api.ws()
    assert await subscribe(ws, sid) == 2
    await api.ok("append", {"session_id": sid, "role": "user", "content": "new"})
    f = await recv(ws)
    assert (f["op"], f["seq"], f["type"], f["data"]["content"]) == (
        "event",
        3,
        "message.appended",
        "new",
    )
    assert f["session_id"] == sid and f["ts"].endswith("Z")


@both_backends
async def test_streaming_over_the_socket_delta_complete_update_edit(api: Api) -> None:
    sid = await api.start()
    ws = await api.ws()
    await subscribe(ws, sid)
    frames = [
        {
            "op": "append",
            "session_id": sid,
            "role": "assistant",
            "content": "",
            "message_id": "m1",
            "partial": True,
        },
        {"op": "delta", "session_id": sid, "message_id": "m1", "content": "Hel"},
        {
            "op": "delta",
            "session_id": sid,
            "message_id": "m1",
            "content": "Hello",
            "mode": "replace",
        },
        {"op": "complete", "session_id": sid, "message_id": "m1", "content": "Hello."},
        {"op": "edit", "session_id": sid, "message_id": "m1", "content": "Hi."},
        {"op": "update", "session_id": sid, "title": "Greeting"},
    ]
    for i, frame in enumerate(frames):
        await ws.send_json({**frame, "req_id": i})
        ack = await recv_op(ws, "ack")
        assert ack["req_id"] == i and ack["seq"] == i + 2
    s = (await api.ok("load", {"session_id": sid}))["session"]
    assert s["title"] == "Greeting" and s["messages"][0]["content"] == "Hi."


@both_backends
async def test_bad_frames_get_an_error_and_the_connection_stays_open(api: Api) -> None:
    sid = await api.start()
    ws = await api.ws()
    await ws.send_str("{not json")
    assert (await recv(ws))["code"] == "invalid_json"
    await ws.send_str('["no", "op"]')
    assert (await recv(ws))["code"] == "invalid_request"
    await ws.send_json({"op": "fly", "req_id": 1})
    f = await recv(ws)
    assert (f["op"], f["req_id"], f["code"]) == ("error", 1, "invalid_request")
    assert "fly" in f["error"]
    await ws.send_json({"op": "append", "req_id": 2, "session_id": sid, "role": "user"})
    f = await recv(ws)
    assert (f["req_id"], f["code"]) == (2, "invalid_request") and "`content`" in f["error"]
    await ws.send_json(
        {"op": "append", "req_id": 3, "session_id": "nope", "role": "user", "content": "x"}
    )
    assert (await recv(ws))["code"] == "not_found"
    await ws.send_json(
        {
            "op": "append",
            "req_id": 4,
            "session_id": sid,
            "role": "user",
            "content": "x",
            "expected_seq": 0,
        }
    )
    f = await recv(ws)
    assert (f["code"], f["current_seq"]) == ("conflict", 1)
    await ws.send_json({"op": "subscribe", "req_id": 5, "session_id": "gone"})
    f = await recv(ws)
    assert (f["op"], f["code"], f["session_id"]) == ("error", "not_found", "gone")
    await ws.send_bytes(b"{}")
    assert (await recv(ws))["code"] == "invalid_request"
    await ws.send_json({"op": "ping", "req_id": 6})
    assert await recv(ws) == {"op": "pong", "req_id": 6}
    assert not ws.closed


@both_backends
async def test_list_subscribers_hear_sessions_start_update_and_go(api: Api) -> None:
    ws = await api.ws()
    await ws.send_json({"op": "subscribe_list"})
    assert (await recv(ws))["op"] == "subscribed_list"
    sid = await api.start(title="new one")
    f = await recv(ws)
    assert (f["op"], f["type"], f["session"]["session_id"]) == (
        "list_event",
        "session.started",
        sid,
    )
    assert f["session"]["title"] == "new one" and "preview" in f["session"]
    await api.ok("append", {"session_id": sid, "role": "user", "content": "first words"})
    f = await recv(ws)
    assert (f["type"], f["session"]["preview"]) == ("session.updated", "first words")
    await api.ok("delete", {"session_id": sid})
    f = await recv(ws)
    assert f["type"] == "session.deleted" and f["session"] == {"session_id": sid}


@both_backends
async def test_unsubscribe_stops_events_and_releases_the_watch(api: Api) -> None:
    sid = await api.start()
    ws = await api.ws()
    await subscribe(ws, sid)
    await ws.send_json({"op": "unsubscribe", "session_id": sid})
    assert (await recv(ws))["op"] == "unsubscribed"
    await api.ok("append", {"session_id": sid, "role": "user", "content": "unseen"})
    await ws.send_json({"op": "ping"})
    assert (await recv(ws))["op"] == "pong"  # no event frame came first
    async with api.client.get("/api/health") as r:
        assert (await r.json())["subscriptions"] == 0


async def test_a_client_that_never_reads_is_disconnected_and_memory_stays_bounded(
    make_api: Any,
) -> None:
    """Without a bounded queue a subscriber that stops reading (a frozen tab) would make
    the server buffer every event for it forever."""
    budget = 256 * 1024
    api: Api = await make_api(fsync="never", limits=Limits(send_queue_bytes=budget))
    sid = await api.start()
    await api.ok(
        "append",
        {
            "session_id": sid,
            "role": "assistant",
            "content": "",
            "message_id": "big",
            "partial": True,
        },
    )
    slow = await api.ws()
    await subscribe(slow, sid)
    [conn] = api.app[CONNECTIONS]
    rss_before = rss_kib()
    writer = await api.ws()
    chunk = "x" * 64 * 1024
    flood = 600  # ~40 MB of event frames, far beyond kernel buffers plus the budget
    for i in range(flood):
        await writer.send_json(
            {
                "op": "delta",
                "req_id": i,
                "session_id": sid,
                "message_id": "big",
                "content": chunk,
                "mode": "replace",
            }
        )
    for _ in range(flood):
        await recv_op(writer, "ack", timeout=60)
    assert conn.outbox.closed
    assert conn.outbox.peak <= budget + 70 * 1024  # at most one frame over the budget
    assert rss_kib() - rss_before < 64 * 1024
    # the slow client, once it reads again, finds the close code after what was in flight
    while True:
        msg = await slow.receive(timeout=10)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            break
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 4008)
    assert "after_seq" in msg.extra
    # the writer's socket was not affected
    await writer.send_json({"op": "ping"})
    assert (await recv_op(writer, "pong"))["op"] == "pong"


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_graceful_shutdown_closes_sockets_with_1001_and_compacts(
    server_process: Any, data_dir: Path
) -> None:
    srv: ServerProcess = server_process("--compact-interval", "3600")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.url}api/sessions/start", json={}) as r:
            sid = (await r.json())["session_id"]
        ws = await http.ws_connect(f"{srv.url}api/sessions/ws")
        await subscribe(ws, sid)
        await ws.send_json(
            {
                "op": "append",
                "req_id": 1,
                "session_id": sid,
                "role": "user",
                "content": "before shutdown",
            }
        )
        await recv_op(ws, "ack")
        srv.proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await ws.receive(timeout=10)
        assert ws.close_code == 1001
    assert srv.stop() == 0
    [snapshot] = data_dir.glob(f"sessions/*/{sid}.json")
    assert json.loads(snapshot.read_bytes())["messages"][0]["content"] == "before shutdown"


@both_backends
async def test_an_unexpected_error_in_the_handler_closes_with_1011_and_the_server_goes_on(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """After the upgrade, the error middleware must not answer (an HTTP 500 written into
    a WebSocket stream): a bug inside a connection closes that socket with 1011 (internal
    error), is logged, and leaves every other request unharmed."""
    import server.ws as ws_mod

    async def broken(self: Any, *args: Any, **kw: Any) -> None:
        raise RuntimeError("a bug inside the connection")

    monkeypatch.setattr(ws_mod.Connection, "run", broken)
    ws = await api.ws()
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    assert msg.data == aiohttp.WSCloseCode.INTERNAL_ERROR
    assert msg.extra == "internal server error"
    assert "a bug inside the connection" in caplog.text
    monkeypatch.undo()
    sid = await api.start()  # the server itself is fine
    assert await subscribe(await api.ws(), sid, after_seq=0) == 1


@both_backends
async def test_a_resume_ahead_of_the_head_is_told_to_resync_and_gets_everything(
    api: Api,
) -> None:
    """A client that failed over to an asynchronous replica which lost the tail (or to a
    restored backup) holds events the store no longer has: skipping ``seq <= after_seq``
    would hide the new events that reuse those seqs, so it must start again."""
    sid = await api.start()
    for i in range(3):
        await api.ok("append", {"session_id": sid, "role": "user", "content": str(i)})
    ws = await api.ws()
    await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": 9})
    got = await recv(ws)
    assert (got["op"], got["seq"], got.get("resync")) == ("subscribed", 4, True)
    assert [(await recv_op(ws, "event"))["seq"] for _ in range(4)] == [1, 2, 3, 4]
    await ws.close()
