"""Several ``sessionlog serve --database`` processes on one PostgreSQL database (SPEC §9):
live events across instances with no gap and no duplicate (also while the LISTEN
connection is being killed), idempotent retries and ``expected_seq`` across instances,
``kill -9`` of an instance mid-append, and a database outage answered with 503."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from eventlog.events import MessageAppended, decoder
from tests import pg

from .conftest import ServerProcess

pytestmark = pytest.mark.asyncio
WS = aiohttp.ClientWebSocketResponse


@pytest_asyncio.fixture
async def db() -> AsyncIterator[str]:
    url = await pg.create_database()
    try:
        yield url
    finally:
        await pg.drop_database(url)


def serve(server_process: Any, url: str, *args: str) -> ServerProcess:
    return server_process("--database", url, "--compact-interval", "0.5", *args)  # type: ignore[no-any-return]


async def post(http: aiohttp.ClientSession, base: str, path: str, **body: Any) -> tuple[int, Any]:
    async with http.post(f"{base}api/sessions/{path}", json=body) as r:
        return r.status, await r.json()


async def table_events(url: str, sid: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT body FROM events WHERE session_id = $1 ORDER BY seq", sid)
    finally:
        await conn.close()
    return [decoder.decode(r[0]) for r in rows]


async def collect(ws: WS, sid: str, until_seq: int) -> list[int]:
    """Event seqs for ``sid`` until ``until_seq`` arrives (duplicates kept, to be caught)."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < until_seq:
        msg = await ws.receive(timeout=30)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["op"] == "event" and frame["session_id"] == sid:
            seqs.append(frame["seq"])
    return seqs


async def writer(http: aiohttp.ClientSession, base: str, sid: str, tag: str, n: int) -> None:
    for i in range(n):
        status, body = await post(
            http,
            base,
            "append",
            session_id=sid,
            role="user",
            content=f"{tag} {i}",
            message_id=f"{tag}-{i}",
        )
        assert status == 200, body


async def test_a_subscriber_on_a_sees_writes_through_b_and_c_gap_free_and_once(
    server_process: Any, db: str
) -> None:
    a, b, c = (serve(server_process, db) for _ in range(3))
    async with aiohttp.ClientSession() as http:
        _, started = await post(http, b.url, "start", title="shared")
        sid = started["session_id"]
        ws = await http.ws_connect(f"{a.url}api/sessions/ws")
        await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": 0})
        await asyncio.gather(writer(http, b.url, sid, "b", 60), writer(http, c.url, sid, "c", 60))
        seqs = await collect(ws, sid, 121)
        await ws.close()
    assert seqs == list(range(1, 122))
    events = await table_events(db, sid)
    assert [e.seq for e in events] == list(range(1, 122))


async def test_a_retry_sent_to_another_instance_is_answered_as_a_duplicate(
    server_process: Any, db: str
) -> None:
    a, b = serve(server_process, db), serve(server_process, db)
    async with aiohttp.ClientSession() as http:
        _, started = await post(http, a.url, "start")
        sid = started["session_id"]
        body = {"session_id": sid, "role": "user", "content": "once", "id": "evt-1"}
        s1, first = await post(http, a.url, "append", **body)
        s2, again = await post(http, b.url, "append", **body)
        s3, by_mid = await post(
            http,
            b.url,
            "append",
            session_id=sid,
            role="user",
            content="x",
            message_id=first["message_id"],
        )
    assert (s1, s2, s3) == (200, 200, 200)
    assert (again["seq"], again["duplicate"]) == (first["seq"], True)
    assert (by_mid["seq"], by_mid["duplicate"]) == (first["seq"], True)
    assert len(await table_events(db, sid)) == 2


