"""Journal: recovery from torn tails and corruption, multi-process appends, crashes."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from eventlog.backends.file import syscalls
from eventlog.backends.file.store import Store
from eventlog.errors import StorageError
from eventlog.events import decoder
from eventlog.requests import AppendRequest, StartRequest

from .conftest import PYTHON, ROOT


def _journal_with(store: Store, n: int) -> tuple[str, str]:
    sid = store.start(StartRequest()).session_id
    for i in range(n):
        store.append(AppendRequest(session_id=sid, role="user", content=f"line {i} ünï"))
    return sid, store.path_of(sid)


def _seqs(path: str) -> list[int]:
    return [decoder.decode(line).seq for line in Path(path).read_bytes().splitlines()]


def test_torn_last_line_is_cut_on_recovery_at_every_byte_offset(data_dir: Path) -> None:
    """Every prefix of the last line (a crash mid-write) is cut and kept aside; all
    complete lines survive and the next append continues the seq."""
    with Store(data_dir) as s:
        sid, path = _journal_with(s, 3)
    whole = Path(path).read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last_start, len(whole)):
        Path(path).write_bytes(whole[:cut])
        for p in (path + ".torn", path[:-1]):
            Path(p).unlink(missing_ok=True)
        with Store(data_dir, background=False) as s:
            loaded = s.load(sid).session
            assert loaded.seq == 3  # lines 1..3 complete, line 4 torn
            r = s.append(AppendRequest(session_id=sid, role="user", content="after"))
            assert r.seq == 4
        assert _seqs(path) == [1, 2, 3, 4]
        if cut > last_start:
            assert Path(path + ".torn").read_bytes().rstrip(b"\n") == whole[last_start:cut]


@pytest.mark.parametrize(
    "junk", [b"\x00" * 64, b"\x00\x00\n\x00", b"garbage{]\n", b'\xff\xfe\n{"seq":']
)
def test_zero_bytes_or_garbage_after_the_last_line_never_break_open(
    data_dir: Path, junk: bytes
) -> None:
    with Store(data_dir) as s:
        sid, path = _journal_with(s, 2)
    with open(path, "ab") as f:
        f.write(junk)
    with Store(data_dir, background=False) as s:
        assert s.load(sid).session.seq == 3
        assert s.append(AppendRequest(session_id=sid, role="user", content="x")).seq == 4
    assert _seqs(path) == [1, 2, 3, 4]
    assert Path(path + ".torn").exists()


def test_corrupt_line_in_the_middle_is_reported_and_the_rest_loads(data_dir: Path) -> None:
    with Store(data_dir) as s:
        sid, path = _journal_with(s, 4)
    lines = Path(path).read_bytes().splitlines(keepends=True)
    lines[2] = b'{"this is": "not an event"}\n'
    Path(path).write_bytes(b"".join(lines))
    Path(path[:-1]).unlink(missing_ok=True)
    with Store(data_dir, background=False) as s:
        session = s.load(sid).session
        assert session.seq == 5 and len(session.messages) == 3  # message 2 (seq 3) lost
        j = s._journal(sid)
        assert [b.offset for b in j.bad] == [len(lines[0]) + len(lines[1])]
        assert s.append(AppendRequest(session_id=sid, role="user", content="x")).seq == 6


CHILD = textwrap.dedent("""
    import sys
    from eventlog.backends.file.store import Store
    from eventlog.requests import AppendRequest
    data, sid, tag, n, fsync = sys.argv[1:6]
    s = Store(data, fsync=fsync, background=False, reconcile=False)
    for i in range(int(n)):
        r = s.append(AppendRequest(session_id=sid, role="user", content=f"{tag}-{i}",
                                   message_id=f"{tag}-{i}"))
        print(f"{tag}-{i} {r.seq}", flush=True)
    s.close()
""")


def test_two_processes_appending_to_one_session_keep_seq_gap_free(data_dir: Path) -> None:
    with Store(data_dir) as s:
        sid = s.start(StartRequest()).session_id
        path = s.path_of(sid)
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", CHILD, str(data_dir), sid, tag, "2000", "always"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for tag in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    raw = Path(path).read_bytes()
    assert raw.endswith(b"\n")
    events = [decoder.decode(line) for line in raw.splitlines()]  # no merged/split lines
    assert [e.seq for e in events] == list(range(1, 4002))
    contents = sorted(e.data.content for e in events[1:])  # type: ignore[union-attr]
    assert contents == sorted([f"a-{i}" for i in range(2000)] + [f"b-{i}" for i in range(2000)])


@pytest.mark.slow
def test_every_reported_append_survives_kill_9_exactly_once(data_dir: Path) -> None:
    """50 SIGKILLs at random moments of an fsync=always append loop: whatever the child
    reported as appended (i.e. acknowledged) is in the journal exactly once, gap-free."""
    rng = random.Random(1234)
    with Store(data_dir) as s:
        sid = s.start(StartRequest()).session_id
        path = s.path_of(sid)
    acked: list[str] = []
    for cycle in range(50):
        p = subprocess.Popen(
            [PYTHON, "-c", CHILD, str(data_dir), sid, f"c{cycle}", "100000", "always"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert p.stdout is not None
        deadline = time.monotonic() + rng.uniform(0.25, 0.6)
        os.set_blocking(p.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            chunk = p.stdout.read()
            if chunk:
                buf += chunk
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()
        rest = p.stdout.read()
        buf += rest or b""
        complete = buf.split(b"\n")[:-1]  # a line still being printed is not an ack
        acked += [ln.split()[0].decode() for ln in complete]
        p.stdout.close()
    with Store(data_dir, background=False) as s:
        session = s.load(sid).session
    ids = [m.message_id for m in session.messages]
    assert len(ids) == len(set(ids)), "an append was written twice"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged appends lost"
    assert _seqs(path)[: session.seq] == list(range(1, session.seq + 1))
    assert len(acked) > 200  # the loop really ran


def test_a_failed_fsync_is_never_acknowledged(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(data_dir, background=False) as s:
        sid, _path = _journal_with(s, 1)

        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "injected")

        monkeypatch.setattr(syscalls, "fdatasync", eio)
        with pytest.raises(StorageError, match=r"fsync .* failed"):
            s.append(AppendRequest(session_id=sid, role="user", content="lost", message_id="L"))
        monkeypatch.undo()
        # the journal is readable, and a retry with the same message_id does not duplicate
        r = s.append(AppendRequest(session_id=sid, role="user", content="lost", message_id="L"))
        assert r.seq == 3
        assert [m.message_id for m in s.load(sid).session.messages].count("L") == 1


def test_a_failed_write_leaves_the_journal_as_it_was(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(data_dir, background=False) as s:
        sid, path = _journal_with(s, 2)
        before = Path(path).read_bytes()

        def enospc(fd: int, data: bytes) -> int:
            os.write(fd, data[: len(data) // 2])  # a short write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(syscalls, "write", enospc)
        with pytest.raises(StorageError, match="No space left"):
            s.append(AppendRequest(session_id=sid, role="user", content="x" * 1000))
        monkeypatch.undo()
        assert Path(path).read_bytes() == before
        assert s.append(AppendRequest(session_id=sid, role="user", content="ok")).seq == 4
