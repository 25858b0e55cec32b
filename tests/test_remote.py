"""RemoteBackend against a real server: retries that never write twice, subscriptions
that resume without gap or duplicate over a connection that breaks, and the engine's
own exception classes for the server's error answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog.backends.remote import RemoteBackend, RemoteError, ServerUnavailable
from eventlog.errors import (
    InvalidRequest,
    PayloadTooLarge,
    SequenceConflict,
    SessionExists,
    SessionNotFound,
)
from eventlog.notify import Lifecycle, Notice, Published
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    StartRequest,
    UpdateRequest,
)

from .proxy import Proxy
from .served import ThreadedServer


@pytest.fixture
def server(tmp_path: Path) -> AsyncIterator[ThreadedServer]:
    s = ThreadedServer(tmp_path / "data")
    yield s  # type: ignore[misc]
    s.stop()


@pytest.fixture
async def proxy(server: ThreadedServer) -> AsyncIterator[Proxy]:
    async with Proxy(server.port) as p:
        yield p


async def _until(check: object, what: str, seconds: float = 20.0) -> None:
    """Wait for a condition the test is about to assert (a bound, not a timing claim)."""
    for _ in range(int(seconds / 0.01)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


async def test_an_append_whose_answer_is_lost_is_retried_and_written_once(
    server: ThreadedServer, proxy: Proxy
) -> None:
    b = RemoteBackend(proxy.url)
    try:
        sid = (await b.start(StartRequest())).session_id
        proxy.lose_answer(b"/api/sessions/append")
        r = await b.append(AppendRequest(session_id=sid, role="user", content="once"))
        assert proxy.lost == 1
        # the retry carried the same event id: the server answered with the first seq
        assert (r.seq, r.duplicate) == (2, False)
        s = (await b.load(LoadRequest(session_id=sid))).session
        assert [m.content for m in s.messages] == ["once"] and s.seq == 2
    finally:
        await b.close()


async def test_a_delta_and_an_update_whose_answers_are_lost_are_written_once(
    server: ThreadedServer, proxy: Proxy
) -> None:
    b = RemoteBackend(proxy.url)
    try:
        sid = (await b.start(StartRequest())).session_id
        await b.append(
            AppendRequest(
                session_id=sid, role="assistant", content="", partial=True, message_id="m"
            )
        )
        proxy.lose_answer(b"/api/sessions/delta")
        await b.delta(DeltaRequest(session_id=sid, message_id="m", content="tok"))
        proxy.lose_answer(b"/api/sessions/complete")
        await b.complete(CompleteRequest(session_id=sid, message_id="m"))
        proxy.lose_answer(b"/api/sessions/update")
        u = await b.update(UpdateRequest(session_id=sid, title="t"))
        assert proxy.lost == 3 and (u.seq, u.duplicate) == (5, False)
        s = (await b.load(LoadRequest(session_id=sid))).session
        assert (s.seq, s.messages[0].content, s.messages[0].status, s.title) == (
            5,
            "tok",
            "complete",
            "t",
        )
    finally:
        await b.close()


async def test_a_caller_supplied_id_repeated_is_reported_as_a_duplicate(
    server: ThreadedServer,
) -> None:
    b = RemoteBackend(server.url)
    try:
        sid = (await b.start(StartRequest())).session_id
        req = AppendRequest(session_id=sid, role="user", content="x", id="evt-1")
        first, again = await b.append(req), await b.append(req)
        assert (first.duplicate, again.duplicate, again.seq) == (False, True, first.seq)
    finally:
        await b.close()


async def test_a_start_whose_answer_is_lost_is_not_repeated(
    server: ThreadedServer, proxy: Proxy
) -> None:
    """start has no id to deduplicate by: it fails clearly instead of making two sessions."""
    b = RemoteBackend(proxy.url)
    try:
        proxy.lose_answer(b"/api/sessions/start")
        with pytest.raises(ServerUnavailable, match="may or may not"):
            await b.start(StartRequest(title="only one"))
        assert (await b.list(ListRequest())).total_sessions == 1
    finally:
        await b.close()


async def test_a_subscription_resumes_after_dropped_connections_with_no_gap_or_duplicate(
    server: ThreadedServer, proxy: Proxy
) -> None:
    listener_side = RemoteBackend(proxy.url)
    writer = RemoteBackend(server.url)  # another process's client, on a good connection
    try:
        sid = (await writer.start(StartRequest())).session_id
        heard: list[int] = []

        def hear(n: Notice) -> None:
            if isinstance(n, Published) and n.session_id == sid:
                heard.extend(e.seq for e in n.events)

        stop = listener_side.subscribe(hear)
        assert await listener_side.watch(sid) == 1
        for i in range(120):
            await writer.append(AppendRequest(session_id=sid, role="user", content=f"m{i}"))
            if i % 25 == 10:
                proxy.drop_all()  # the socket dies; later appends happen while it is down
        await _until(lambda: len(heard) >= 120 and heard[-1] == 121, "every event")
        assert heard == list(range(2, 122))
        stop()
    finally:
        await listener_side.close()
        await writer.close()


async def test_listeners_hear_lifecycle_and_a_write_before_it_returns(
    server: ThreadedServer,
) -> None:
    b = RemoteBackend(server.url)
    try:
        heard: list[Notice] = []
        stop = b.subscribe(heard.append)
        sid = (await b.start(StartRequest(title="new"))).session_id
        r = await b.append(AppendRequest(session_id=sid, role="user", content="hello"))
        assert any(isinstance(n, Published) and n.events[-1].seq == r.seq for n in heard)
        await b.delete(sid)
        await _until(
            lambda: any(isinstance(n, Lifecycle) and n.type == "session.deleted" for n in heard),
            "the delete notice",
        )
        kinds = [n.type for n in heard if isinstance(n, Lifecycle) and n.session_id == sid]
        assert kinds[0] == "session.started" and kinds[-1] == "session.deleted"
        stop()
    finally:
        await b.close()


async def test_error_answers_raise_the_in_process_exception_classes(
    server: ThreadedServer,
) -> None:
    b = RemoteBackend(server.url)
    try:
        with pytest.raises(SessionNotFound) as nf:
            await b.load(LoadRequest(session_id="nope"))
        assert nf.value.session_id == "nope" and nf.value.code == "not_found"
        sid = (await b.start(StartRequest())).session_id
        with pytest.raises(SequenceConflict) as conflict:
            await b.append(AppendRequest(session_id=sid, role="user", content="x", expected_seq=7))
        assert (conflict.value.current, conflict.value.expected) == (1, 7)
        with pytest.raises(InvalidRequest) as bad:
            await b.append(AppendRequest(session_id="no spaces", role="user", content="x"))
        assert bad.value.field == "session_id"
        with pytest.raises(PayloadTooLarge):
            await b.append(AppendRequest(session_id=sid, role="user", content="x" * 1_000_001))
        with pytest.raises(SessionNotFound):
            await b.watch("missing")
        dump = b"".join(
            [c async for c in await b.export(ExportRequest(session_id=sid, format="events"))]
        )
        with pytest.raises(SessionExists):
            await b.import_events(dump)
        with pytest.raises(SessionNotFound):
            await b.export(ExportRequest(session_id="missing", format="events"))
    finally:
        await b.close()


async def test_a_token_is_sent_on_http_and_the_websocket(tmp_path: Path) -> None:
    server = ThreadedServer(tmp_path / "data", token="s3cret")
    good, bad = RemoteBackend(server.url, token="s3cret"), RemoteBackend(server.url, token="no")
    try:
        sid = (await good.start(StartRequest())).session_id
        assert await good.watch(sid) == 1
        with pytest.raises(RemoteError) as refused:
            await bad.list(ListRequest())
        assert (refused.value.code, refused.value.status) == ("unauthorized", 401)
    finally:
        await good.close()
        await bad.close()
        server.stop()


async def test_an_unreachable_server_is_a_clear_error_after_the_retries() -> None:
    b = RemoteBackend("http://127.0.0.1:9", retries=1, retry_delay=0.01)
    try:
        with pytest.raises(ServerUnavailable, match="is it running"):
            await b.list(ListRequest())
    finally:
        await b.close()


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="http://host:port"):
        RemoteBackend("127.0.0.1:5174")


async def test_compact_and_health_reach_the_server(server: ThreadedServer) -> None:
    b = RemoteBackend(server.url)
    try:
        sid = (await b.start(StartRequest())).session_id
        await b.append(AppendRequest(session_id=sid, role="user", content="x"))
        assert await b.compact() >= 1
        health = await b.health()
        assert health["status"] == "ok" and health["sessions"] == 1
        snapshot = next((Path(server.config.data) / "sessions").rglob(f"{sid}.json"))
        assert b'"seq":2' in snapshot.read_bytes().replace(b" ", b"")
    finally:
        await b.close()
