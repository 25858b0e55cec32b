"""The derived list index: ordering, filters, aggregates, ranked search, incremental
upkeep (apply) against a full rebuild, and sharing one file between processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.backends.file import listing as listing_module
from eventlog.backends.file.index import Index
from eventlog.backends.file.listing import fts_query
from eventlog.events import (
    DeltaMode,
    ErrorRecorded,
    ErrorRecordedData,
    Event,
    MessageAppended,
    MessageAppendedData,
    MessageCompleted,
    MessageCompletedData,
    MessageDelta,
    MessageDeltaData,
    MessageEdited,
    MessageEditedData,
    Role,
    SessionStarted,
    SessionStartedData,
    SessionUpdated,
    SessionUpdatedData,
    Status,
)
from eventlog.fold import fold
from eventlog.model import Session, summarize
from eventlog.requests import ListRequest
from eventlog.results import ListResult

NOW = datetime(2026, 2, 9, 12, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class J:
    """A session's journal under construction: events with gap-free seqs and a clock."""

    def __init__(self, sid: str, start: datetime = NOW - timedelta(hours=1), **kw: Any) -> None:
        self.sid, self.clock, self.sent = sid, start, 0
        self.events: list[Event] = []
        self.add(
            SessionStarted,
            SessionStartedData(
                user_name="U", metadata={"type": kw.pop("type", "chat")}, title=kw.pop("title", "")
            ),
        )
        if kw:
            self.update(**kw)

    def add(self, cls: Any, data: Any) -> Event:
        self.clock += timedelta(seconds=1)
        ev: Event = cls(
            seq=len(self.events) + 1,
            id=f"{self.sid}-{len(self.events)}",
            ts=iso(self.clock),
            data=data,
        )
        self.events.append(ev)
        return ev

    def msg(
        self,
        content: str,
        role: Role = "user",
        mid: str | None = None,
        status: Status = "complete",
    ) -> str:
        mid = mid or f"m{len(self.events)}"
        data = MessageAppendedData(mid, role, content, iso(self.clock), {}, status)
        self.add(MessageAppended, data)
        return mid

    def delta(self, mid: str, content: str, mode: DeltaMode = "append") -> None:
        self.add(MessageDelta, MessageDeltaData(mid, content, mode))

    def complete(self, mid: str, content: str | None = None) -> None:
        self.add(MessageCompleted, MessageCompletedData(mid, content))

    def edit(self, mid: str, content: str) -> None:
        self.add(MessageEdited, MessageEditedData(mid, content))

    def update(self, **kw: Any) -> None:
        self.add(SessionUpdated, SessionUpdatedData(**kw))

    def error(self, text: str) -> None:
        self.add(ErrorRecorded, ErrorRecordedData(text))

    def session(self, upto: int | None = None) -> Session:
        return fold(self.sid, self.events[:upto])

    def item(self) -> tuple[Session, Sequence[Event], str, int]:
        """The unsent events, as the store hands them to Index.apply."""
        new, self.sent = self.events[self.sent :], len(self.events)
        return self.session(), new, f"sessions/x/{self.sid}.jsonl", 100 * len(self.events)


@pytest.fixture
def idx(tmp_path: Path) -> Iterator[Index]:
    i = Index(tmp_path / "index.sqlite3")
    yield i
    i.close()


def q(index: Index, **kw: Any) -> ListResult:
    return index.query(ListRequest(**kw), now=NOW)


def ids(r: ListResult) -> list[str]:
    return [s.session_id for s in r.sessions]


def put(index: Index, *journals: J) -> None:
    index.apply([j.item() for j in journals])


# -- listing -------------------------------------------------------------------------


