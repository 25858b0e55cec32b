"""Journals written by other tools: ``null`` reads as absent for every optional field,
and a session whose journal cannot be read is listed as damaged, never left out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlog.backends.file.maintenance import verify
from eventlog.backends.file.store import Store
from eventlog.events import decoder, encode_line
from eventlog.lenient import decode_event
from eventlog.requests import AppendRequest, ListRequest, StartRequest
from server.state import BACKEND

from .conftest import Api

TS = "2026-02-09T21:30:10.000Z"

# every event type with each of its optional fields, and the value it takes when absent
OPTIONAL: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "session.started": (
        {"user_name": "Ann", "metadata": {"type": "voice"}, "title": "T"},
        {"user_name": "User", "metadata": {}, "title": ""},
    ),
    "message.appended": (
        {
            "message_id": "m1",
            "role": "user",
            "content": "hi",
            "timestamp": TS,
            "metadata": {"k": 1},
            "status": "partial",
        },
        {"timestamp": TS, "metadata": {}, "status": "complete"},
    ),
    "message.delta": ({"message_id": "m1", "content": "x", "mode": "replace"}, {"mode": "append"}),
    "message.completed": ({"message_id": "m1", "content": "done"}, {"content": None}),
    "message.edited": (
        {"message_id": "m1", "content": "new", "metadata": {"a": 1}},
        {"metadata": None},
    ),
    "session.updated": (
        {"title": "t", "tags": ["a"], "pinned": True, "archived": True, "metadata": {"b": 2}},
        {"title": None, "tags": None, "pinned": None, "archived": None, "metadata": None},
    ),
    "error.recorded": ({"message": "boom", "details": {"x": 1}}, {"details": None}),
}


def line(type_: str, data: dict[str, Any], seq: int = 1) -> bytes:
    return json.dumps({"seq": seq, "id": f"e{seq}", "type": type_, "ts": TS, "data": data}).encode()


@given(st.sampled_from(sorted(OPTIONAL)), st.data())
def test_null_or_missing_optional_fields_read_as_their_defaults(type_: str, data: Any) -> None:
    full, defaults = OPTIONAL[type_]
    chosen = data.draw(st.sets(st.sampled_from(sorted(defaults))))
    how = data.draw(st.sampled_from(["null", "missing"]))
    given_data = {k: v for k, v in full.items() if not (k in chosen and how == "missing")}
    given_data.update({k: None for k in chosen if how == "null"})
    expected = {**full, **{k: defaults[k] for k in chosen}}
    ev = decode_event(line(type_, given_data))
    assert ev == decoder.decode(line(type_, expected))


@pytest.mark.parametrize(
    ("type_", "data", "field"),
    [
        ("message.appended", {"message_id": "m", "role": "user", "content": None}, "content"),
        ("message.appended", {"message_id": None, "role": "user", "content": "x"}, "message_id"),
        ("message.appended", {"message_id": "m", "role": None, "content": "x"}, "role"),
        ("message.delta", {"message_id": "m", "content": None}, "content"),
        ("message.edited", {"message_id": "m"}, "content"),
        ("error.recorded", {"message": None}, "message"),
    ],
)
def test_a_required_field_null_or_missing_is_still_an_error(
    type_: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=field):
        decode_event(line(type_, data))


def test_the_encoder_still_writes_every_field_it_wrote_before() -> None:
    ev = decode_event(line("session.started", {"user_name": None, "metadata": None, "title": None}))
    assert json.loads(encode_line(ev))["data"] == {"user_name": "User", "metadata": {}, "title": ""}


def write_journal(root: Path, sid: str, lines: list[bytes], date: str = "2026-02-09") -> Path:
    d = root / "sessions" / date
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{sid}.jsonl"
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    return path


def foreign_session(root: Path, sid: str, title: Any) -> Path:
    """A journal as another tool writes it: nulls wherever it has no value."""
    started = {"user_name": "Bo", "metadata": None, "title": title}
    msg = {"message_id": "m1", "role": "user", "content": "hello there", "timestamp": None,
           "metadata": None, "status": None}  # fmt: skip
    return write_journal(
        root, sid, [line("session.started", started), line("message.appended", msg, 2)]
    )


def test_sessions_with_null_fields_are_listed_loaded_and_appended_to(data_dir: Path) -> None:
    """Regression: one `"title": null` made a session unreadable and missing from the
    list (80 % of a data dir vanished)."""
    for i in range(5):
        foreign_session(data_dir, f"null{i}", None if i < 4 else "kept")
    with Store(data_dir, background=False) as store:
        listed = store.list(ListRequest())
        assert listed.total_sessions == 5
        assert {s.session_id: s.title for s in listed.sessions}["null4"] == "kept"
        assert all(not s.damaged and s.preview == "hello there" for s in listed.sessions)
        session = store.load("null0").session
        assert (session.title, session.metadata, session.user_name) == ("", {}, "Bo")
        assert session.messages[0].timestamp == TS and session.messages[0].status == "complete"
        assert (
            store.append(AppendRequest(session_id="null0", role="assistant", content="hi")).seq == 3
        )
    assert verify(data_dir)[1] == []


def test_a_session_whose_first_line_cannot_be_read_is_listed_as_damaged(data_dir: Path) -> None:
    foreign_session(data_dir, "good", "fine")
    bad = write_journal(data_dir, "bad", [b'{"seq": 1, "type": "session.sta'])
    headless = write_journal(
        data_dir,
        "headless",
        [
            b"not json",
            line("message.appended", {"message_id": "m", "role": "user", "content": "x"}, 2),
        ],
    )
    problems: dict[str, list[str]] = {}
    for p in verify(data_dir)[1]:
        problems.setdefault(p.path, []).append(p.what)
    with Store(data_dir, background=False) as store:
        listed = store.list(ListRequest())
    rows = {s.session_id: s for s in listed.sessions}
    assert listed.total_sessions == 3 and set(rows) == {"good", "bad", "headless"}
    assert rows["good"].damaged == ""
    for sid, path in (("bad", bad), ("headless", headless)):
        assert rows[sid].damaged == "; ".join(problems[str(path)])
        assert rows[sid].started_at.startswith("2026-02-09") and rows[sid].message_count == 0
    assert "no readable event" in rows["bad"].damaged
    assert "session.started" in rows["headless"].damaged


def test_a_damaged_session_stays_listed_after_a_reindex(data_dir: Path) -> None:
    from eventlog.backends.file.maintenance import reindex

    write_journal(data_dir, "bad", [b"\x00\x01garbage"])
    with Store(data_dir, background=False) as store:
        store.start(StartRequest(title="ok"))
        assert reindex(store) == 2
        rows = {s.session_id: s for s in store.list(ListRequest()).sessions}
    assert "no readable event" in rows["bad"].damaged


async def test_the_list_endpoint_reports_damaged_sessions(
    make_api: Callable[..., Awaitable[Api]], data_dir: Path
) -> None:
    write_journal(data_dir, "broken", [b"{"])
    foreign_session(data_dir, "nulls", None)
    api = await make_api()
    store = api.app[BACKEND].store  # the server indexes a copied-in store in the background
    assert await asyncio.to_thread(store.reconciled.wait, 120)
    out = await api.ok("list", {})
    rows = {s["session_id"]: s for s in out["sessions"]}
    assert out["total_sessions"] == 2
    assert "damaged" not in rows["nulls"] and rows["nulls"]["title"] == ""
    assert "no readable event" in rows["broken"]["damaged"]
    status, err = await api.post("load", {"session_id": "broken"})
    assert status >= 400 and "verify" in err["error"]
