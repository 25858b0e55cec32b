"""Store operations: validation, idempotency, concurrency control, save, load, delete,
export/import — all on real files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog.backends.file.store import Store
from eventlog.errors import (
    InvalidRequest,
    PayloadTooLarge,
    SequenceConflict,
    SessionExists,
    SessionNotFound,
    StorageError,
)
from eventlog.events import decoder
from eventlog.fold import fold
from eventlog.notify import Lifecycle, Notice
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    SaveMessage,
    SaveRequest,
    StartRequest,
    UpdateRequest,
)

from .conftest import PYTHON, ROOT, tree


def test_start_writes_a_dated_journal_with_a_12_hex_id(store: Store, data_dir: Path) -> None:
    s = store.start(StartRequest(user_name="Ann", metadata={"type": "voice"}, title="Call"))
    assert len(s.session_id) == 12 and int(s.session_id, 16) >= 0
    path = Path(store.path_of(s.session_id))
    assert path.parent.name == s.started_at[:10] and path.parent.parent == data_dir / "sessions"
    line = path.read_bytes()
    assert line.endswith(b"\n") and decoder.decode(line).seq == 1
    assert (s.user_name, s.metadata, s.title, s.seq) == ("Ann", {"type": "voice"}, "Call", 1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"role": "robot"}, "role"),
        ({"content": 42}, "content"),
        ({"session_id": "../x"}, "session_id"),
        ({"session_id": "a/b"}, "session_id"),
        ({"session_id": ""}, "session_id"),
        ({"session_id": "a" * 65}, "session_id"),
        ({"session_id": "abc\n"}, "session_id"),
        ({"content": "x" * 1_000_001}, "content"),
        ({"metadata": [1]}, "metadata"),
        ({"expected_seq": -1}, "expected_seq"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    store: Store, session_id: str, data_dir: Path, fields: dict[str, object], field: str
) -> None:
    before = tree(data_dir)
    req = {"session_id": session_id, "role": "user", "content": "hi", **fields}
    with pytest.raises(InvalidRequest) as err:
        store.append(AppendRequest(**req))  # type: ignore[arg-type]
    assert err.value.field == field and field in str(err.value)
    if field == "content" and fields.get("content") != 42:
        assert isinstance(err.value, PayloadTooLarge)
    assert tree(data_dir) == before


def test_unknown_session_is_not_found(store: Store) -> None:
    with pytest.raises(SessionNotFound):
        store.append(AppendRequest(session_id="nope", role="user", content="x"))
    with pytest.raises(SessionNotFound):
        store.load("nope")


def test_retry_by_event_id_or_message_id_is_answered_not_written(
    store: Store, session_id: str
) -> None:
    a = store.append(AppendRequest(session_id=session_id, role="user", content="x", id="ev-1"))
    again = store.append(AppendRequest(session_id=session_id, role="user", content="x", id="ev-1"))
    assert (again.seq, again.duplicate, again.message_id) == (a.seq, True, a.message_id)
    b = store.append(
        AppendRequest(session_id=session_id, role="user", content="y", message_id="m-9")
    )
    stale = store.append(
        AppendRequest(
            session_id=session_id, role="user", content="y", message_id="m-9", expected_seq=1
        )
    )
    assert (stale.seq, stale.duplicate) == (b.seq, True)  # dedup wins over a stale expected_seq
    assert len(store.load(session_id).session.messages) == 2


def test_expected_seq_mismatch_is_a_conflict_with_the_current_seq(
    store: Store, session_id: str
) -> None:
    store.append(AppendRequest(session_id=session_id, role="user", content="x", expected_seq=1))
    with pytest.raises(SequenceConflict) as err:
        store.append(AppendRequest(session_id=session_id, role="user", content="x", expected_seq=1))
    assert err.value.current == 2 and "expected_seq=2" in str(err.value)


def test_streaming_message_deltas_then_complete(store: Store, session_id: str) -> None:
    store.append(
        AppendRequest(session_id=session_id, role="user", content="", partial=True, message_id="v")
    )
    for text in ("hel", "hello wor", "hello world"):
        store.delta(
            DeltaRequest(session_id=session_id, message_id="v", content=text, mode="replace")
        )
    m = store.load(session_id).session.messages[0]
    assert (m.content, m.status) == ("hello world", "partial")
    store.complete(CompleteRequest(session_id=session_id, message_id="v", content="Hello, world."))
    m = store.load(session_id).session.messages[0]
    assert (m.content, m.status) == ("Hello, world.", "complete")
    with pytest.raises(InvalidRequest, match="complete"):
        store.delta(DeltaRequest(session_id=session_id, message_id="v", content="late"))
    with pytest.raises(InvalidRequest, match="no message"):
        store.delta(DeltaRequest(session_id=session_id, message_id="ghost", content="x"))


def test_save_appends_new_edits_changed_and_never_removes(store: Store, session_id: str) -> None:
    store.append(AppendRequest(session_id=session_id, role="user", content="a", message_id="m1"))
    store.append(
        AppendRequest(session_id=session_id, role="assistant", content="b", message_id="m2")
    )
    r = store.save(
        SaveRequest(
            session_id=session_id,
            metadata={"type": "chat", "x": 1},
            messages=[
                SaveMessage(role="user", content="a", message_id="m1"),
                SaveMessage(role="user", content="c"),  # no id: matched by position 1, i.e. m2
                SaveMessage(role="user", content="new", message_id="m3"),
            ],
        )
    )
    assert (r.appended, r.edited) == (1, 1)
    s = store.load(session_id).session
    assert [m.content for m in s.messages] == ["a", "c", "new"] and s.metadata["x"] == 1
    r2 = store.save(SaveRequest(session_id=session_id, messages=[]))
    assert (r2.appended, r2.edited) == (0, 0) and len(store.load(session_id).session.messages) == 3


def test_load_with_a_message_limit_returns_the_last_n(store: Store, session_id: str) -> None:
    for i in range(10):
        store.append(AppendRequest(session_id=session_id, role="user", content=str(i)))
    r = store.load(LoadRequest(session_id=session_id, message_limit=3))
    assert [m.content for m in r.session.messages] == ["7", "8", "9"] and r.message_start == 7
    r = store.load(LoadRequest(session_id=session_id, message_limit=3, message_before=7))
    assert [m.content for m in r.session.messages] == ["4", "5", "6"] and r.message_start == 4


def test_load_is_never_stale_between_compactions(data_dir: Path) -> None:
    """A load reads snapshot + tail: an append after the last compaction is visible to a
    fresh reader (another process, or after restart) at once."""
    with Store(data_dir) as a:
        sid = a.start(StartRequest()).session_id
        a.append(AppendRequest(session_id=sid, role="user", content="one"))
        a.compact()
        a.append(AppendRequest(session_id=sid, role="user", content="two"))
        with Store(data_dir, background=False) as b:
            assert [m.content for m in b.load(sid).session.messages] == ["one", "two"]
            assert b.load(sid).session == fold(sid, b.events(sid))


def test_delete_removes_journal_snapshot_and_index_entry(
    store: Store, session_id: str, data_dir: Path
) -> None:
    store.append(AppendRequest(session_id=session_id, role="user", content="bye"))
    store.compact()
    store.delete(session_id)
    with pytest.raises(SessionNotFound):
        store.load(session_id)
    assert not [p for p in (data_dir / "sessions").rglob("*") if p.is_file()]
    assert not list((data_dir / "trash").iterdir())
    assert session_id not in [s.session_id for s in store.list().sessions]
    with pytest.raises(SessionNotFound):
        store.delete(session_id)


def test_a_watcher_firing_mid_delete_adds_no_second_deleted_notice(
    store: Store, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression guard: the server's file watcher sees our own delete's rename and calls
    ``external_change``; if that lands before the delete has dropped the list row, it
    used to announce the deletion too, and list subscribers saw it twice."""
    import eventlog.backends.file.delete as delete_mod

    heard: list[Notice] = []
    store.subscribe(heard.append)
    real = delete_mod.fsync_dir

    def watcher_fires(path: str) -> None:  # right after the rename, the commit point
        real(path)
        store.external_change(session_id)

    monkeypatch.setattr(delete_mod, "fsync_dir", watcher_fires)
    store.delete(session_id)
    deleted = [n for n in heard if isinstance(n, Lifecycle) and n.type == "session.deleted"]
    assert [n.session_id for n in deleted] == [session_id]


