"""The list on PostgreSQL answers exactly as the file index does: the same sessions
(imported from one ``events`` export into both backends), every filter and page, the
same aggregates; for a search the same matches (ranking functions differ, so the order
of equally good hits may too)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from eventlog.backends.file.backend import FileBackend
from eventlog.backends.file.store import Store
from eventlog.backends.postgres.backend import PostgresBackend
from eventlog.formats import event_lines
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    ListRequest,
    StartRequest,
    UpdateRequest,
)

pytestmark = pytest.mark.asyncio
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "walrus",
    "zephyr",
    "quartz",
    "ünïcode",
    "naïve",
    "café",
]


def build(root: Path) -> bytes:
    """30 sessions with varied types, tags, flags and text; their events export."""
    rng = random.Random(3)
    out = []
    with Store(root) as s:
        for k in range(30):
            sid = s.start(
                StartRequest(
                    title=rng.choice(["", "Quartz plan", "weekly sync", f"t{k}"]),
                    metadata={"type": rng.choice(["chat", "voice", "agent"])},
                )
            ).session_id
            for _ in range(rng.randint(0, 4)):
                words = " ".join(rng.sample(WORDS, 3))
                s.append(
                    AppendRequest(
                        session_id=sid, role=rng.choice(["user", "assistant"]), content=words
                    )
                )
            if rng.random() < 0.3:
                s.append(
                    AppendRequest(
                        session_id=sid,
                        role="assistant",
                        content="stream",
                        partial=True,
                        message_id="p",
                    )
                )
                if rng.random() < 0.5:
                    s.complete(
                        CompleteRequest(session_id=sid, message_id="p", content="streamed walrus")
                    )
            s.update(
                UpdateRequest(
                    session_id=sid,
                    tags=rng.sample(["work", "home", "x"], rng.randint(0, 2)),
                    pinned=rng.random() < 0.2,
                    archived=rng.random() < 0.2,
                )
            )
            out += list(event_lines(sid, s.events(sid, 0)))
    return b"".join(out)


REQUESTS: list[dict[str, Any]] = [
    {},
    {"limit": 7},
    {"limit": 7, "offset": 7},
    {"limit": 5, "offset": 100},
    {"archived": None},
    {"archived": True},
    {"type": "voice"},
    {"tag": "work"},
    {"tag": "work", "archived": None, "limit": 3},
    {"since": "2000-01-01"},
    {"until": "2000-01-01"},
    {"until": "2999-12-31", "type": "chat"},
    {"query": "walrus"},
    {"query": "quartz"},
    {"query": "zeph"},
    {"query": "alpha gamma"},
    {"query": "café"},
    {"query": "nothing-matches-this"},
    {"query": "walrus", "tag": "home", "archived": None},
    {"query": "walrus", "limit": 2, "offset": 2},
    {"query": "walrus", "offset": 500},
    {"query": "  ...  "},
]


async def test_every_filter_and_page_matches_the_file_index(tmp_path: Path, pg_url: str) -> None:
    export = build(tmp_path / "src")
    f = FileBackend(tmp_path / "dst", threads=4)
    p = PostgresBackend(pg_url, pool_size=4)
    try:
        await f.import_events(export)
        await p.import_events(export)
        for body in [*REQUESTS, None, *REQUESTS]:
            if body is None:  # again, once the counter deltas are rolled into totals
                await p.compact()
                continue
            req = ListRequest(**body)
            a, b = await f.list(req), await p.list(req)
            where = f"for {body}"
            assert (a.total_sessions, a.total_messages, a.has_more) == (
                b.total_sessions,
                b.total_messages,
                b.has_more,
            ), where
            assert (a.sessions_today, a.sessions_this_week) == (
                b.sessions_today,
                b.sessions_this_week,
            ), where
            if req.query is None:
                assert a.sessions == b.sessions, where
            else:
                assert len(a.sessions) == len(b.sessions), where
                if req.limit >= a.total_sessions:
                    assert sorted(s.session_id for s in a.sessions) == sorted(
                        s.session_id for s in b.sessions
                    ), where
    finally:
        await f.close()
        await p.close()