async def test_expected_seq_conflicts_across_instances(server_process: Any, db: str) -> None:
    a, b = serve(server_process, db), serve(server_process, db)
    async with aiohttp.ClientSession() as http:
        _, started = await post(http, a.url, "start")
        sid = started["session_id"]
        s1, _ = await post(
            http, a.url, "append", session_id=sid, role="user", content="1", expected_seq=1
        )
        # b never wrote to this session; its view must still be the table's
        s2, stale = await post(
            http, b.url, "append", session_id=sid, role="user", content="2", expected_seq=1
        )
        s3, ok = await post(
            http, b.url, "append", session_id=sid, role="user", content="2", expected_seq=2
        )
        # and a, whose cached state is now behind b's write, must not accept seq 2 again
        s4, behind = await post(
            http, a.url, "append", session_id=sid, role="user", content="3", expected_seq=2
        )
        s5, _ = await post(
            http, a.url, "append", session_id=sid, role="user", content="3", expected_seq=3
        )
    assert (s1, s2, s3, s4, s5) == (200, 409, 200, 409, 200)
    assert stale["code"] == "conflict" and stale["current_seq"] == 2
    assert behind["current_seq"] == 3 and ok["seq"] == 3
    assert [e.seq for e in await table_events(db, sid)] == [1, 2, 3, 4]


async def test_kill_9_of_an_instance_during_appends_loses_no_acknowledged_one(
    server_process: Any, db: str
) -> None:
    rng = random.Random(7)
    survivor = serve(server_process, db)
    acked: set[str] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        _, started = await post(http, survivor.url, "start")
        sid = started["session_id"]
        for cycle in range(4):
            victim = serve(server_process, db)

            async def client(k: int, base: str, cycle: int = cycle) -> None:
                for i in range(10_000):
                    mid = f"c{cycle}k{k}-{i}"
                    try:
                        status, _ = await post(
                            http,
                            base,
                            "append",
                            session_id=sid,
                            role="user",
                            content=mid,
                            message_id=mid,
                        )
                    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                        return  # the instance is gone
                    if status != 200:
                        return
                    acked.add(mid)

            tasks = [asyncio.create_task(client(k, victim.url)) for k in range(6)]
            tasks += [asyncio.create_task(client(k + 6, survivor.url)) for k in range(2)]
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            victim.proc.kill()
            victim.proc.wait()
            await asyncio.wait(tasks[:6])
            for t in tasks[6:]:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    events = await table_events(db, sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    mids = Counter(e.data.message_id for e in events if isinstance(e, MessageAppended))
    assert not [m for m, n in mids.items() if n > 1], "an append was written twice"
    assert acked <= set(mids), f"lost: {sorted(acked - set(mids))[:5]}"
    assert len(acked) > 40, "the clients barely appended: the test proved little"


async def test_the_listen_connection_killed_three_times_mid_stream_loses_nothing(
    server_process: Any, db: str
) -> None:
    """Hints sent while A reconnects are lost; the catch-up on reconnect and the slow
    poll must still deliver every event, once, in order."""
    a, b = serve(server_process, db), serve(server_process, db)
    admin = await asyncpg.connect(db)
    try:
        async with aiohttp.ClientSession() as http:
            _, started = await post(http, b.url, "start")
            sid = started["session_id"]
            ws = await http.ws_connect(f"{a.url}api/sessions/ws")
            await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": 0})
            got: list[int] = []
            for round_ in range(3):
                await writer(http, b.url, sid, f"r{round_}a", 15)
                # every backend of instance A (its LISTEN connection and its pool)
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'sessionlog-listen'"
                )
                assert killed >= 1, "A's LISTEN connection was not found"
                await writer(http, b.url, sid, f"r{round_}b", 15)
            got = await collect(ws, sid, 91)
            await ws.close()
    finally:
        await admin.close()
    assert got == list(range(1, 92))


async def test_a_database_outage_is_a_503_envelope_and_the_instance_recovers(
    server_process: Any, db: str
) -> None:
    srv = serve(server_process, db)
    name = db.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg.admin_url())
    try:
        async with aiohttp.ClientSession() as http:
            _, started = await post(http, srv.url, "start")
            sid = started["session_id"]
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            status, body = await post(
                http, srv.url, "append", session_id=sid, role="user", content="lost?", id="o-1"
            )
            assert status == 503, body
            assert body["success"] is False and body["code"] == "unavailable"
            assert "Traceback" not in body["error"] and "database" in body["error"]
            status, body = await post(http, srv.url, "list")
            assert status == 503 and body["code"] == "unavailable"
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            status, body = await post(
                http, srv.url, "append", session_id=sid, role="user", content="back", id="o-2"
            )
            assert status == 200, body
            status, body = await post(http, srv.url, "load", session_id=sid)
            assert [m["content"] for m in body["session"]["messages"]] == ["back"]
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert srv.stop() == 0