def test_update_sets_title_tags_pin_archive(store: Store, session_id: str) -> None:
    store.update(UpdateRequest(session_id=session_id, title="Trip", tags=["travel"], pinned=True))
    s = store.load(session_id).session
    assert (s.title, s.tags, s.pinned, s.archived) == ("Trip", ["travel"], True, False)
    with pytest.raises(InvalidRequest, match="nothing to update"):
        store.update(UpdateRequest(session_id=session_id))
    store.update(UpdateRequest(session_id=session_id, archived=True))
    assert session_id not in [x.session_id for x in store.list().sessions]
    assert session_id in [x.session_id for x in store.list(ListRequest(archived=True)).sessions]


def _fill(store: Store) -> list[str]:
    ids = []
    for n in range(3):
        sid = store.start(StartRequest(title=f"t{n}")).session_id
        store.append(AppendRequest(session_id=sid, role="system", content="be nice"))
        store.append(AppendRequest(session_id=sid, role="user", content=f"q{n}"))
        store.append(AppendRequest(session_id=sid, role="assistant", content=f"a{n}"))
        store.append(AppendRequest(session_id=sid, role="tool", content="{}"))
        ids.append(sid)
    return ids


def test_events_export_delete_import_round_trips_exactly(store: Store) -> None:
    ids = _fill(store)
    before = {sid: store.load(sid).session for sid in ids}
    journals = {sid: Path(store.path_of(sid)).read_bytes() for sid in ids}
    dump = b"".join(store.export(ExportRequest(all=True, format="events")))
    for sid in ids:
        store.delete(sid)
    assert sorted(store.import_events(dump)) == sorted(ids)
    for sid in ids:
        assert store.load(sid).session == before[sid]
        assert Path(store.path_of(sid)).read_bytes() == journals[sid]
    with pytest.raises(SessionExists):
        store.import_events(dump)