def test_pinned_sessions_come_first_then_newest_last_updated(idx: Index) -> None:
    old = J("old", NOW - timedelta(days=3))
    new = J("new", NOW - timedelta(days=1))
    pinned = J("pinned", NOW - timedelta(days=9), pinned=True)
    put(idx, old, new, pinned)
    assert ids(q(idx)) == ["pinned", "new", "old"]
    old.msg("bump")  # touching a session moves it up
    old.clock = NOW
    old.msg("bump again")
    put(idx, old)
    assert ids(q(idx)) == ["pinned", "old", "new"]


def test_equal_last_updated_orders_by_session_id(idx: Index) -> None:
    put(idx, *(J(s, NOW) for s in "cab"))
    assert ids(q(idx)) == ["a", "b", "c"]


def test_rows_equal_summarize_exactly(idx: Index) -> None:
    j = J("s1", title="Trip", tags=["x", "y"], pinned=True)
    j.msg("a question about trains " * 10)
    j.msg("an answer", role="assistant")
    put(idx, j)
    [row] = q(idx).sessions
    assert row == summarize(j.session())
    assert row.tags == ["x", "y"] and row.pinned is True and row.archived is False


def test_pagination_and_has_more(idx: Index) -> None:
    put(idx, *(J(f"s{i:02}", NOW - timedelta(minutes=i)) for i in range(25)))
    pages = [q(idx, limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p.sessions) for p in pages] == [10, 10, 5, 0]
    assert [p.has_more for p in pages] == [True, True, False, False]
    assert [s for p in pages for s in ids(p)] == [f"s{i:02}" for i in range(25)]
    assert all(p.total_sessions == 25 for p in pages)
    assert (pages[1].limit, pages[1].offset) == (10, 10)


def test_archived_hidden_by_default_only_when_asked_or_both(idx: Index) -> None:
    put(idx, J("live"), J("gone", archived=True))
    assert ids(q(idx)) == ["live"]
    assert ids(q(idx, archived=True)) == ["gone"]
    assert sorted(ids(q(idx, archived=None))) == ["gone", "live"]


def test_unarchiving_brings_a_session_back(idx: Index) -> None:
    j = J("s", archived=True)
    put(idx, j)
    j.update(archived=False)
    put(idx, j)
    assert ids(q(idx)) == ["s"] and q(idx, archived=True).total_sessions == 0


def test_type_filter_uses_metadata_type(idx: Index) -> None:
    put(idx, J("c"), J("v", type="voice"))
    assert ids(q(idx, type="voice")) == ["v"]
    assert ids(q(idx, type="chat")) == ["c"]
    assert q(idx, type="nope").total_sessions == 0


def test_tag_filter_is_exact_and_follows_updates(idx: Index) -> None:
    a, b = J("a", tags=["work", "x"]), J("b", tags=["workshop"])
    put(idx, a, b)
    assert ids(q(idx, tag="work")) == ["a"]
    a.update(tags=["home"])
    put(idx, a)
    assert ids(q(idx, tag="work")) == [] and ids(q(idx, tag="home")) == ["a"]


def test_since_filters_on_last_updated_and_until_on_start_day(idx: Index) -> None:
    early = J("early", datetime(2026, 1, 1, 10, tzinfo=UTC))
    late_start = J("late", datetime(2026, 1, 5, 23, 59, tzinfo=UTC))
    early.clock = datetime(2026, 1, 10, tzinfo=UTC)
    early.msg("still talking")  # last_updated 2026-01-10
    put(idx, early, late_start)
    assert sorted(ids(q(idx, since="2026-01-06"))) == ["early"]
    assert sorted(ids(q(idx, since="2026-01-05"))) == ["early", "late"]
    assert ids(q(idx, until="2026-01-04")) == ["early"]
    assert sorted(ids(q(idx, until="2026-01-05"))) == ["early", "late"]  # whole day
    assert ids(q(idx, since="2026-01-06", until="2026-01-01")) == ["early"]


