"""A cold start of a large store without an index: every session listed first (rows read
in worker processes), full-text docs written after, nothing lost on the way."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.backends.file import coldstart
from eventlog.backends.file.layout import Layout
from eventlog.backends.file.store import Store
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    ListRequest,
    StartRequest,
    UpdateRequest,
)

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
def test_a_session_deleted_during_a_cold_start_does_not_come_back(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the cold start lists rows that workers read a moment earlier, thousands
    per transaction; a session deleted in between was listed again, its journal gone,
    until the next start."""
    make_store(data_dir, 20)
    with Store(data_dir, background=False, reconcile=False) as store:
        apply_rows = store.index.apply_rows
        deleted: list[str] = []

        def delete_then_apply(rows: list[object]) -> None:
            if not deleted:  # the rows of s0005 are read, then it is deleted
                deleted.append("s0005")
                store.delete("s0005")
            apply_rows(rows)  # type: ignore[arg-type]

        monkeypatch.setattr(store.index, "apply_rows", delete_then_apply)
        store.reconcile()
        assert deleted == ["s0005"]
        listed = {s.session_id for s in store.list(ListRequest(limit=100)).sessions}
        assert "s0005" not in listed and len(listed) == 20  # 19 + the damaged one
        assert store.list(ListRequest(query="hello", limit=100)).total_sessions == 19


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


@pytest.mark.usefixtures("small_pool")
def test_a_cold_start_lists_every_session_exactly_as_the_store_listed_it(
    data_dir: Path,
) -> None:
    """The cold start builds rows in worker processes from the events alone
    (``summary_of``, no messages folded); they must equal the rows the store wrote as
    the sessions were made: titles, tags, flags, counts, previews after streaming and
    edits, last_updated, seq. Torn, damaged and foreign journals are listed too."""
    with Store(data_dir, background=False) as store:
        for i in range(16):
            sid = store.start(StartRequest(title=f"t{i}" if i % 3 else "")).session_id
            if i % 2:
                store.append(AppendRequest(session_id=sid, role="assistant", content="hi"))
            r = store.append(
                AppendRequest(session_id=sid, role="user", content="draft", partial=True)
            )
            store.delta(DeltaRequest(session_id=sid, message_id=r.message_id, content=" more"))
            store.complete(CompleteRequest(session_id=sid, message_id=r.message_id))
            if i % 4 == 0:
                store.edit(EditRequest(session_id=sid, message_id=r.message_id, content=f"e{i}"))
            if i % 5 == 0:
                store.update(UpdateRequest(session_id=sid, tags=["Work", f"k{i}"], pinned=True))
            if i % 7 == 0:
                store.update(UpdateRequest(session_id=sid, archived=True, title="renamed"))
        store.compact()  # half the sessions read through a snapshot, the rest whole
        for f in sorted(data_dir.glob("sessions/*/*.json"))[::2]:
            f.unlink()
        want = store.list(ListRequest(limit=1000, archived=None)).sessions
        with open(store.path_of(want[0].session_id), "ab") as f:
            f.write(b'{"seq": 99, "type": "message.app')  # a torn tail: listed as before
    make_store(data_dir, 12)  # foreign journals with nulls, and a damaged one
    for f in data_dir.glob("index.sqlite3*"):
        f.unlink()
    with Store(data_dir, background=False) as store:
        listed = store.list(ListRequest(limit=1000, archived=None)).sessions
        by_id = {s.session_id: s for s in listed}
        assert [by_id[s.session_id] for s in want] == want
        assert len(listed) == len(want) + 13 and by_id["zbroken"].damaged
        assert store.list(ListRequest(tag="work", archived=None)).total_sessions == 4


def test_a_worker_that_dies_mid_frame_has_the_rest_of_its_slice_read_here(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression guard for the frame reader: a worker cut off in the middle of a frame
    (killed, out of memory) loses nothing: the partial frame is dropped and every
    journal it did not deliver whole is read in this process."""
    make_store(data_dir, 40)
    monkeypatch.setattr(coldstart, "CHUNK", 7)
    todo = items(data_dir)
    inline = list(coldstart.rows_of(todo, procs=1))
    # each worker's output is cut 10 bytes into its second frame
    first = max(len(coldstart._encode(coldstart.read_rows(todo[i : i + 7]))) for i in (0, 21))
    wrapper = data_dir / "cut-python"
    wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" | head -c {first + 4 + 10}\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(coldstart.sys, "executable", str(wrapper))
    seen: list[tuple[int, bool]] = []
    frames = coldstart._frames

    def spy(pipes: dict[int, int]) -> Iterator[tuple[int, bytes | None]]:
        for k, frame in frames(pipes):
            seen.append((k, frame is not None))
            yield k, frame

    monkeypatch.setattr(coldstart, "_frames", spy)
    cut = list(coldstart.rows_of(todo, procs=2, pool_min=1))

    def flat(chunks: list[coldstart.Rows]) -> list[object]:
        return sorted(tuple(r) for c in chunks for r in c[0])

    assert sorted(seen) == [(0, False), (0, True), (1, False), (1, True)]  # one whole frame
    assert flat(cut) == flat(inline) and len(flat(cut)) == 40
    assert sum(len(d) for _, d in cut) == 1