def test_import_refuses_bad_input_and_writes_nothing(store: Store, data_dir: Path) -> None:
    ids = _fill(store)
    dump = b"".join(store.export(ExportRequest(session_ids=ids[:1], format="events")))
    store.delete(ids[0])
    before = tree(data_dir)
    lines = dump.splitlines(keepends=True)
    for bad in (b"not json\n", b"".join(lines[:1] + lines[2:]), b"".join(lines[1:]), b"\n"):
        with pytest.raises(InvalidRequest):
            store.import_events(bad)
    traversal = dump.replace(ids[0].encode(), b"../../etc")
    with pytest.raises(InvalidRequest, match="session_id"):
        store.import_events(traversal)
    assert tree(data_dir) == before


def test_training_exports(store: Store) -> None:
    sid = _fill(store)[0]
    openai = msgspec.json.decode(b"".join(store.export(ExportRequest(session_id=sid))))
    # the trailing tool output answers no call: OpenAI's checks refuse such a message
    assert [m["role"] for m in openai["messages"]] == ["system", "user", "assistant"]
    share = msgspec.json.decode(
        b"".join(store.export(ExportRequest(session_id=sid, format="sharegpt")))
    )
    # LLaMA-Factory's shape: the system prompt apart, strict human/gpt turns (the
    # trailing tool output answers no call and ends on the prompt side: left out)
    assert share["system"] and [c["from"] for c in share["conversations"]] == ["human", "gpt"]
    md = b"".join(store.export(ExportRequest(session_id=sid, format="markdown"))).decode()
    assert md.startswith("# t0") and "### Assistant" in md and "a0" in md
    with pytest.raises(SessionNotFound):
        store.export(ExportRequest(session_ids=[sid, "missing"]))