def test_aggregates_cover_the_matching_set(idx: Index) -> None:
    today = J("today", NOW - timedelta(hours=2))
    for _ in range(3):
        today.msg("hi")
    week = J("week", NOW - timedelta(days=3))
    week.msg("hi")
    old = J("old", NOW - timedelta(days=30), tags=["t"])
    old.msg("hi")
    old.msg("ho")
    gone = J("gone", NOW - timedelta(hours=1), archived=True)
    gone.msg("x")
    put(idx, today, week, old, gone)
    r = q(idx, limit=1)
    assert (r.total_sessions, r.sessions_today, r.sessions_this_week, r.total_messages) == (
        3,
        1,
        2,
        6,
    )
    r = q(idx, archived=None)
    assert (r.total_sessions, r.sessions_today, r.sessions_this_week, r.total_messages) == (
        4,
        2,
        3,
        7,
    )
    r = q(idx, tag="t")
    assert (r.total_sessions, r.sessions_today, r.sessions_this_week, r.total_messages) == (
        1,
        0,
        0,
        2,
    )
    r = q(idx, query="hi")
    assert (r.total_sessions, r.sessions_today, r.total_messages) == (3, 1, 6)
    r = q(idx, type="voice")
    assert (r.total_sessions, r.total_messages, r.has_more) == (0, 0, False)


def test_running_totals_follow_updates_and_removal(idx: Index) -> None:
    a, b = J("a"), J("b", type="voice")
    a.msg("1")
    put(idx, a, b)
    a.msg("2")
    b.update(archived=True)
    put(idx, a, b)
    assert (q(idx).total_sessions, q(idx).total_messages) == (1, 2)
    assert q(idx, type="voice", archived=None).total_sessions == 1
    idx.remove("a")
    assert (q(idx).total_sessions, q(idx).total_messages) == (0, 0)


def test_aggregates_survive_a_page_past_the_end(idx: Index) -> None:
    j = J("s")
    j.msg("needle")
    put(idx, j)
    for kw in ({}, {"query": "needle"}, {"tag": "none"}):
        r = q(idx, offset=50, **kw)
        assert r.sessions == [] and r.has_more is False
    assert q(idx, offset=50, query="needle").total_sessions == 1


# -- search --------------------------------------------------------------------------


def test_word_in_a_message_body_is_found(idx: Index) -> None:
    a, b = J("a"), J("b")
    a.msg("the quick brown fox")
    b.msg("a lazy dog", role="assistant")
    put(idx, a, b)
    assert ids(q(idx, query="fox")) == ["a"]
    assert ids(q(idx, query="LAZY dog")) == ["b"]
    assert ids(q(idx, query="cat")) == []


def test_title_hit_outranks_body_hit(idx: Index) -> None:
    body = J("body", NOW - timedelta(minutes=1))  # newer, so not winning on the tie-break
    body.msg("some words about volcanoes and other words")
    title = J("title", NOW - timedelta(days=2), title="Volcanoes")
    title.msg("unrelated")
    put(idx, body, title)
    assert ids(q(idx, query="volcanoes")) == ["title", "body"]


def test_more_relevant_session_ranks_first(idx: Index) -> None:
    weak, strong = J("weak", NOW), J("strong", NOW - timedelta(days=1))
    weak.msg("kiwi " + "filler " * 40)
    strong.msg("kiwi kiwi kiwi")
    put(idx, weak, strong)
    assert ids(q(idx, query="kiwi")) == ["strong", "weak"]


def test_all_terms_must_match_and_last_term_is_a_prefix(idx: Index) -> None:
    a, b = J("a"), J("b")
    a.msg("deploying the server tonight")
    b.msg("the server is down")
    put(idx, a, b)
    assert ids(q(idx, query="server deploy")) == ["a"]
    assert sorted(ids(q(idx, query="serv"))) == ["a", "b"]
    assert ids(q(idx, query="deploy server")) == []  # only the last term is a prefix
    assert ids(q(idx, query="se")) == []  # too short to expand: matched as a whole word


