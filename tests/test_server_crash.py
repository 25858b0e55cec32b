"""SPEC §3: every acknowledged append survives ``kill -9`` of the server at any moment.

A real ``python -m server serve`` process is killed with SIGKILL while HTTP clients and
pipelining WebSocket clients append concurrently; after each restart every append that
was acknowledged (HTTP 200 or WebSocket ack) is in the journal exactly once and the
journal's seqs are gap-free from 1.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from eventlog.backends.file.scan import read_tail
from eventlog.events import MessageAppended

from .conftest import ServerProcess

pytestmark = pytest.mark.asyncio
CYCLES = 20
SESSIONS = 3
HTTP_CLIENTS = 6
WS_CLIENTS = 2
WS_WINDOW = 16  # appends in flight per socket


async def http_appender(
    http: aiohttp.ClientSession, url: str, sids: list[str], tag: str, acked: dict[str, set[str]]
) -> None:
    i = 0
    while True:
        sid = sids[i % len(sids)]
        mid = f"{tag}-{i}"
        i += 1
        try:
            async with http.post(
                f"{url}api/sessions/append",
                json={
                    "session_id": sid,
                    "role": "user",
                    "content": mid,
                    "message_id": mid,
                },
            ) as r:
                body = await r.json()
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError):
            return  # the server is gone
        assert r.status == 200, body
        acked[sid].add(mid)


async def ws_appender(
    http: aiohttp.ClientSession, url: str, sids: list[str], tag: str, acked: dict[str, set[str]]
) -> None:
    try:
        ws = await http.ws_connect(f"{url}api/sessions/ws")
    except (TimeoutError, aiohttp.ClientError):
        return
    sent: dict[int, tuple[str, str]] = {}
    i = 0
    try:
        while True:
            while len(sent) < WS_WINDOW:
                sid, mid = sids[i % len(sids)], f"{tag}-{i}"
                sent[i] = (sid, mid)
                await ws.send_json(
                    {
                        "op": "append",
                        "req_id": i,
                        "session_id": sid,
                        "role": "assistant",
                        "content": mid,
                        "message_id": mid,
                    }
                )
                i += 1
            msg = await ws.receive(timeout=10)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            frame = json.loads(msg.data)
            assert frame["op"] == "ack", frame
            sid, mid = sent.pop(frame["req_id"])
            acked[sid].add(mid)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        return
    finally:
        await ws.close()


def check_journal(data_dir: Path, sid: str, acked: set[str]) -> int:
    [path] = data_dir.glob(f"sessions/*/{sid}.jsonl")
    scan = read_tail(str(path), 0, 0)
    assert not scan.bad, f"corrupt lines in the middle of {sid}: {scan.bad}"
    seqs = [e.seq for e in scan.events]
    assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap"
    mids = Counter(e.data.message_id for e in scan.events if isinstance(e, MessageAppended))
    assert not [m for m, n in mids.items() if n > 1], "an append was written twice"
    missing = acked - set(mids)
    assert not missing, f"{len(missing)} acknowledged appends were lost, e.g. {sorted(missing)[:3]}"
    return len(seqs)


async def test_kill_9_during_concurrent_appends_never_loses_an_acknowledged_one(
    server_process: Any, data_dir: Path
) -> None:
    rng = random.Random(1)
    acked: dict[str, set[str]] = {}
    sids: list[str] = []
    total_acked = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for cycle in range(CYCLES):
            srv: ServerProcess = server_process("--compact-interval", "0.2")
            if not sids:
                for _ in range(SESSIONS):
                    async with http.post(f"{srv.url}api/sessions/start", json={}) as r:
                        sids.append((await r.json())["session_id"])
                acked = {sid: set() for sid in sids}
            else:  # the restarted server recovered: it answers with everything acked before
                for sid in sids:
                    async with http.post(
                        f"{srv.url}api/sessions/load", json={"session_id": sid}
                    ) as r:
                        session = (await r.json())["session"]
                    have = {m["message_id"] for m in session["messages"]}
                    assert acked[sid] <= have
                    assert len(have) == len(session["messages"])
            clients = [
                *(
                    http_appender(http, srv.url, sids, f"c{cycle}h{k}", acked)
                    for k in range(HTTP_CLIENTS)
                ),
                *(
                    ws_appender(http, srv.url, sids, f"c{cycle}w{k}", acked)
                    for k in range(WS_CLIENTS)
                ),
            ]
            tasks = [asyncio.create_task(c) for c in clients]
            await asyncio.sleep(rng.uniform(0.15, 0.5))
            srv.proc.kill()  # SIGKILL: no shutdown, no final compaction, maybe a torn line
            srv.proc.wait()
            await asyncio.gather(*tasks)
            srv.kill()
            for sid in sids:
                check_journal(data_dir, sid, acked[sid])
        total_acked = sum(len(a) for a in acked.values())
    assert total_acked > CYCLES * 20, "the clients barely appended: the test proved little"
    # a final clean start repairs any torn tail and serves every acknowledged message
    srv = server_process()
    async with aiohttp.ClientSession() as http:
        for sid in sids:
            async with http.post(f"{srv.url}api/sessions/load", json={"session_id": sid}) as r:
                session = (await r.json())["session"]
            n = check_journal(data_dir, sid, acked[sid])
            assert session["seq"] == n
    assert srv.stop() == 0
