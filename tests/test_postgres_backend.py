"""The postgres backend's own guarantees, beyond the shared conformance suite: two
instances (two ``PostgresBackend`` objects on one database) racing on one session,
batched token deltas, the migrations' version rules, and refused input writing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from eventlog import connect
from eventlog.backends.postgres import schema
from eventlog.backends.postgres.backend import PostgresBackend
from eventlog.errors import EventLogError, InvalidRequest, SessionNotFound
from eventlog.notify import Published
from eventlog.requests import (
    AppendRequest,
    DeltaRequest,
    ListRequest,
    LoadRequest,
    StartRequest,
    UpdateRequest,
)
from tests import pg

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[PostgresBackend, PostgresBackend]]:
    a, b = PostgresBackend(pg_url, pool_size=8), PostgresBackend(pg_url, pool_size=8)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def dump(url: str) -> dict[str, list[Any]]:
    """Every row of every table we write, to prove a refused request changed nothing."""
    conn = await asyncpg.connect(url)
    try:
        return {
            t: sorted(tuple(map(str, r)) for r in await conn.fetch(f"SELECT * FROM {t}"))
            for t in ("sessions", "events", "docs", "snapshots", "used_ids", "counter_deltas")
        }
    finally:
        await conn.close()


async def test_connect_picks_the_backend_from_the_target(pg_url: str, tmp_path: Any) -> None:
    b = connect(pg_url.replace("postgresql://", "postgres://"))
    assert isinstance(b, PostgresBackend)
    await b.close()
    with pytest.raises(ValueError, match="expected a data directory path"):
        connect("redis://localhost/0")


async def test_concurrent_first_appends_through_two_instances_all_land_gap_free(
    two: tuple[PostgresBackend, PostgresBackend],
) -> None:
    a, b = two
    sid = (await a.start(StartRequest())).session_id
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).append(
                AppendRequest(session_id=sid, role="user", content=str(i), message_id=f"m{i}")
            )
            for i in range(120)
        )
    )
    assert sorted(r.seq for r in results) == list(range(2, 122))
    loaded = (await b.load(LoadRequest(session_id=sid))).session
    assert sorted(m.message_id for m in loaded.messages) == sorted(f"m{i}" for i in range(120))
    assert [e.seq for e in await a.events(sid, 0)] == list(range(1, 122))


async def test_each_instance_hears_the_others_events_once_in_order_when_watching(
    two: tuple[PostgresBackend, PostgresBackend],
) -> None:
    a, b = two
    sid = (await a.start(StartRequest())).session_id
    heard: list[int] = []
    a.subscribe(
        lambda n: heard.extend(e.seq for e in n.events) if isinstance(n, Published) else None
    )
    await a.watch(sid)
    for i in range(30):
        await (a if i % 3 == 0 else b).append(
            AppendRequest(session_id=sid, role="user", content=str(i))
        )
    for _ in range(200):
        if heard[-1:] == [31]:
            break
        await asyncio.sleep(0.05)
    assert heard == list(range(2, 32))


async def test_token_deltas_that_arrive_together_share_one_transaction(pg_url: str) -> None:
    b = PostgresBackend(pg_url, pool_size=4)
    try:
        sid = (await b.start(StartRequest())).session_id
        await b.append(
            AppendRequest(
                session_id=sid, role="assistant", content="", partial=True, message_id="s"
            )
        )
        await asyncio.gather(
            *(b.delta(DeltaRequest(session_id=sid, message_id="s", content=c)) for c in "abcdefgh")
        )
        session = (await b.load(LoadRequest(session_id=sid))).session
        assert session.messages[0].content == "abcdefgh"
        conn = await asyncpg.connect(pg_url)
        try:  # rows inserted by one transaction share its xmin
            transactions = await conn.fetchval(
                "SELECT count(DISTINCT xmin::text) FROM events WHERE session_id = $1 AND seq > 2",
                sid,
            )
        finally:
            await conn.close()
        assert transactions == 1
    finally:
        await b.close()


async def test_search_text_is_written_when_a_message_completes_not_per_delta(
    pg_url: str,
) -> None:
    b = PostgresBackend(pg_url, pool_size=4)
    try:
        sid = (await b.start(StartRequest())).session_id
        await b.append(
            AppendRequest(
                session_id=sid, role="assistant", content="", partial=True, message_id="s"
            )
        )
        await b.delta(DeltaRequest(session_id=sid, message_id="s", content="zebra"))
        assert (await b.list(ListRequest(query="zebra"))).total_sessions == 0
        from eventlog.requests import CompleteRequest

        await b.complete(CompleteRequest(session_id=sid, message_id="s"))
        found = await b.list(ListRequest(query="zeb"))
        assert [s.session_id for s in found.sessions] == [sid]
    finally:
        await b.close()


async def test_a_newer_schema_is_refused_with_a_message_saying_so(pg_url: str) -> None:
    b = PostgresBackend(pg_url, pool_size=2)
    await b.open()
    await b.close()
    conn = await asyncpg.connect(pg_url)
    try:
        assert await schema.current_version(conn) == schema.LATEST
        assert await schema.migrate(conn) == []  # already current: nothing applied
        await conn.execute(
            "INSERT INTO sessionlog_schema (version, name) VALUES ($1, 'from_the_future')",
            schema.LATEST + 1,
        )
    finally:
        await conn.close()
    b = PostgresBackend(pg_url, pool_size=2)
    with pytest.raises(schema.SchemaTooNew, match="upgrade sessionlog"):
        await b.open()
    await b.close()


async def test_refused_requests_write_nothing_to_the_database(pg_url: str) -> None:
    b = PostgresBackend(pg_url, pool_size=4)
    try:
        sid = (await b.start(StartRequest(title="t"))).session_id
        await b.append(AppendRequest(session_id=sid, role="user", content="x", message_id="m"))
        before = await dump(pg_url)
        refusals: list[Any] = [
            b.append(AppendRequest(session_id=sid, role="user", content="y", expected_seq=1)),
            b.append(AppendRequest(session_id="nope", role="user", content="y")),
            b.delta(DeltaRequest(session_id=sid, message_id="m", content="more")),
            b.delta(DeltaRequest(session_id=sid, message_id="ghost", content="more")),
            b.update(UpdateRequest(session_id=sid)),
            b.update(UpdateRequest(session_id="../etc", title="x")),
            b.delete("missing"),
            b.import_events(b"not json\n"),
        ]
        for call in refusals:
            with pytest.raises(EventLogError) as e:
                await call
            assert (
                isinstance(e.value, (InvalidRequest, SessionNotFound)) or e.value.code == "conflict"
            )
        # an import that meets an existing session writes none of its sessions
        dump_bytes = b"".join([c async for c in await b.export(_all_events())])
        with pytest.raises(EventLogError, match="already exists"):
            await b.import_events(dump_bytes)
        assert await dump(pg_url) == before
    finally:
        await b.close()


def _all_events() -> Any:
    from eventlog.requests import ExportRequest

    return ExportRequest(all=True, format="events")


async def test_without_a_database_url_the_tests_say_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(pg.ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="start-postgres"):
        pg.admin_url()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        pg.admin_url()


async def test_the_list_reads_from_the_read_replica_url_when_given(pg_url: str) -> None:
    """Stands a second database in for a replica: the list shows what it holds."""
    replica_url = await pg.create_database()
    try:
        replica = PostgresBackend(replica_url, pool_size=2)
        only_there = (await replica.start(StartRequest(title="on the replica"))).session_id
        await replica.close()
        b = PostgresBackend(pg_url, pool_size=2, read_url=replica_url)
        try:
            mine = (await b.start(StartRequest(title="on the primary"))).session_id
            listed = [s.session_id for s in (await b.list(ListRequest())).sessions]
            assert listed == [only_there]
            assert (await b.load(LoadRequest(session_id=mine))).session.title == "on the primary"
        finally:
            await b.close()
    finally:
        await pg.drop_database(replica_url)


async def test_a_version_1_database_migrates_to_the_latest_and_keeps_its_sessions(
    pg_url: str,
) -> None:
    """Migrations are applied in order on a database an older release wrote; its
    sessions stay, and after a reindex its search hits have text and positions."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE TABLE sessionlog_schema (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version, name, sql = schema.migrations()[0]
        await conn.execute(sql)
        await conn.execute("INSERT INTO sessionlog_schema VALUES ($1, $2)", version, name)
        await conn.execute(
            "SELECT sessionlog_start('oldsession01', 'e1', $1, '2026-01-01T00:00:00.000Z', "
            "'chat', $2, 'Old Title', 'S x oldsession01')",
            '{"seq":1,"id":"e1","type":"session.started","ts":"2026-01-01T00:00:00.000Z",'
            '"data":{"user_name":"U","metadata":{"type":"chat"},"title":"Old Title"}}',
            '{"session_id":"oldsession01","user_name":"U","title":"Old Title","started_at":'
            '"2026-01-01T00:00:00.000Z","last_updated":"2026-01-01T00:00:00.000Z",'
            '"message_count":0,"user_messages":0,"assistant_messages":0,"preview":"",'
            '"type":"chat","tags":[],"pinned":false,"archived":false,"seq":1}',
        )
        assert await schema.migrate(conn) == list(range(2, schema.LATEST + 1))
    finally:
        await conn.close()
    b = PostgresBackend(pg_url, pool_size=2)
    try:
        await b.append(AppendRequest(session_id="oldsession01", role="user", content="new text"))
        from eventlog.backends.postgres.maintenance import reindex

        await reindex(b, lambda n: None)
        found = await b.list(ListRequest(query="old title"))
        assert [(h.session_id, h.message_index) for h in found.hits] == [("oldsession01", None)]
        assert "\x02Old\x03" in found.hits[0].snippet
        found = await b.list(ListRequest(query="new"))
        assert [(h.session_id, h.message_index) for h in found.hits] == [("oldsession01", 0)]
    finally:
        await b.close()


