"""The Backend contract, run unchanged against every backend: files, PostgreSQL, and a
remote server over HTTP + WebSocket.

A new backend joins by adding a factory to ``tests/backends.py``; server/ needs nothing
else. The ``backend`` fixture (conftest) gives each test a fresh one of each kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.backend import Backend
from eventlog.errors import SequenceConflict, SessionNotFound
from eventlog.notify import Lifecycle, Notice, Published
from eventlog.requests import (
    AppendRequest,
    DeltaRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    StartRequest,
    UpdateRequest,
)
from tests import pg
from tests.backends import BACKENDS


async def _session(b: Backend) -> str:
    return (await b.start(StartRequest(title="conformance"))).session_id


async def test_append_then_load_returns_the_message(backend: Backend) -> None:
    sid = await _session(backend)
    r = await backend.append(AppendRequest(session_id=sid, role="user", content="hi"))
    loaded = (await backend.load(LoadRequest(session_id=sid))).session
    assert r.seq == 2 and loaded.seq == 2 and loaded.messages[0].content == "hi"


async def test_duplicates_and_conflicts(backend: Backend) -> None:
    sid = await _session(backend)
    a = await backend.append(
        AppendRequest(session_id=sid, role="user", content="x", message_id="m")
    )
    b = await backend.append(
        AppendRequest(session_id=sid, role="user", content="x", message_id="m")
    )
    assert (b.seq, b.duplicate) == (a.seq, True)
    with pytest.raises(SequenceConflict):
        await backend.append(
            AppendRequest(session_id=sid, role="user", content="y", expected_seq=1)
        )
    with pytest.raises(SessionNotFound):
        await backend.load(LoadRequest(session_id="missing"))


async def test_listeners_hear_events_in_seq_order_after_durability(backend: Backend) -> None:
    sid = await _session(backend)
    heard: list[Notice] = []
    stop = backend.subscribe(heard.append)
    await asyncio.gather(
        *(
            backend.append(AppendRequest(session_id=sid, role="user", content=str(i)))
            for i in range(200)
        )
    )
    await backend.update(UpdateRequest(session_id=sid, title="renamed"))
    await asyncio.sleep(0.05)
    stop()
    seqs = [e.seq for n in heard if isinstance(n, Published) for e in n.events]
    assert seqs == list(range(2, 203))
    titles = [n.summary.title for n in heard if isinstance(n, Lifecycle) and n.summary]
    assert titles[-1] == "renamed"


async def test_list_and_delete(backend: Backend) -> None:
    sid = await _session(backend)
    await backend.append(AppendRequest(session_id=sid, role="user", content="find the walrus"))
    found = await backend.list(ListRequest(query="walrus"))
    assert [s.session_id for s in found.sessions] == [sid]
    await backend.delete(sid)
    assert (await backend.list(ListRequest())).total_sessions == 0
    with pytest.raises(SessionNotFound):
        await backend.events(sid, 0)


async def test_search_says_which_message_matched_with_a_marked_snippet(backend: Backend) -> None:
    """The page shows why a session matched and jumps to that message (issue 13)."""
    sid = await _session(backend)
    for text in ("hello", "the quokka smiles at Rottnest", "bye"):
        await backend.append(AppendRequest(session_id=sid, role="user", content=text))
    found = await backend.list(ListRequest(query="quokka"))
    assert [(h.session_id, h.message_index) for h in found.hits] == [(sid, 1)]
    assert "\x02quokka\x03" in found.hits[0].snippet
    assert (await backend.list(ListRequest())).hits == []


async def test_tags_are_one_tag_whatever_their_case(backend: Backend) -> None:
    """ "work" and "Work" are one tag: no repeats in a session, and a filter finds both."""
    a, b = await _session(backend), await _session(backend)
    await backend.update(UpdateRequest(session_id=a, tags=["Work", "work", "WORK", "home"]))
    await backend.update(UpdateRequest(session_id=b, tags=["work"]))
    loaded = (await backend.load(LoadRequest(session_id=a))).session
    assert loaded.tags == ["Work", "home"]
    for spelling in ("work", "Work", "wORK"):
        found = await backend.list(ListRequest(tag=spelling))
        assert {s.session_id for s in found.sessions} == {a, b}, spelling


async def test_export_events_round_trips_through_import(backend: Backend) -> None:
    sid = await _session(backend)
    await backend.append(AppendRequest(session_id=sid, role="user", content="keep me"))
    before = (await backend.load(LoadRequest(session_id=sid))).session
    dump = b"".join(
        [c async for c in await backend.export(ExportRequest(all=True, format="events"))]
    )
    await backend.delete(sid)
    assert await backend.import_events(dump) == [sid]
    assert (await backend.load(LoadRequest(session_id=sid))).session == before


async def test_streaming_deltas_reach_listeners(backend: Backend) -> None:
    sid = await _session(backend)
    heard: list[Notice] = []
    stop = backend.subscribe(heard.append)
    await backend.append(
        AppendRequest(session_id=sid, role="assistant", content="", partial=True, message_id="s")
    )
    for tok in ("a", "b", "c"):
        await backend.delta(DeltaRequest(session_id=sid, message_id="s", content=tok))
    await asyncio.sleep(0.05)
    stop()
    types = [type(e).__name__ for n in heard if isinstance(n, Published) for e in n.events]
    assert types == ["MessageAppended", "MessageDelta", "MessageDelta", "MessageDelta"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=st.integers(0, 30), during=st.integers(0, 30), after_seq=st.integers(0, 40))
def test_resume_never_gaps(
    tmp_path_factory: pytest.TempPathFactory, before: int, during: int, after_seq: int
) -> None:
    """Subscribe as the server does (listener first, then backlog after ``after_seq``,
    then live, skipping seen seqs) while appends race it: the subscriber sees exactly
    after_seq+1..N, in order, whatever the interleaving."""

    async def run() -> None:
        for name, make in BACKENDS.items():
            if name == "postgres" and not pg.available():
                continue  # the fixture-based tests report the skip and how to fix it
            if name in urls and urls[name] is None:
                urls[name] = await pg.create_database()  # one database for all examples
            b = make(tmp_path_factory.mktemp("resume"), urls.get(name) or "")
            try:
                sid = await _session(b)
                for i in range(before):
                    await b.append(AppendRequest(session_id=sid, role="user", content=f"b{i}"))
                live: list[int] = []

                def hear(n: Notice, live: list[int] = live, sid: str = sid) -> None:
                    if isinstance(n, Published) and n.session_id == sid:
                        live.extend(e.seq for e in n.events)

                stop = b.subscribe(hear)
                racing = asyncio.gather(
                    *(
                        b.append(AppendRequest(session_id=sid, role="user", content=f"d{i}"))
                        for i in range(during)
                    )
                )
                await b.watch(sid)
                backlog = [e.seq for e in await b.events(sid, after_seq)]
                await racing
                await asyncio.sleep(0.02)
                stop()
                got = list(backlog)
                for s in live:
                    if s > (got[-1] if got else after_seq):
                        got.append(s)
                head = 1 + before + during
                assert got == list(range(after_seq + 1, head + 1))
            finally:
                await b.close()

    asyncio.run(run())


@pytest.fixture(scope="module", autouse=True)
def _resume_databases() -> Iterator[None]:
    """``test_resume_never_gaps`` shares one database across its examples (each uses
    its own session); it is dropped when the module is done."""
    yield
    for name, url in list(urls.items()):
        if url:
            asyncio.run(pg.drop_database(url))
        urls[name] = None


urls: dict[str, str | None] = {"postgres": None}
