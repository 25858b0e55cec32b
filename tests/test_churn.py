"""Subscriptions under churn, and a consumer that stops reading, against a real server.

1. Catch-up under churn: 10,000 appends from concurrent HTTP and (pipelined) WebSocket
   writers while three subscribers drop their connection every 100-500 ms (half of the
   time with a close handshake, half by cutting the TCP connection) and resume with
   ``{"op":"subscribe","session_id":S,"after_seq":last}``. Each subscriber's events must
   be exactly the journal's: same seqs and event ids, in order, no gap, no duplicate.

2. Slow consumer: a raw TCP client does the WebSocket handshake, subscribes, and stops
   reading (a frozen tab; its receive buffer is made small) while 50,000 events are
   written (fsync=never). Bound: the server's RSS (VmRSS of the process) never exceeds
   its RSS before the flood + 100 MB. Measured here: the flood alone, with no
   subscriber, grows RSS by ~60 MB (the open session's in-memory state for 50,000
   messages); the frozen subscriber adds ~1 MB on top (its send queue is capped at
   8 MiB and dropped when it overflows; 50,000 events are ~22 MB of frames), where an
   unbounded queue would add the whole ~22 MB and more. The server closes the client with code 4008 (seen by
   the client once it reads again), keeps serving the writers, and the client resumes
   with ``after_seq`` and gets every remaining event, gap-free, up to the head.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.rawsocket import RawSocket
from bench.server_process import Server
from eventlog.backends.file.scan import read_tail

CHURN_APPENDS = 10_000
FLOOD_EVENTS = 50_000
RSS_BOUND_KB = 100 * 1024


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(**kw: Any) -> Server:
        s = Server(tmp_path / "memory", log=tmp_path / "server.log", **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def journal_events(data: Path, sid: str) -> list[tuple[int, str]]:
    [path] = data.glob(f"sessions/*/{sid}.jsonl")
    scan = read_tail(str(path), 0, 0)
    assert not scan.bad and not scan.torn
    return [(e.seq, e.id) for e in scan.events]


async def start_session(http: aiohttp.ClientSession, srv: Server, **body: Any) -> str:
    async with http.post(srv.url + "api/sessions/start", json=body) as r:
        return str((await r.json())["session_id"])


async def http_writer(
    http: aiohttp.ClientSession, srv: Server, sid: str, n: int, tag: str, pad: str = ""
) -> None:
    for i in range(n):
        async with http.post(
            srv.url + "api/sessions/append",
            json={
                "session_id": sid,
                "role": "user",
                "content": f"{tag}-{i}{pad}",
                "message_id": f"{tag}-{i}",
            },
        ) as r:
            assert r.status == 200, await r.text()


async def ws_writer(
    http: aiohttp.ClientSession, srv: Server, sid: str, n: int, tag: str, depth: int, pad: str = ""
) -> None:
    """``n`` appends pipelined ``depth`` deep on one socket; every one acked."""
    async with http.ws_connect(srv.ws_url, max_msg_size=0) as ws:
        sent = acked = 0
        while acked < n:
            while sent < n and sent - acked < depth:
                await ws.send_json(
                    {
                        "op": "append",
                        "req_id": sent,
                        "session_id": sid,
                        "role": "assistant",
                        "content": f"{tag}-{sent}{pad}",
                        "message_id": f"{tag}-{sent}",
                    }
                )
                sent += 1
            frame = json.loads((await ws.receive(timeout=30)).data)
            assert frame["op"] == "ack", frame
            acked += 1


class Churner:
    """A subscriber that keeps dropping its connection and resuming with after_seq."""

    def __init__(self, srv: Server, sid: str, rng: random.Random) -> None:
        self.srv, self.sid, self.rng = srv, sid, rng
        self.got: list[tuple[int, str]] = []
        self.problems: list[str] = []
        self.reconnects = 0
        self.abrupt = 0
        self.head: int | None = None  # set once the writers are done

    @property
    def last(self) -> int:
        return self.got[-1][0] if self.got else 0

    def caught_up(self) -> bool:
        return self.head is not None and self.last >= self.head

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.caught_up():
            http = aiohttp.ClientSession()
            try:
                ws = await http.ws_connect(self.srv.ws_url)
                self.reconnects += 1
                await ws.send_json(
                    {"op": "subscribe", "session_id": self.sid, "after_seq": self.last}
                )
                first = json.loads((await ws.receive(timeout=10)).data)
                if first.get("op") != "subscribed" or first["seq"] < self.last:
                    self.problems.append(f"bad subscribe answer {first}")
                deadline = loop.time() + self.rng.uniform(0.1, 0.5)
                while not self.caught_up():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        msg = await ws.receive(timeout=left)
                    except TimeoutError:
                        break
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        self.problems.append(f"server ended the socket: {msg}")
                        break
                    f = json.loads(msg.data)
                    if f["op"] != "event":
                        continue
                    if f["seq"] != self.last + 1:
                        self.problems.append(f"after {self.last} got {f['seq']}")
                    self.got.append((f["seq"], f["id"]))
                if self.rng.random() < 0.5:
                    await ws.close()
                else:  # cut the connection: no close handshake
                    self.abrupt += 1
                    ws._response.connection.transport.abort()  # type: ignore[union-attr]
            finally:
                await http.close()


async def test_subscribers_that_keep_reconnecting_get_exactly_the_journal(
    servers: Any, tmp_path: Path
) -> None:
    srv: Server = servers(fsync="always", compact_interval=1)
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as http:
        sid = await start_session(http, srv, title="churn")
        churners = [Churner(srv, sid, random.Random(k)) for k in range(3)]
        readers = [asyncio.create_task(c.run()) for c in churners]
        per = CHURN_APPENDS // 4
        await asyncio.gather(
            http_writer(http, srv, sid, per, "h1"),
            http_writer(http, srv, sid, per, "h2"),
            ws_writer(http, srv, sid, per, "w1", depth=16),
            ws_writer(http, srv, sid, CHURN_APPENDS - 3 * per, "w2", depth=16),
        )
        async with http.post(srv.url + "api/sessions/load", json={"session_id": sid}) as r:
            head = (await r.json())["session"]["seq"]
        assert head == CHURN_APPENDS + 1
        for c in churners:
            c.head = head
        async with asyncio.timeout(30):
            await asyncio.gather(*readers)
    journal = journal_events(tmp_path / "memory", sid)
    assert len(journal) == head
    for c in churners:
        assert not c.problems, c.problems[:5]
        assert c.got == journal, "a subscriber's events differ from the journal"
        assert c.reconnects >= 5 and c.abrupt >= 1, (c.reconnects, c.abrupt)
    assert time.monotonic() - t0 < 90


# -- a consumer that stops reading ------------------------------------------------------------


async def test_a_consumer_that_stops_reading_is_closed_and_memory_stays_bounded(
    servers: Any, tmp_path: Path
) -> None:
    srv: Server = servers(fsync="never", compact_interval=0)
    async with aiohttp.ClientSession() as http:
        sid = await start_session(http, srv, title="flood")
        slow = RawSocket(int(srv.url.rstrip("/").rsplit(":", 1)[1]), rcvbuf=4096)
        slow.send_json({"op": "subscribe", "session_id": sid, "after_seq": 0})
        await asyncio.sleep(0.2)  # subscribed (the answer waits unread in the socket)
        rss0 = srv.rss_kb()
        peak = rss0
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, srv.rss_kb())
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        pad = " " + "p" * 150  # ~450-byte frames: 50,000 of them are ~22 MB
        per = FLOOD_EVENTS // 2
        loop = asyncio.get_running_loop()
        reading: asyncio.Future[list[tuple[int, bytes]]] | None = None
        writers = asyncio.gather(
            ws_writer(http, srv, sid, per, "a", depth=64, pad=pad),
            ws_writer(http, srv, sid, FLOOD_EVENTS - per, "b", depth=64, pad=pad),
        )
        while not writers.done():
            await asyncio.sleep(0.05)
            if reading is None and "does not keep up" in srv.output():
                # the frozen tab wakes up a moment after the server gave up on it (within
                # the server's close timeout): it finds what was in flight, then a close
                reading = loop.run_in_executor(None, lambda: list(slow.frames()))
        await writers
        done.set()
        await sampler
        assert reading is not None, "the server never gave up on the slow consumer"
        assert peak - rss0 <= RSS_BOUND_KB, f"RSS grew by {(peak - rss0) // 1024} MB"
        got: list[int] = []
        close: tuple[int, bytes] | None = None
        for op, payload in await reading:
            if op == 1:
                f = json.loads(payload)
                if f["op"] == "event":
                    got.append(f["seq"])
            elif op == 8:
                close = (struct.unpack(">H", payload[:2])[0], payload[2:])
        slow.close()
        assert close is not None and close[0] == 4008, close
        assert b"after_seq" in close[1]
        assert got == list(range(1, len(got) + 1))
        assert len(got) < FLOOD_EVENTS  # it really fell behind
        # and resumes where it stopped, gap-free, up to the head
        head = FLOOD_EVENTS + 1
        async with http.ws_connect(srv.ws_url, max_msg_size=0) as ws:
            await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": got[-1]})
            last = got[-1]
            while last < head:
                f = json.loads((await ws.receive(timeout=30)).data)
                if f["op"] == "event":
                    assert f["seq"] == last + 1
                    last = f["seq"]
        assert [s for s, _ in journal_events(tmp_path / "memory", sid)] == list(range(1, head + 1))
        assert srv.alive()
        print(
            f"slow consumer: RSS {rss0 // 1024} MB -> peak {peak // 1024} MB; "
            f"it had read {len(got)} of {head} events when closed"
        )


def test_appends_to_an_assistant_only_session_do_not_scan_its_messages() -> None:
    """Regression: every append computes the session's list row, whose preview is the
    first user message; a session with no user message (an assistant or voice stream)
    scanned all its messages each time, so the 50,000-event flood above took minutes
    (O(n^2)). The stats tell whether a user message exists; without one, no scan."""
    from eventlog.model import Session, Stats, summarize

    class NoScan(list):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            raise AssertionError("summarize scanned the messages")

    s = Session(
        session_id="s",
        user_name="U",
        started_at="t",
        last_updated="t",
        messages=NoScan(),
        metadata={},
        stats=Stats(total_messages=5, assistant_messages=5),
        errors=[],
        seq=6,
    )
    assert summarize(s).preview == ""