async def test_writes_to_many_sessions_that_arrive_together_share_one_commit(
    pg_url: str,
) -> None:
    """Group commit across sessions: one round trip and one WAL flush for all that is
    ready, and each session still gets exactly its own events, gap-free."""
    b = PostgresBackend(pg_url, pool_size=4)
    try:
        sids = [(await b.start(StartRequest())).session_id for _ in range(20)]
        for sid in sids:  # each state is cached now: nothing to read before writing
            await b.append(AppendRequest(session_id=sid, role="user", content="first"))
        calls = b.writes.group.calls
        results = await asyncio.gather(
            *(b.append(AppendRequest(session_id=s, role="user", content="second")) for s in sids)
        )
        assert b.writes.group.calls - calls == 1
        assert [r.seq for r in results] == [3] * 20
        conn = await asyncpg.connect(pg_url)
        try:
            xmins = await conn.fetchval(
                "SELECT count(DISTINCT xmin::text) FROM events WHERE seq = 3"
            )
        finally:
            await conn.close()
        assert xmins == 1
        for sid in sids:
            assert [e.seq for e in await b.events(sid, 0)] == [1, 2, 3]
    finally:
        await b.close()


async def test_reindex_while_another_instance_writes_keeps_rows_and_totals_right(
    two: tuple[PostgresBackend, PostgresBackend],
) -> None:
    """Regression: reindex used to reset the totals first and then add each session's
    count, so an append that landed between the two was counted twice (and a row could
    be rebuilt from events read before an append, hiding it until the next one)."""
    from eventlog.backends.postgres.maintenance import reindex

    a, b = two
    sids = [(await a.start(StartRequest())).session_id for _ in range(12)]
    for sid in sids:
        await a.append(AppendRequest(session_id=sid, role="user", content="before"))
    stop = asyncio.Event()

    async def write() -> int:
        k = 0
        while not stop.is_set():
            sid = sids[k % len(sids)]
            await a.append(AppendRequest(session_id=sid, role="assistant", content=f"w {k}"))
            k += 1
            if k % 7 == 0:  # sessions come and go meanwhile too
                gone = (await a.start(StartRequest())).session_id
                await a.append(AppendRequest(session_id=gone, role="user", content="x"))
                await a.delete(gone)
        return k

    writer = asyncio.create_task(write())
    try:
        for _ in range(3):
            await reindex(b, lambda n: None)
    finally:
        stop.set()
        writes = await writer
    assert writes > 0
    await a.compact()  # folds the counter deltas into the totals
    listed = await b.list(ListRequest(limit=100))
    loaded = {s: (await b.load(LoadRequest(session_id=s))).session for s in sids}
    assert listed.total_sessions == len(sids)
    assert listed.total_messages == sum(len(s.messages) for s in loaded.values())
    assert {r.session_id: r.message_count for r in listed.sessions} == {
        s: len(loaded[s].messages) for s in sids
    }


async def test_appends_go_on_when_the_write_connections_are_killed(pg_url: str) -> None:
    """The group commit keeps its own connections between calls: when the database ends
    them (a restart, a failover, an admin), the next append opens new ones, and each
    append is written exactly once."""
    b = PostgresBackend(pg_url, pool_size=4)
    killer = await asyncpg.connect(pg_url)
    try:
        sid = (await b.start(StartRequest())).session_id
        for round_ in range(3):
            # several writes at once, so that several connections are kept
            await asyncio.gather(
                *(
                    b.append(AppendRequest(session_id=s, role="user", content="warm"))
                    for s in [sid] + [(await b.start(StartRequest())).session_id for _ in range(3)]
                )
            )
            killed = await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = 'sessionlog'"
            )
            assert killed >= 1
            r = await b.append(
                AppendRequest(session_id=sid, role="user", content=f"after {round_}")
            )
            assert not r.duplicate
        rows = await killer.fetch("SELECT seq FROM events WHERE session_id = $1 ORDER BY seq", sid)
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        contents = [m.content for m in (await b.load(LoadRequest(session_id=sid))).session.messages]
        assert contents == ["warm", "after 0", "warm", "after 1", "warm", "after 2"]
    finally:
        await killer.close()
        await b.close()
