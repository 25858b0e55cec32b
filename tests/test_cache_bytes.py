"""The open-journal cache is bounded by the session JSON its journals hold, not only by
their number: long sessions are closed (least recently used first) and reopen intact."""

from __future__ import annotations

from pathlib import Path

from eventlog.backends.file.store import Store
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    StartRequest,
)

TEXT = "word " * 200  # ~1 KB a message


def fill(store: Store, n_sessions: int, n_messages: int) -> list[str]:
    sids = []
    for _ in range(n_sessions):
        sid = store.start(StartRequest()).session_id
        for i in range(n_messages):
            store.append(AppendRequest(session_id=sid, role="user", content=TEXT, id=f"{sid}-{i}"))
        sids.append(sid)
    return sids


def test_open_journals_stay_under_the_byte_cap_and_reopen_intact(data_dir: Path) -> None:
    with Store(data_dir, background=False, cache_bytes=60_000) as store:
        sids = fill(store, 6, 20)  # ~25 KB of journal each
        store.flush_index()
        store.compact()  # nothing dirty: every journal may be closed
        store.trim()
        with store._mu:
            open_now = dict(store._journals)
        assert sum(j.held for j in open_now.values()) <= 60_000
        assert 1 <= len(open_now) < 6 and sids[-1] in open_now  # the most recent stays
        for sid in sids:  # closed ones reopen with everything (and their dedup)
            r = store.append(AppendRequest(session_id=sid, role="user", content="x", id=f"{sid}-3"))
            assert (r.seq, r.duplicate) == (5, True)
            assert store.load(sid).session.stats.total_messages == 20


def test_a_streamed_message_is_measured_by_its_snapshot_after_compaction(data_dir: Path) -> None:
    """Thousands of deltas make a long journal but one message: once compacted, the
    state is measured by the snapshot, so the cap does not close it for its deltas."""
    with Store(data_dir, background=False) as store:
        sid = store.start(StartRequest()).session_id
        store.append(AppendRequest(session_id=sid, role="assistant", content="", message_id="m",
                                   partial=True))  # fmt: skip
        for _ in range(2000):
            store.delta(DeltaRequest(session_id=sid, message_id="m", content="tok "))
        store.complete(CompleteRequest(session_id=sid, message_id="m"))
        with store._using(sid) as j:
            before = j.held
        store.flush_index()
        store.compact()
        with store._using(sid) as j:
            after = j.held
            assert len(dict(j.event_ids)) == 0  # the delta ids went to the id store
        assert before > 100_000 and after < 20_000