def test_non_ascii_search_folds_case_and_diacritics(idx: Index) -> None:
    a, b, c = J("a"), J("b"), J("c")
    a.msg("Rendez-vous au café à Zürich")
    b.msg("Привет, как дела?")
    c.msg("東京 タワー")
    put(idx, a, b, c)
    assert ids(q(idx, query="cafe zurich")) == ["a"]
    assert ids(q(idx, query="Café")) == ["a"]
    assert ids(q(idx, query="привет")) == ["b"]
    assert ids(q(idx, query="東京")) == ["c"]


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '""',
        '"unbalanced',
        "*",
        "fox*",
        "(",
        "fox)",
        "AND",
        "fox AND",
        "OR fox",
        "NOT",
        "-fox",
        "fox -",
        "title:fox",
        "NEAR(fox dog)",
        "^fox",
        "{title}: fox",
        "fox + dog",
        "'",
        ":",
        "\x00",
        "   ",
        "🦊",
        'a"b',
        "fox'); DROP TABLE sessions; --",
        "fox\ud800",
    ],
)
def test_fts_syntax_in_the_query_never_raises(idx: Index, text: str) -> None:
    j = J("s", title="and")
    j.msg("the fox and the dog")
    put(idx, j)
    r = q(idx, query=text)
    assert r.total_sessions in (0, 1)


def test_query_without_searchable_terms_lists_everything(idx: Index) -> None:
    put(idx, J("a"), J("b"))
    assert q(idx, query="  *** ").total_sessions == 2
    assert fts_query("  ") is None and fts_query('x"y zed') == '"x""y" AND "zed"*'


@given(st.text(max_size=40))
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_text_query_is_answered(idx: Index, text: str) -> None:
    assert isinstance(q(idx, query=text), ListResult)


def test_search_combines_with_filters(idx: Index) -> None:
    a, b = J("a", tags=["t"]), J("b", archived=True)
    a.msg("shared word")
    b.msg("shared word")
    put(idx, a, b)
    assert ids(q(idx, query="shared")) == ["a"]
    assert sorted(ids(q(idx, query="shared", archived=None))) == ["a", "b"]
    assert ids(q(idx, query="shared", tag="t", archived=None)) == ["a"]


def test_broad_query_lists_title_matches_first_then_newest(
    idx: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing_module, "RANK_LIMIT", 0)  # as if thousands of messages matched
    titled = J("titled", NOW - timedelta(days=5), title="Rust notes")
    new, old = J("new", NOW - timedelta(hours=1)), J("old", NOW - timedelta(days=2))
    for j in (titled, new, old):
        j.msg("rust rust rust")
    put(idx, titled, new, old)
    r = q(idx, query="rust")
    assert ids(r) == ["titled", "new", "old"] and r.total_sessions == 3
    assert q(idx, query="rust", offset=5).total_sessions == 3


