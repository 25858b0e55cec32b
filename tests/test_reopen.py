"""Opening a long session after a restart: from its snapshot and the id store, not from
line 1, with every SPEC §3 guarantee kept (retries by event id and message_id are
duplicates with their original seq, however old)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.backends.file.maintenance import verify
from eventlog.backends.file.store import Store
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    ExportRequest,
    SaveMessage,
    SaveRequest,
    StartRequest,
)


def append(store: Store, sid: str, i: int, **kw: object) -> int:
    req = AppendRequest(
        session_id=sid, role="user", content=f"message {i}", id=f"ev-{i}", message_id=f"m-{i}",
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return store.append(req).seq


def long_session(root: Path, n: int) -> str:
    with Store(root, background=False) as store:
        sid = store.start(StartRequest(title="long")).session_id
        for i in range(n):
            append(store, sid, i)
        store.compact()
    return sid


def break_line(path: str, seq: int) -> None:
    """Overwrite the line of ``seq`` with junk of the same length (a corrupt line)."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    lines[seq - 1] = b"#" * len(lines[seq - 1])
    Path(path).write_bytes(b"\n".join(lines))


def test_the_first_append_after_a_restart_does_not_read_the_lines_before_the_snapshot(
    data_dir: Path,
) -> None:
    """A corrupt line before the snapshot is not seen by the first append after a restart
    (verify still reports it): the journal was opened from its snapshot."""
    sid = long_session(data_dir, 50)
    with Store(data_dir, background=False) as store:
        path = store.path_of(sid)
    size = os.path.getsize(path)
    break_line(path, 10)
    assert any("unusable line" in p.what for p in verify(data_dir)[1])
    with Store(data_dir, background=False) as store:
        assert append(store, sid, 50) == 52
        with store._using(sid) as j:
            assert j.bad == [] and j.moved_upto == 51
            assert len(dict(j.event_ids)) == 1  # only the ids since the snapshot in memory
        assert store.load(sid).session.messages[9].content == "message 9"
    assert os.path.getsize(path) > size


def test_retries_of_old_ids_are_duplicates_after_a_restart(data_dir: Path) -> None:
    sid = long_session(data_dir, 30)
    with Store(data_dir, background=False) as store:
        for i in (0, 17, 29):
            r = store.append(
                AppendRequest(session_id=sid, role="user", content="again", id=f"ev-{i}")
            )
            assert (r.seq, r.duplicate, r.message_id) == (i + 2, True, f"m-{i}")
            r = store.append(
                AppendRequest(session_id=sid, role="user", content="again", message_id=f"m-{i}")
            )
            assert (r.seq, r.duplicate) == (i + 2, True)
        saved = store.save(
            SaveRequest(
                session_id=sid,
                messages=[SaveMessage(role="user", content="message 3", message_id="m-3")],
            )
        )
        assert (saved.appended, saved.edited) == (0, 0)
        assert append(store, sid, 30) == 32
        store.compact()
    with Store(data_dir, background=False) as store:  # twice compacted: still all there
        assert store.append(
            AppendRequest(session_id=sid, role="user", content="x", id="ev-30")
        ).duplicate
        assert store.load(sid).session.stats.total_messages == 31


def test_a_message_streaming_across_a_restart_completes(data_dir: Path) -> None:
    sid = long_session(data_dir, 5)
    with Store(data_dir, background=False) as store:
        append(store, sid, 5, partial=True)
        store.delta(DeltaRequest(session_id=sid, message_id="m-5", content=" more"))
        store.compact()
    with Store(data_dir, background=False) as store:
        store.delta(DeltaRequest(session_id=sid, message_id="m-5", content=" and more"))
        store.complete(CompleteRequest(session_id=sid, message_id="m-5"))
        m = store.load(sid).session.messages[-1]
        assert (m.content, m.status) == ("message 5 more and more", "complete")


def test_without_the_id_store_the_journal_is_read_whole_and_still_deduplicates(
    data_dir: Path,
) -> None:
    sid = long_session(data_dir, 20)
    for suffix in ("", "-wal", "-shm"):
        Path(str(data_dir / "ids.sqlite3") + suffix).unlink(missing_ok=True)
    with Store(data_dir, background=False) as store:
        r = store.append(AppendRequest(session_id=sid, role="user", content="x", id="ev-3"))
        assert (r.seq, r.duplicate) == (5, True)
        with store._using(sid) as j:
            assert j.moved_upto == 0 and len(dict(j.event_ids)) == 21


def test_a_session_deleted_and_imported_again_forgets_its_old_ids(data_dir: Path) -> None:
    """Regression guard: ids recorded for a deleted journal must not make appends to a
    new journal of the same id look like duplicates."""
    sid = long_session(data_dir, 10)
    with Store(data_dir, background=False) as store:
        backup = b"".join(store.export(ExportRequest(session_id=sid, format="events")))
        store.delete(sid)
        lines = backup.split(b"\n")
        store.import_events(b"\n".join(lines[:3]) + b"\n")  # started + 2 messages
        r = store.append(AppendRequest(session_id=sid, role="user", content="new", id="ev-5"))
        assert (r.seq, r.duplicate) == (4, False)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 40)),
            st.tuples(st.just("compact"), st.just(0)),
            st.tuples(st.just("restart"), st.just(0)),
        ),
        max_size=40,
    )
)
def test_every_acknowledged_id_stays_a_duplicate_through_compactions_and_restarts(
    tmp_path_factory: object, steps: list[tuple[str, int]]
) -> None:
    root = tmp_path_factory.mktemp("reopen")  # type: ignore[attr-defined]
    store = Store(root, background=False)
    sid = store.start(StartRequest()).session_id
    acked: dict[int, int] = {}
    try:
        for op, k in steps:
            if op == "append":
                r = store.append(
                    AppendRequest(
                        session_id=sid,
                        role="user",
                        content=f"c{k}",
                        id=f"e{k}",
                        message_id=f"m{k}",
                    )
                )
                assert r.duplicate == (k in acked) and r.seq == acked.setdefault(k, r.seq)
            elif op == "compact":
                store.compact()
            else:
                store.close()
                store = Store(root, background=False)
        for k, seq in acked.items():
            by_msg = AppendRequest(session_id=sid, role="user", content="", message_id=f"m{k}")
            assert store.append(by_msg).seq == seq
        assert store.load(sid).session.stats.total_messages == len(acked)
    finally:
        store.close()
