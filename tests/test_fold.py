"""Fold: the canonical session from events, and the snapshot + tail invariant."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.events import (
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
    SessionStarted,
    SessionStartedData,
    SessionUpdated,
    SessionUpdatedData,
)
from eventlog.fold import fold

TS = "2026-02-09T21:30:00.000Z"


def started() -> SessionStarted:
    return SessionStarted(1, "e1", TS, SessionStartedData("User", {"type": "voice"}, "T"))


def test_seed_structure_and_stats() -> None:
    evs: list[Event] = [
        started(),
        MessageAppended(2, "e2", TS, MessageAppendedData("m1", "user", "Hello", TS, {})),
        MessageAppended(3, "e3", TS, MessageAppendedData("m2", "assistant", "Hi", TS, {"x": 1})),
        ErrorRecorded(4, "e4", TS, ErrorRecordedData("boom", {"code": 1})),
    ]
    s = fold("abc", evs)
    assert (s.session_id, s.user_name, s.seq, s.title) == ("abc", "User", 4, "T")
    assert [m.content for m in s.messages] == ["Hello", "Hi"]
    assert (s.stats.total_messages, s.stats.user_messages, s.stats.assistant_messages) == (2, 1, 1)
    assert s.stats.errors == 1 and s.errors[0].message == "boom"
    assert s.metadata == {"type": "voice"}


def test_streaming_append_replace_and_complete() -> None:
    evs: list[Event] = [
        started(),
        MessageAppended(2, "a", TS, MessageAppendedData("m", "assistant", "", TS, {}, "partial")),
        MessageDelta(3, "b", TS, MessageDeltaData("m", "Hel", "append")),
        MessageDelta(4, "c", TS, MessageDeltaData("m", "lo", "append")),
    ]
    s = fold("x", evs)
    assert (s.messages[0].content, s.messages[0].status) == ("Hello", "partial")
    voice = [*evs, MessageDelta(5, "d", TS, MessageDeltaData("m", "hello world", "replace"))]
    assert fold("x", voice).messages[0].content == "hello world"
    done = fold("x", [*voice, MessageCompleted(6, "e", TS, MessageCompletedData("m"))])
    assert (done.messages[0].content, done.messages[0].status) == ("hello world", "complete")
    final = fold("x", [*voice, MessageCompleted(6, "e", TS, MessageCompletedData("m", "Hello."))])
    assert final.messages[0].content == "Hello."


def test_fold_result_is_independent_of_later_events() -> None:
    """Regression guard: a Session handed out must not change when the folder moves on."""
    from eventlog.fold import Folder

    f = Folder("x")
    f.apply(started())
    f.apply(MessageAppended(2, "a", TS, MessageAppendedData("m", "user", "one", TS, {})))
    before = f.session()
    f.apply(MessageEdited(3, "b", TS, MessageEditedData("m", "two")))
    f.apply(SessionUpdated(4, "c", TS, SessionUpdatedData(title="new", tags=["t"])))
    assert before.messages[0].content == "one" and before.title == "T" and before.tags == []
    assert f.session().messages[0].content == "two"


# -- property: fold(all) == fold(tail, base=fold(head)) for every split -----------------

texts = st.text(max_size=20)
mids = st.sampled_from(["m1", "m2", "m3", "m4"])


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    evs: list[Event] = [started()]
    n = draw(st.integers(0, 30))
    for seq in range(2, n + 2):
        kind = draw(st.sampled_from(["append", "delta", "complete", "edit", "update", "error"]))
        eid = f"e{seq}"
        mid = draw(mids)
        ev: Event
        if kind == "append":
            role = draw(st.sampled_from(["user", "assistant", "system", "tool"]))
            status = draw(st.sampled_from(["complete", "partial"]))
            ev = MessageAppended(
                seq, eid, TS, MessageAppendedData(mid, role, draw(texts), TS, {}, status)
            )
        elif kind == "delta":
            mode = draw(st.sampled_from(["append", "replace"]))
            ev = MessageDelta(seq, eid, TS, MessageDeltaData(mid, draw(texts), mode))
        elif kind == "complete":
            content = draw(st.none() | texts)
            ev = MessageCompleted(seq, eid, TS, MessageCompletedData(mid, content))
        elif kind == "edit":
            ev = MessageEdited(seq, eid, TS, MessageEditedData(mid, draw(texts)))
        elif kind == "update":
            ev = SessionUpdated(
                seq,
                eid,
                TS,
                SessionUpdatedData(
                    title=draw(st.none() | texts),
                    tags=draw(st.none() | st.lists(texts, max_size=3)),
                    pinned=draw(st.none() | st.booleans()),
                ),
            )
        else:
            ev = ErrorRecorded(seq, eid, TS, ErrorRecordedData(draw(texts)))
        evs.append(ev)
    return evs


@settings(max_examples=300)
@given(evs=event_lists(), data=st.data())
def test_snapshot_plus_tail_equals_fold_of_everything(
    evs: list[Event], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(evs)))
    snapshot = fold("s", evs[:cut])
    assert fold("s", evs[cut:], snapshot) == fold("s", evs)