def test_importing_eventlog_loads_no_aiohttp() -> None:
    code = "import sys, eventlog.backends.file.store, eventlog.backend; print('aiohttp' in sys.modules, 'watchfiles' in sys.modules)"
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_an_index_write_that_fails_keeps_the_list_readable_and_catches_up_later(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: when the index could not be written (a full disk), ``list`` failed
    with a bare sqlite3 error (a 500), and the events the flush had taken were never
    indexed afterwards: search missed saved messages until a restart. The list now
    serves the index as it was, and the next flush reindexes those sessions whole."""
    import sqlite3

    store = Store(data_dir, background=False)  # no flush but ours
    sid = store.start(StartRequest(title="t")).session_id
    store.flush_index()
    store.append(AppendRequest(session_id=sid, role="user", content="saved wombat"))
    real = store.index.apply

    def full(items: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store.index, "apply", full)
    with pytest.raises(StorageError, match=r"list index failed \(database or disk is full\)"):
        store.flush_index()
    (row,) = store.list().sessions  # no error: the row as it was
    assert row.message_count == 0
    monkeypatch.setattr(store.index, "apply", real)
    (row,) = store.list().sessions
    assert row.message_count == 1
    assert [r.session_id for r in store.list(ListRequest(query="wombat")).sessions] == [sid]
    store.close()


def test_a_journal_in_use_is_not_evicted_under_its_writer(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: with more sessions open than ``max_open``, opening one evicted (closed)
    the least recently used journal even while an append to it waited for its fsync:
    the fsync then ran on a closed fd (an error for a saved line) or, had the number
    been reused by the newly opened file, on another file (an ack without an fsync).
    Journals handed out to a writer are now leased and never evicted."""
    import threading

    from eventlog.backends.file import syscalls

    store = Store(data_dir, max_open=1, background=False)
    a, b = (store.start(StartRequest()).session_id for _ in range(2))
    store.append(AppendRequest(session_id=a, role="user", content="warm"))
    store.flush_index()
    store.compact()  # a is open and clean: the first candidate to evict
    ja = store._journals[a]
    ino = os.fstat(ja.fd).st_ino
    in_fsync, go = threading.Event(), threading.Event()
    seen: list[int] = []
    real = syscalls.fdatasync

    def held(fd: int) -> None:
        if fd == ja.fd and not go.is_set():
            in_fsync.set()
            go.wait(10)
            seen.append(os.fstat(fd).st_ino)  # still a's file? (EBADF if closed)
        real(fd)

    monkeypatch.setattr(syscalls, "fdatasync", held)
    out: list[Any] = []
    t = threading.Thread(
        target=lambda: out.append(
            store.append(AppendRequest(session_id=a, role="user", content="x"))
        )
    )
    t.start()
    assert in_fsync.wait(10)
    store.append(AppendRequest(session_id=b, role="user", content="y"))  # opens b: evicts?
    go.set()
    t.join(10)
    assert seen == [ino] and out and out[0].seq == 3, (seen, out)
    assert not ja.fd < 0  # still open: it was in use
    store.append(AppendRequest(session_id=a, role="user", content="z"))
    assert [m.content for m in store.load(a).session.messages] == ["warm", "x", "z"]
    store.close()


def test_many_writers_over_a_tiny_journal_cap_all_succeed_and_leak_nothing(
    data_dir: Path,
) -> None:
    """Regression: with far more sessions in use than ``max_open``, journals are evicted
    and reopened all the time, under writers, readers, the background index flush and
    compaction; before journals were leased, appends here failed with "file descriptor
    cannot be a negative integer (-1)" (their journal closed under them). Every append
    must succeed exactly once, in seq order per session, and once all is done no lease
    is left held (a leaked one would keep its journal from ever being evicted) and no
    journal fd stays open."""
    import random
    import threading

    fds_before = len(os.listdir("/proc/self/fd"))
    store = Store(data_dir, max_open=2)
    sids = [store.start(StartRequest()).session_id for _ in range(6)]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for k in range(40):
                sid = rng.choice(sids)
                store.append(AppendRequest(session_id=sid, role="user", content=f"{seed}-{k}"))
                if k % 7 == 0:
                    store.head(rng.choice(sids))
        except BaseException as e:
            errors.append(e)

    def compactor() -> None:
        while not done.is_set():
            store.compact()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    side = threading.Thread(target=compactor)
    side.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    side.join(60)
    assert not errors, errors
    contents = []
    for sid in sids:
        s = store.load(sid).session
        assert s.seq == 1 + len(s.messages)  # session.started, then one event each
        contents += [m.content for m in s.messages]
    assert sorted(contents) == sorted(f"{i}-{k}" for i in range(8) for k in range(40))
    with store._mu:
        assert [j.users for j in store._journals.values()] == [0] * len(store._journals)
    store.close()
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 1  # the index may keep one
