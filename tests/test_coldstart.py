"""A cold start of a large store without an index: every session listed first (rows read
in worker processes), full-text docs written after, nothing lost on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlog.backends.file import coldstart
from eventlog.backends.file.layout import Layout
from eventlog.backends.file.store import Store
from eventlog.requests import AppendRequest, ListRequest

from .test_lenient import foreign_session, write_journal


def make_store(root: Path, n: int) -> None:
    for i in range(n):
        foreign_session(root, f"s{i:04d}", None if i % 2 else f"title {i}")
    write_journal(root, "zbroken", [b"{not json"])


def items(root: Path) -> list[coldstart.Item]:
    layout = Layout(root)
    return sorted((sid, p, layout.relative(p), snap) for sid, p, snap in layout.journal_names())


def test_worker_processes_read_the_same_rows_as_this_process(data_dir: Path) -> None:
    make_store(data_dir, 30)
    todo = items(data_dir)
    inline = list(coldstart.rows_of(todo, procs=1))
    pooled = list(coldstart.rows_of(todo, procs=2, pool_min=1))

    def flat(chunks: list[coldstart.Rows]) -> tuple[list[object], list[object]]:
        rows = sorted(tuple(r) for c in chunks for r in c[0])  # session id first
        damaged = sorted((d[0].session_id, d[1:]) for c in chunks for d in c[1])
        return rows, damaged

    assert flat(pooled) == flat(inline)
    assert len(flat(inline)[0]) == 30 and [d[0] for d in flat(inline)[1]] == ["zbroken"]


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cold-start path (workers, rows first) for a store of test size."""
    monkeypatch.setattr(coldstart, "POOL_MIN", 10)
    monkeypatch.setattr(coldstart, "CHUNK", 7)


@pytest.mark.usefixtures("small_pool")
def test_a_reconcile_of_many_journals_lists_and_finds_them_all(data_dir: Path) -> None:
    make_store(data_dir, 40)
    with Store(data_dir, background=False) as store:
        listed = store.list(ListRequest(limit=1000))
        assert listed.total_sessions == 41
        assert {s.session_id for s in listed.sessions if s.damaged} == {"zbroken"}
        assert store.index.undocumented() == []  # reconcile=True writes the docs too
        found = store.list(ListRequest(query="hello", limit=1000))
        assert found.total_sessions == 40
        assert store.list(ListRequest(query="title", limit=1000)).total_sessions == 20


@pytest.mark.usefixtures("small_pool")
def test_docs_written_later_stay_right_when_sessions_change_meanwhile(data_dir: Path) -> None:
    """An append to a session listed without docs writes all of its docs at once (and the
    doc filler then leaves it); the filler writes the rest."""
    make_store(data_dir, 20)
    with Store(data_dir, background=False, reconcile=False) as store:
        store.reconcile(docs_later=True)
        assert store.list(ListRequest()).total_sessions == 21
        assert store.list(ListRequest(query="hello")).total_sessions == 0  # no docs yet
        assert len(store.index.undocumented(0, 1000)) == 20
        store.append(AppendRequest(session_id="s0003", role="user", content="platypus"))
        store.flush_index()
        for word in ("platypus", "hello"):  # the new message, and the ones before it
            hits = store.list(ListRequest(query=word))
            assert [s.session_id for s in hits.sessions] == ["s0003"]
        assert coldstart.fill_docs(store.index, store.layout) == 19
        assert store.index.undocumented() == []
        assert store.list(ListRequest(query="hello", limit=100)).total_sessions == 20
        assert store.list(ListRequest(query="platypus")).total_sessions == 1


@pytest.mark.usefixtures("small_pool")
def test_many_journals_new_to_an_existing_index_are_listed_too(data_dir: Path) -> None:
    with Store(data_dir, background=False) as store:
        mine = store.start().session_id
        store.compact()  # a snapshot beside it: read through load_cold
    make_store(data_dir, 15)
    with Store(data_dir, background=False) as store:
        listed = store.list(ListRequest(limit=100))
        assert listed.total_sessions == 17 and mine in {s.session_id for s in listed.sessions}
        assert store.list(ListRequest(query="hello", limit=100)).total_sessions == 15


def test_without_an_interpreter_to_start_the_rows_are_read_here(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An embedding program whose sys.executable is not a Python (a bundled app) gets
    every row all the same."""
    make_store(data_dir, 12)
    monkeypatch.setattr(coldstart.sys, "executable", str(data_dir / "no-such-python"))
    chunks = list(coldstart.rows_of(items(data_dir), procs=2, pool_min=1))
    assert sum(len(rows) for rows, _ in chunks) == 12
    assert sum(len(damaged) for _, damaged in chunks) == 1