def test_a_common_term_filters_but_does_not_score(
    idx: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression guard: bm25 counts every message holding each term, so "the zephyr"
    cost ~40 ms at 100k sessions for the word "the" alone. A term in more than
    RANK_LIMIT messages now only filters: the hits are still exactly the sessions with
    every term, ranked by the rarer terms (here: more "zephyr" ranks first)."""
    monkeypatch.setattr(listing_module, "RANK_LIMIT", 4)  # "zephyr" is in 4 messages
    once, thrice = J("once"), J("thrice", NOW - timedelta(days=3))
    once.msg("the zephyr came")
    thrice.msg("the zephyr zephyr zephyr")
    only_rare, only_common = J("only-rare"), J("only-common")
    only_rare.msg("zephyr without the article... well")
    only_rare.msg("zephyr")  # no "the" in this one, and terms must share a message
    only_common.msg("the end")
    others = [J(f"o{i}") for i in range(8)]  # "the" in 11 messages
    for o in others:
        o.msg("the usual")
    put(idx, once, thrice, only_rare, only_common, *others)
    r = q(idx, query="the zephyr")
    # only-rare's first message holds both words: it matches; its best bm25 is lower
    assert ids(r)[0] == "thrice" and sorted(ids(r)) == ["once", "only-rare", "thrice"]
    assert r.total_sessions == 3
    terms = ['"the"', '"zephyr"*']  # bm25 scores "zephyr" alone; "the" still filters
    assert listing_module._hits(idx._db, terms, " AND ".join(terms))[1] == (
        '"zephyr"*',
        '"the" AND "zephyr"*',
    )
    # all terms common: no bm25 at all, newest first (and the same sessions)
    assert sorted(ids(q(idx, query="the usual"))) == [f"o{i}" for i in range(8)]
    monkeypatch.setattr(listing_module, "RANK_LIMIT", 10_000)
    assert sorted(ids(q(idx, query="the zephyr"))) == ["once", "only-rare", "thrice"]
    assert ids(q(idx, query="the zephyr"))[0] == "thrice"


def _mixed_store(index: Index) -> None:
    journals = []
    for i in range(40):
        j = J(
            f"s{i:02}", NOW - timedelta(days=i * 3, hours=i), type="voice" if i % 4 == 0 else "chat"
        )
        j.msg(f"common words {'rare' if i % 7 == 0 else 'plain'} number{i}")
        j.msg("reply text", role="assistant")
        j.update(
            tags=["even"] if i % 2 == 0 else ["odd", "x"],
            pinned=i % 9 == 0,
            archived=i % 5 == 0,
            title="Rare title" if i == 13 else "",
        )
        j.clock = NOW - timedelta(days=i)  # last_updated is not in start order
        j.msg("late reply")
        journals.append(j)
    put(index, *journals)


FILTERS: list[dict[str, Any]] = [
    {},
    {"archived": None},
    {"archived": True},
    {"type": "voice"},
    {"tag": "even"},
    {"tag": "x", "archived": None},
    {"since": "2026-01-20"},
    {"until": "2025-12-31"},
    {"until": "2026-01-15", "archived": None, "tag": "odd"},
    {"since": "2025-12-01", "until": "2026-01-10", "type": "chat"},
    {"until": "2026-02-01", "limit": 3, "offset": 2},
]


@pytest.mark.parametrize("kw", FILTERS)
def test_every_query_plan_gives_the_same_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kw: dict[str, Any]
) -> None:
    index = Index(tmp_path / "i.db")
    _mixed_store(index)
    answers = []
    for few, rank in ((5000, 10_000), (0, 0), (10**9, 10**9)):
        monkeypatch.setattr(listing_module, "_FEW", few)
        monkeypatch.setattr(listing_module, "RANK_LIMIT", rank)
        listed = q(index, **kw)
        searched = q(index, query="common", **kw)
        answers.append(
            (
                listed,
                sorted(ids(searched)),
                searched.total_sessions,
                searched.sessions_this_week,
                searched.total_messages,
            )
        )
    assert answers[0] == answers[1] == answers[2]
    listed = answers[0][0]
    everything = q(index, archived=None, limit=1000).sessions
    expect = [s for s in everything if _matches(s, kw)]
    assert listed.total_sessions == len(expect)
    assert listed.total_messages == sum(s.message_count for s in expect)
    offset, limit = kw.get("offset", 0), kw.get("limit", 100)
    assert ids(listed) == [s.session_id for s in expect][offset : offset + limit]
    index.close()


def _matches(s: Any, kw: dict[str, Any]) -> bool:
    archived = kw.get("archived", False)
    until = kw.get("until")
    return (
        (archived is None or s.archived == archived)
        and kw.get("type", s.type) == s.type
        and (kw.get("tag") is None or kw["tag"] in s.tags)
        and (kw.get("since") is None or s.last_updated >= kw["since"])
        and (until is None or s.started_at[:10] <= until)
    )


# -- incremental upkeep --------------------------------------------------------------


def test_streaming_message_is_indexed_on_completion_not_per_delta(idx: Index) -> None:
    j = J("s")
    mid = j.msg("", role="assistant", status="partial")
    put(idx, j)
    j.delta(mid, "hello ")
    j.delta(mid, "streamed ")
    put(idx, j)
    assert q(idx, query="streamed").total_sessions == 0
    j.delta(mid, "world")
    j.complete(mid)
    put(idx, j)
    assert ids(q(idx, query="streamed world")) == ["s"]


def test_completion_with_final_content_replaces_interim_text(idx: Index) -> None:
    j = J("s")
    mid = j.msg("interim guess", role="user", status="partial")
    j.delta(mid, "better guess", mode="replace")
    j.complete(mid, "final transcript")
    put(idx, j)
    assert ids(q(idx, query="transcript")) == ["s"]
    assert q(idx, query="guess").total_sessions == 0


def test_edit_replaces_the_old_text(idx: Index) -> None:
    j = J("s")
    mid = j.msg("original wording")
    j.msg("other message")
    put(idx, j)
    j.edit(mid, "revised phrasing")
    put(idx, j)
    assert q(idx, query="original").total_sessions == 0
    assert ids(q(idx, query="revised")) == ["s"]


def test_title_change_replaces_title_doc(idx: Index) -> None:
    j = J("s", title="Alpha")
    put(idx, j)
    j.update(title="Beta")
    put(idx, j)
    assert q(idx, query="alpha").total_sessions == 0
    assert ids(q(idx, query="beta")) == ["s"]
    j.update(title="")
    put(idx, j)
    assert q(idx, query="beta").total_sessions == 0


def test_remove_forgets_row_docs_and_tags(idx: Index) -> None:
    a, b = J("a", tags=["t"], title="Keep"), J("b")
    a.msg("needle")
    put(idx, a, b)
    idx.remove("a")
    idx.remove("never-indexed")
    assert ids(q(idx, archived=None)) == ["b"]
    assert q(idx, query="needle").total_sessions == 0
    assert q(idx, query="keep").total_sessions == 0
    assert q(idx, tag="t").total_sessions == 0
    assert idx.journal_of("a") is None and "a" not in idx.stored()


def test_gap_in_events_triggers_full_reindex(idx: Index) -> None:
    j = J("s")
    put(idx, j)
    j.msg("missed by us")  # another process wrote these; we never saw the events
    mid = j.msg("also missed")
    j.sent = len(j.events)
    j.edit(mid, "edited later")
    put(idx, j)  # events start at seq 4, stored seq is 1: a gap
    assert ids(q(idx, query="missed")) == ["s"]
    assert ids(q(idx, query="edited")) == ["s"]
    assert idx.stored()["s"][0] == 4


def test_empty_events_with_a_different_seq_reindexes(idx: Index) -> None:
    j = J("s")
    j.msg("first")
    put(idx, j)
    j.msg("second")
    idx.apply([(j.session(), [], "sessions/x/s.jsonl", 7)])  # a start-up reconcile
    assert ids(q(idx, query="second")) == ["s"]
    assert idx.stored()["s"] == (3, 7)


def test_reconcile_may_move_a_session_back_but_live_applies_may_not(idx: Index) -> None:
    j = J("s")
    j.msg("kept")
    j.msg("dropped")
    put(idx, j)
    stale = j.session(upto=2)
    idx.apply([(stale, j.events[1:2], "p", 1)])  # late arrival of an older state
    assert idx.stored()["s"][0] == 3
    idx.apply([(stale, [], "p", 1)])  # the journal says seq 2: believe it
    assert idx.stored()["s"] == (2, 1)
    assert q(idx, query="dropped").total_sessions == 0
    assert q(idx, query="kept").total_sessions == 1


def test_reapplying_already_indexed_events_is_harmless(idx: Index) -> None:
    j = J("s")
    j.msg("once")
    put(idx, j)
    idx.apply([(j.session(), j.events, "p", 1)])
    assert q(idx, query="once").total_sessions == 1 and idx.stored()["s"] == (2, 1)


def test_stored_and_journal_of_report_what_was_indexed(idx: Index) -> None:
    j = J("s")
    j.msg("x")
    idx.apply([(j.session(), j.events, "sessions/2026-02-09/s.jsonl", 321)])
    assert idx.stored() == {"s": (2, 321)}
    assert idx.journal_of("s") == "sessions/2026-02-09/s.jsonl"
    assert idx.journal_of("other") is None


def test_rebuild_replaces_everything_and_reports_progress(idx: Index) -> None:
    put(idx, J("stale"))
    js = [J(f"s{i}") for i in range(5)]
    for j in js:
        j.msg(f"word{j.sid}")
    seen: list[int] = []
    n = idx.rebuild(
        [js[0].session(), *((j.session(), f"p/{j.sid}", 9) for j in js[1:])], progress=seen.append
    )
    assert n == 5 and seen and seen[-1] == 5
    assert sorted(ids(q(idx))) == [j.sid for j in js]
    assert idx.journal_of("s0") == f"sessions/{js[0].session().started_at[:10]}/s0.jsonl"
    assert idx.stored()["s1"] == (2, 9)
    assert ids(q(idx, query="words3")) == ["s3"]


def test_reopening_the_file_keeps_the_index(tmp_path: Path) -> None:
    j = J("s", title="Persisted")
    a = Index(tmp_path / "i.db")
    put(a, j)
    a.close()
    b = Index(tmp_path / "i.db")
    assert ids(q(b, query="persisted")) == ["s"]
    b.close()


def test_an_index_from_another_version_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    a = Index(path)
    put(a, J("s"))
    a.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 12345")
    db.close()
    b = Index(path)
    assert b.stored() == {} and q(b).total_sessions == 0  # the store's reconcile refills it
    put(b, J("t"))
    assert ids(q(b)) == ["t"]
    b.close()


# -- incremental apply == rebuild ----------------------------------------------------

WORDS = ["alpha", "beta", "gamma", "delta", "épée", "żółw", "kiwi"]
ops = st.lists(
    st.tuples(
        st.integers(0, 3),  # which session
        st.sampled_from(
            [
                "msg",
                "partial",
                "delta",
                "complete",
                "edit",
                "title",
                "tags",
                "pin",
                "archive",
                "error",
            ]
        ),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
        # after this op: 0 keep going, 1 flush to the index, 2 the events are lost to us
        # (another process wrote them), so the next apply sees a gap
        st.sampled_from([0, 0, 1, 2]),
    ),
    max_size=40,
)
QUERIES: list[dict[str, Any]] = [
    {},
    {"archived": None},
    {"archived": True},
    {"tag": "kiwi"},
    {"type": "chat"},
    {"query": "alpha"},
    {"query": "kiwi"},
    {"query": "epee"},
    {"query": "gam"},
    {"query": "beta", "archived": None},
    {"limit": 2, "offset": 1},
]


def _run(j: J, op: str, text: str) -> None:
    partial = [m for m in j.session().messages if m.status == "partial"]
    if op == "msg":
        j.msg(text)
    elif op == "partial":
        j.msg(text, role="assistant", status="partial")
    elif op in ("delta", "complete") and partial:
        (j.delta if op == "delta" else j.complete)(partial[0].message_id, " " + text)
    elif op == "edit" and j.session().messages:
        j.edit(j.session().messages[0].message_id, text)
    elif op == "title":
        j.update(title=text)
    elif op == "tags":
        j.update(tags=text.split())
    elif op == "pin":
        j.update(pinned=len(text) % 2 == 0)
    elif op == "archive":
        j.update(archived=len(text) % 3 == 0)
    elif op == "error":
        j.error(text)


@given(ops)
@settings(max_examples=60, deadline=None)
def test_incremental_apply_in_any_batching_equals_rebuild(script: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as d:
        inc, full = Index(Path(d) / "inc.db"), Index(Path(d) / "full.db")
        journals = [J(f"s{i}", NOW - timedelta(hours=i)) for i in range(4)]
        put(inc, *journals)
        for which, op, text, flush in script:
            _run(journals[which], op, text)
            if flush == 1:
                put(inc, *journals)
            elif flush == 2:
                journals[which].sent = len(journals[which].events)
        put(inc, *journals)
        full.rebuild(
            (j.session(), f"sessions/x/{j.sid}.jsonl", 100 * len(j.events)) for j in journals
        )
        for kw in QUERIES:
            assert q(inc, **kw) == q(full, **kw), kw
        assert inc.stored() == full.stored()
        inc.close()
        full.close()


# -- several processes ---------------------------------------------------------------


def test_two_index_objects_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    a, b = Index(tmp_path / "i.db"), Index(tmp_path / "i.db")
    ja, jb = J("from-a"), J("from-b")
    ja.msg("written by a")
    put(a, ja)
    assert ids(q(b, query="written")) == ["from-a"]
    jb.msg("written by b")
    put(b, jb)
    assert sorted(ids(q(a, query="written"))) == ["from-a", "from-b"]
    b.remove("from-a")
    assert ids(q(a)) == ["from-b"]
    a.close()
    b.close()


CHILD = """
import sys
from eventlog.fold import fold
from eventlog.backends.file.index import Index
sys.path.insert(0, sys.argv[2])
from test_index import J
idx = Index(sys.argv[1])
for i in range(40):
    j = J(f"child{i}")
    j.msg("from the child process")
    idx.apply([j.item()])
idx.close()
"""


def test_another_process_writing_concurrently(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    idx = Index(db)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(Path(__file__).parent)])
    for i in range(40):
        j = J(f"parent{i}")
        j.msg("from the parent process")
        put(idx, j)
    assert child.wait(timeout=60) == 0
    r = q(idx, limit=1000)
    assert r.total_sessions == 80 and len(r.sessions) == 80
    assert q(idx, query="child").total_sessions == 40
    idx.close()


def test_index_is_usable_from_several_threads(idx: Index) -> None:
    import threading

    def work(n: int) -> None:
        for i in range(20):
            j = J(f"t{n}-{i}")
            j.msg("threaded")
            put(idx, j)
            q(idx, query="threaded")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q(idx).total_sessions == 80


def test_list_result_round_trips_as_json(idx: Index) -> None:
    j = J("s", tags=["a"])
    put(idx, j)
    out = msgspec.json.decode(msgspec.json.encode(q(idx)))
    assert out["sessions"][0]["tags"] == ["a"] and out["total_sessions"] == 1


def test_reconcile_at_the_same_seq_with_a_line_lost_then_appending_works(idx: Index) -> None:
    """Regression: a reconcile (apply with no events) of a journal that lost a corrupt
    middle line keeps its seq but has one message fewer; it used to update only the row,
    leaving docs past message_count, and the next incremental append hit a rowid clash."""
    j = J("lost")
    for i in range(4):
        j.msg(f"word{i}")
    put(idx, j)
    shorter = fold("lost", j.events[:2] + j.events[3:])  # message 2 (seq 3) unreadable
    idx.apply([(shorter, [], "sessions/x/lost.jsonl", 1)])
    assert ids(q(idx, query="word1")) == [] and ids(q(idx, query="word3")) == ["lost"]
    ev = MessageAppended(
        seq=6,
        id="late",
        ts=iso(NOW),
        data=MessageAppendedData("m-late", "user", "fresh", iso(NOW), {}),
    )
    idx.apply([(fold("lost", [ev], shorter), [ev], "sessions/x/lost.jsonl", 2)])
    assert ids(q(idx, query="fresh")) == ["lost"] and ids(q(idx, query="word3")) == ["lost"]
