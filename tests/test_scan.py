"""Reading journal lines: ``events_after`` finds a resume point without reading it all."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.backends.file.scan import events_after
from eventlog.events import (
    MessageAppended,
    MessageAppendedData,
    SessionStarted,
    SessionStartedData,
    encode_line,
)

TS = "2026-01-01T00:00:00.000Z"


def journal_bytes(n: int, seed: int = 0) -> list[bytes]:
    """Lines of a journal with seq 1..n and contents of very different lengths (one of
    them far longer than the bisection's first read)."""
    rnd = random.Random(seed)
    lines = [encode_line(SessionStarted(1, "e1", TS, SessionStartedData("u", {})))]
    for seq in range(2, n + 1):
        size = 20_000 if seq == n // 2 else rnd.choice((5, 50, 500))
        data = MessageAppendedData(f"m{seq}", "user", "ü" * size, TS, {})
        lines.append(encode_line(MessageAppended(seq, f"e{seq}", TS, data)))
    return lines


@given(after=st.integers(0, 130), window=st.sampled_from([64, 1000, 1 << 16]))
@settings(max_examples=150, deadline=None)
def test_events_after_returns_exactly_the_later_events(
    tmp_path_factory: pytest.TempPathFactory, after: int, window: int
) -> None:
    path = tmp_path_factory.mktemp("j") / "s.jsonl"
    path.write_bytes(b"".join(journal_bytes(120)))
    found = events_after(str(path), after, window)
    assert [e.seq for e in found.events] == list(range(after + 1, 121))
    assert found.end == path.stat().st_size and not found.bad


@pytest.mark.parametrize("after", [0, 1, 30, 59, 60, 61, 100, 119, 120])
def test_events_after_steps_over_a_corrupt_line_and_keeps_a_torn_tail_out(
    tmp_path: Path, after: int
) -> None:
    """Regression guard: the bisection decodes single lines at arbitrary points; a
    garbage line there must neither derail it nor lose the good lines around it."""
    lines = journal_bytes(120, seed=1)
    lines[59] = b'{"garbage\n'  # seq 60 is corrupt
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(lines) + b'{"seq": 121, "half')
    found = events_after(str(path), after, window=64)
    assert [e.seq for e in found.events] == [s for s in range(after + 1, 121) if s != 60]
    assert found.torn > 0


def test_events_after_reads_little_of_a_long_journal_near_its_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventlog.backends.file.scan as scan_mod

    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(journal_bytes(5000)))
    read = 0
    real = scan_mod.os.pread

    def counted(fd: int, n: int, offset: int) -> bytes:
        nonlocal read
        out = real(fd, n, offset)
        read += len(out)
        return out

    monkeypatch.setattr(scan_mod.os, "pread", counted)
    found = events_after(str(path), 4990)
    assert [e.seq for e in found.events] == list(range(4991, 5001))
    assert read < path.stat().st_size // 10, f"read {read} of {path.stat().st_size} bytes"
