"""Disk faults against a real server process: a full disk (injected ENOSPC, and a real
2 MB tmpfs) and a failing fsync (injected EIO).

In every case: the append is refused with a clear 5xx JSON envelope and never
acknowledged (no 200, no ``ack`` frame, no event to subscribers); the journal stays
readable up to its last good line; the server keeps answering load and list; and once
the disk is back (``SESSIONLOG_FAULTS_OFF`` file created, or the filler file removed)
appends succeed again, a retry of the refused append with the same ``message_id`` is
written exactly once, and subscribers see a gap-free seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.server_process import Server
from eventlog.backends.file.scan import read_tail
from eventlog.events import MessageAppended


def assert_envelope(status: int, body: dict[str, Any], code: str | None = None) -> None:
    assert body.get("success") is False, body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str), body
    assert "Traceback" not in body["error"] and 'File "' not in body["error"], body
    if code is not None:
        assert body["code"] == code, (status, body)


class Client:
    def __init__(self, http: aiohttp.ClientSession, srv: Server) -> None:
        self.http = http
        self.srv = srv

    async def post(self, endpoint: str, body: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.srv.url + "api/sessions/" + endpoint, json=body) as r:
            return r.status, json.loads(await r.read())

    async def ok(self, endpoint: str, body: Any) -> dict[str, Any]:
        status, out = await self.post(endpoint, body)
        assert status == 200 and out["success"] is True, (status, out)
        return out

    async def append(self, sid: str, mid: str, content: str = "") -> tuple[int, dict[str, Any]]:
        return await self.post(
            "append",
            {"session_id": sid, "role": "user", "content": content or mid, "message_id": mid},
        )


@contextlib.asynccontextmanager
async def client(srv: Server) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield Client(http, srv)


class Watcher:
    """A WebSocket subscriber that records every event seq it is sent."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seqs: list[int] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                f = json.loads(msg.data)
                if f["op"] == "event":
                    self.seqs.append(f["seq"])

    async def until(self, seq: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not self.seqs or self.seqs[-1] < seq:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def watch(c: Client, sid: str) -> Watcher:
    ws = await c.http.ws_connect(c.srv.ws_url)
    await ws.send_json({"op": "subscribe", "session_id": sid, "after_seq": 0})
    got = json.loads((await ws.receive(timeout=30)).data)
    assert got["op"] == "subscribed", got
    return Watcher(ws)


def journal_of(data: Path, sid: str) -> Path:
    [p] = data.glob(f"sessions/*/{sid}.jsonl")
    return p


def assert_readable(path: Path) -> list[Any]:
    """The journal decodes line by line up to its end: no bad line, no torn tail."""
    scan = read_tail(str(path), 0, 0)
    assert not scan.bad and not scan.torn, (scan.bad, scan.torn)
    assert [e.seq for e in scan.events] == list(range(1, len(scan.events) + 1))
    return scan.events


def message_ids(path: Path) -> list[str]:
    return [
        e.data.message_id
        for e in read_tail(str(path), 0, 0).events
        if isinstance(e, MessageAppended)
    ]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(data: Path, **kw: Any) -> Server:
        s = Server(data, log=tmp_path / "server.log", **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


async def _refused_then_recovers(
    srv: Server, data: Path, off: Path, fail_at: int, status: int, word: str
) -> None:
    """Shared by the injected faults: append ``fail_at - 1`` times fine, then the fault."""
    async with client(srv) as c:
        sid = (await c.ok("start", {"title": "disk"}))["session_id"]
        w = await watch(c, sid)
        for i in range(1, fail_at):
            await c.ok(
                "append",
                {"session_id": sid, "role": "user", "content": f"ok {i}", "message_id": f"ok-{i}"},
            )
        path = journal_of(data, sid)
        before = path.read_bytes()
        st, body = await c.append(sid, "doomed", "x" * 5000)
        assert st == status, (st, body)
        assert_envelope(st, body, "storage_error")
        assert word in body["error"].lower() and "not" in body["error"].lower(), body["error"]
        # the WebSocket twin is refused the same way: an error frame, never an ack
        ws = await c.http.ws_connect(srv.ws_url)
        await ws.send_json(
            {
                "op": "append",
                "req_id": 1,
                "session_id": sid,
                "role": "user",
                "content": "ws doomed",
                "message_id": "ws-doomed",
            }
        )
        frame = json.loads((await ws.receive(timeout=10)).data)
        assert frame["op"] == "error" and frame["code"] == "storage_error", frame
        await ws.close()
        # the journal stays readable up to its last good line; reads keep working
        events = assert_readable(path)
        assert len(events) >= fail_at
        loaded = (await c.ok("load", {"session_id": sid}))["session"]
        assert [m["message_id"] for m in loaded["messages"]][: fail_at - 1] == [
            f"ok-{i}" for i in range(1, fail_at)
        ]
        listed = (await c.ok("list", {}))["sessions"]
        assert sid in [r["session_id"] for r in listed]
        # still refused while the fault lasts (never retried into a false success)
        st, body = await c.append(sid, "doomed", "x" * 5000)
        assert st == status, body
        # the disk comes back
        off.touch()
        for mid in ("doomed", "ws-doomed", "after-1", "after-2"):
            st, body = await c.append(sid, mid)
            assert st == 200, body
        final = (await c.ok("load", {"session_id": sid}))["session"]
        await w.until(final["seq"])
        await w.close()
        assert w.seqs == list(range(1, final["seq"] + 1)), "a subscriber saw a gap"
    ids = message_ids(path)
    assert sorted(ids) == sorted({*ids}), "a retried append was written twice"
    assert {"doomed", "ws-doomed", "after-1", "after-2"} <= set(ids)
    assert_readable(path)
    assert before == path.read_bytes()[: len(before)]


async def test_injected_enospc_is_refused_with_507_and_the_server_recovers(
    server_factory: Any, tmp_path: Path
) -> None:
    data, off = tmp_path / "memory", tmp_path / "disk-is-back"
    srv = server_factory(
        data,
        compact_interval=0,
        env={"SESSIONLOG_FAULTS": "journal.write=ENOSPC:4", "SESSIONLOG_FAULTS_OFF": str(off)},
    )
    await _refused_then_recovers(srv, data, off, 4, 507, "space")
    assert srv.alive()


async def test_injected_eio_on_fsync_is_refused_with_503_and_the_server_recovers(
    server_factory: Any, tmp_path: Path
) -> None:
    data, off = tmp_path / "memory", tmp_path / "disk-is-back"
    # fsync #1 is the journal's open, #2 and #3 the first two appends: the third fails
    srv = server_factory(
        data,
        compact_interval=0,
        env={"SESSIONLOG_FAULTS": "journal.fsync=EIO:4", "SESSIONLOG_FAULTS_OFF": str(off)},
    )
    await _refused_then_recovers(srv, data, off, 3, 503, "fsync")
    assert srv.alive()


# -- a real full disk ----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, or a skip saying why there is none."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip(
            "a real full disk needs root to mount a 2 MB tmpfs (injected ENOSPC "
            "is tested regardless)"
        )
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(
            f"mount -t tmpfs is not permitted here ({r.stderr.strip()}); "
            "injected ENOSPC is tested regardless"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full; returns bytes written."""
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                n += os.write(fd, b"\0" * 65536)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
        # the last pages may still take a short write
        for size in (4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    n += os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return n


async def test_a_real_full_disk_refuses_appends_keeps_reads_and_recovers(
    server_factory: Any, small_disk: Path
) -> None:
    data = small_disk / "memory"
    filler = small_disk / "filler"
    srv = server_factory(data, compact_interval=0.2)
    async with client(srv) as c:
        sid = (await c.ok("start", {"title": "full disk"}))["session_id"]
        w = await watch(c, sid)
        for i in range(5):
            await c.ok(
                "append",
                {
                    "session_id": sid,
                    "role": "user",
                    "content": f"before {i}",
                    "message_id": f"b{i}",
                },
            )
        await c.ok("list", {})  # the index is written while there is room
        await asyncio.sleep(0.5)  # and a snapshot
        path = journal_of(data, sid)
        assert fill(filler) > 0
        before = path.read_bytes()
        # 16 kB needs fresh pages: a real ENOSPC (a short write first, then none)
        for k in range(3):
            st, body = await c.append(sid, f"big{k}", f"{k}" * 16384)
            assert st == 507, (st, body)
            assert_envelope(st, body, "storage_error")
        assert path.read_bytes() == before  # short writes were cut back
        assert_readable(path)
        st, body = await c.post("start", {"title": "no room"})
        assert st == 507, (st, body)
        assert_envelope(st, body, "storage_error")
        # reads go on while the disk is full
        loaded = (await c.ok("load", {"session_id": sid}))["session"]
        assert [m["message_id"] for m in loaded["messages"]] == [f"b{i}" for i in range(5)]
        assert sid in [r["session_id"] for r in (await c.ok("list", {}))["sessions"]]
        st, body = await c.post("list", {"query": "before"})
        assert st == 200, body
        await asyncio.sleep(0.5)  # the compactor runs into the full disk meanwhile
        assert srv.alive()
        # free the disk
        filler.unlink()
        for k in range(3):
            st, body = await c.append(sid, f"big{k}", f"{k}" * 16384)
            assert st == 200 and body["duplicate"] is False, body
        await c.ok("start", {"title": "room again"})
        final = (await c.ok("load", {"session_id": sid}))["session"]
        await w.until(final["seq"])
        await w.close()
        assert w.seqs == list(range(1, final["seq"] + 1))
    assert message_ids(path) == [f"b{i}" for i in range(5)] + ["big0", "big1", "big2"]
    assert_readable(path)
    assert srv.stop() == 0  # a graceful shutdown still works (final compaction)
    assert not [p for p in data.rglob("*.tmp-*")], "a failed snapshot left its temp file"


# -- engine-level regressions for the failed-fsync path ------------------------------------


def _eio(fd: int) -> None:
    raise OSError(errno.EIO, "Input/output error (test)")


def test_retry_after_a_failed_fsync_is_refused_while_the_disk_still_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: after an fsync failed, the line stays in the file; the reopened
    journal read it and answered a retry of the same message_id ``duplicate: true``
    (a success) without any fsync having succeeded since: a false success. A journal
    now fsyncs what it reads at open, so the retry is refused while the disk fails,
    and acknowledged (once, at the original seq) only after an fsync succeeded."""
    from eventlog.backends.file import syscalls
    from eventlog.backends.file.store import Store
    from eventlog.errors import StorageError
    from eventlog.requests import AppendRequest, StartRequest

    with Store(tmp_path / "m", background=False) as s:
        sid = s.start(StartRequest()).session_id
        s.append(AppendRequest(session_id=sid, role="user", content="ok", message_id="ok"))
        monkeypatch.setattr(syscalls, "fdatasync", _eio)
        req = AppendRequest(session_id=sid, role="user", content="x", message_id="doomed")
        for _ in range(3):
            with pytest.raises(StorageError, match="fsync"):
                s.append(req)
        monkeypatch.undo()
        synced: list[int] = []
        real = syscalls.fdatasync
        monkeypatch.setattr(syscalls, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
        r = s.append(req)
        assert (r.seq, r.duplicate) == (3, True) and synced, "acked without a good fsync"
        assert [m.message_id for m in s.load(sid).session.messages] == ["ok", "doomed"]


def test_subscribers_see_no_gap_after_a_failed_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the line whose fsync failed is in the journal (and in every load),
    but the journal object that wrote it was dropped without publishing it, and its
    replacement treated it as history: subscribers got seq N-1 then N+1, a gap they
    cannot detect the cause of. The replacement now publishes it first, in order."""
    from eventlog.backends.file import syscalls
    from eventlog.backends.file.store import Store
    from eventlog.errors import StorageError
    from eventlog.notify import Published
    from eventlog.requests import AppendRequest, StartRequest

    with Store(tmp_path / "m", background=False) as s:
        sid = s.start(StartRequest()).session_id
        seen: list[int] = []
        s.subscribe(
            lambda n: seen.extend(e.seq for e in n.events) if isinstance(n, Published) else None
        )
        s.append(AppendRequest(session_id=sid, role="user", content="a"))
        monkeypatch.setattr(syscalls, "fdatasync", _eio)
        with pytest.raises(StorageError):
            s.append(AppendRequest(session_id=sid, role="user", content="b"))
        monkeypatch.undo()
        s.append(AppendRequest(session_id=sid, role="user", content="c"))
        assert seen == [2, 3, 4]
        assert s.head(sid) == 4


def _enospc(fd: int, data: bytes) -> int:
    raise OSError(errno.ENOSPC, "No space left on device (test)")


def test_a_refused_append_never_reaches_the_list_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an append is applied to the journal's in-memory state before its
    line is written (the next build in the batch must see it); when the write failed,
    the journal was poisoned, but the index flush still read that state, so the list
    and full-text search showed a message that was never saved (until a restart's
    reconcile). A poisoned journal is now reopened from the file for the index, and
    what it had published but not yet indexed is kept."""
    from eventlog.backends.file import syscalls
    from eventlog.backends.file.store import Store
    from eventlog.errors import StorageError
    from eventlog.requests import AppendRequest, ListRequest, StartRequest

    with Store(tmp_path / "m", background=False) as s:
        sid = s.start(StartRequest()).session_id
        s.flush_index()
        # saved and acknowledged, but not yet in the index when the next one fails
        s.append(AppendRequest(session_id=sid, role="user", content="kept aardvark"))
        monkeypatch.setattr(syscalls, "write", _enospc)
        with pytest.raises(StorageError, match="not saved"):
            s.append(AppendRequest(session_id=sid, role="user", content="lost zebra"))
        monkeypatch.undo()
        (row,) = s.list().sessions
        assert row.message_count == 1 and row.seq == 2, row
        assert s.list(ListRequest(query="zebra")).sessions == []
        assert [r.session_id for r in s.list(ListRequest(query="aardvark")).sessions] == [sid]
        # and the session goes on from the file's truth
        r = s.append(AppendRequest(session_id=sid, role="user", content="next yak"))
        assert r.seq == 3
        (row,) = s.list().sessions
        assert row.message_count == 2 and row.seq == 3, row
        assert [r.session_id for r in s.list(ListRequest(query="yak")).sessions] == [sid]
        assert s.list(ListRequest(query="zebra")).sessions == []
