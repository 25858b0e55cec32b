"""``sessionlog serve`` runs on uvloop by default (where installed) and on asyncio's own
loop with ``--loop asyncio``; both serve appends, acks and live events the same."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
import pytest


@pytest.mark.parametrize("loop", ["auto", "uvloop", "asyncio"])
async def test_the_server_appends_and_streams_on_either_event_loop(
    server_process: Any, loop: str
) -> None:
    srv = server_process("--loop", loop)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.url}api/sessions/start", json={}) as r:
            sid = (await r.json())["session_id"]
        ws = await http.ws_connect(f"{srv.url}api/sessions/ws")
        await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": 0})
        assert (await ws.receive_json())["op"] == "subscribed"
        assert (await ws.receive_json())["seq"] == 1  # the backlog: session.started
        async with http.post(
            f"{srv.url}api/sessions/append",
            json={"session_id": sid, "role": "user", "content": "hi", "id": "e1"},
        ) as r:
            assert (await r.json())["seq"] == 2
        await ws.send_json({"op": "append", "req_id": 7, "session_id": sid, "role": "user",
                            "content": "again", "id": "e1"})  # fmt: skip
        frames = [await asyncio.wait_for(ws.receive_json(), 30) for _ in range(2)]
        assert {f["op"] for f in frames} == {"event", "ack"}
        ack = next(f for f in frames if f["op"] == "ack")
        assert (ack["seq"], ack["duplicate"]) == (2, True)
        await ws.close()
    assert srv.stop(signal.SIGTERM) == 0
