"""One filesystem flush (``syncfs``) for many sessions' appends (``FsFlush`` and the
syncer's flushing thread), and the per-journal fdatasync it falls back to.

The flush is replaced by a stand-in around ``os.sync`` (a real flush of every
filesystem), so these tests run on any kernel; the rest of the suite runs the real
``syncfs`` wherever the kernel has one that reports errors (Linux 5.8 and later).
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import eventlog.backends.file.fsflush as fsflush
import eventlog.backends.file.syscalls as syscalls
from eventlog.backends.file.backend import FileBackend
from eventlog.errors import StorageError
from eventlog.requests import AppendRequest, LoadRequest, StartRequest

from .browser_helpers import wait_until


class Calls:
    """Counts calls of the stand-in flush and of fdatasync, per thread-safe list."""

    def __init__(self) -> None:
        self.flushes = 0
        self.fdatasyncs: list[int] = []
        self.lock = threading.Lock()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    c = Calls()
    real = os.fdatasync

    def fake_syncfs(fd: int) -> None:
        with c.lock:
            c.flushes += 1
        os.sync()

    def counted(fd: int) -> None:
        with c.lock:
            c.fdatasyncs.append(fd)
        real(fd)

    monkeypatch.setattr(syscalls, "syncfs", fake_syncfs)
    monkeypatch.setattr(syscalls, "fdatasync", counted)
    # however much another test (or process) left dirty: these tests count flushes
    monkeypatch.setattr(fsflush, "DIRTY_LIMIT", 1 << 62)
    return c


@pytest.fixture
async def backend(tmp_path: Path, calls: Calls) -> AsyncIterator[FileBackend]:
    b = FileBackend(tmp_path / "data", threads=8)
    yield b
    await b.close()


async def open_sessions(b: FileBackend, n: int) -> list[str]:
    """Sessions whose journals are open (the first append opens one, in a thread)."""
    sids = []
    for _ in range(n):
        sid = (await b.start(StartRequest())).session_id
        await b.append(AppendRequest(session_id=sid, role="user", content="first"))
        sids.append(sid)
    return sids


def append(b: FileBackend, sid: str, text: str) -> asyncio.Task[object]:
    req = AppendRequest(session_id=sid, role="user", content=text, message_id=text)
    return asyncio.create_task(b.append(req))


def hold_flushes(
    monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> tuple[threading.Event, threading.Event]:
    """Make the next flush wait for ``go``; ``inside`` is set once one is waiting. (A
    held flush is not a slow one: that would send the syncer to fdatasyncs.)"""
    monkeypatch.setattr(fsflush, "SLOW_FLOOR", 3600.0)
    inside, go = threading.Event(), threading.Event()

    def held(fd: int) -> None:
        inside.set()
        go.wait(30)
        with calls.lock:
            calls.flushes += 1
        os.sync()

    monkeypatch.setattr(syscalls, "syncfs", held)
    return inside, go


async def test_an_append_is_not_acknowledged_before_the_flush_returns(
    backend: FileBackend, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sid,) = await open_sessions(backend, 1)
    calls.fdatasyncs.clear()  # opening a journal fdatasyncs it (in a thread)
    inside, go = hold_flushes(monkeypatch, calls)
    task = append(backend, sid, "wait")
    assert await asyncio.to_thread(inside.wait, 30)
    await asyncio.sleep(0.2)
    assert not task.done(), "acknowledged while the flush covering it was still running"
    go.set()
    await task
    assert calls.fdatasyncs == [], "the journal was fdatasynced besides the flush"


async def test_appends_to_many_sessions_share_one_flush(
    backend: FileBackend, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one flush runs, the appends to 16 other sessions queue up; the next flush
    takes them all (before: one fdatasync per journal, 70 µs of CPU each)."""
    sids = await open_sessions(backend, 17)
    calls.fdatasyncs.clear()
    inside, go = hold_flushes(monkeypatch, calls)
    first = append(backend, sids[0], "first-held")
    assert await asyncio.to_thread(inside.wait, 30)
    others = [append(backend, sid, f"m-{sid}") for sid in sids[1:]]
    await asyncio.sleep(0.2)  # let them all be written and queued behind the held flush
    go.set()
    results = await asyncio.gather(first, *others)
    assert [r.seq for r in results] == [3] * 17  # type: ignore[attr-defined]
    assert calls.flushes == 2, f"{calls.flushes} flushes for 17 sessions' appends"
    assert calls.fdatasyncs == []
    for sid in sids[1:]:
        loaded = (await backend.load(LoadRequest(session_id=sid))).session
        assert [m.content for m in loaded.messages] == ["first", f"m-{sid}"]


async def test_a_failed_flush_leaves_each_journal_to_its_own_fdatasync(
    backend: FileBackend, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed ``syncfs`` does not say which file lost data: each journal's fdatasync
    does (each descriptor sees its own file's error). Only the journal whose fdatasync
    fails is refused, and from then on every batch is fdatasynced per journal."""
    good, bad = await open_sessions(backend, 2)
    bad_fd = backend.store._journals[bad].fd
    inside, go = hold_flushes(monkeypatch, calls)
    warm = append(backend, good, "held")  # so both appends below meet the failing flush
    assert await asyncio.to_thread(inside.wait, 30)

    def failing_syncfs(fd: int) -> None:
        with calls.lock:
            calls.flushes += 1
        raise OSError(errno.EIO, "injected")

    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        with calls.lock:
            calls.fdatasyncs.append(fd)
        if fd == bad_fd:
            raise OSError(errno.EIO, "injected")
        real(fd)

    ok, doomed = append(backend, good, "ok"), append(backend, bad, "doomed")
    await asyncio.sleep(0.2)
    monkeypatch.setattr(syscalls, "fdatasync", fdatasync)
    monkeypatch.setattr(syscalls, "syncfs", failing_syncfs)
    go.set()
    await warm
    assert (await ok).seq == 4  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match="fsync"):
        await doomed
    assert bad_fd in calls.fdatasyncs
    flushes = calls.flushes
    monkeypatch.setattr(syscalls, "fdatasync", os.fdatasync)
    again = await append(backend, good, "after")
    assert again.seq == 5  # type: ignore[attr-defined]
    assert calls.flushes == flushes, "flushed the filesystem again after a failed flush"


def test_a_slow_flush_sends_the_syncer_back_to_fdatasync_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``syncfs`` writes everything dirty on the filesystem: behind another process's
    gigabytes it would hold every append. A flush slower than the floor (and than the
    fdatasyncs it replaces) makes ``usable`` false for a while."""
    monkeypatch.setattr(syscalls, "syncfs", lambda fd: threading.Event().wait(0.3))
    monkeypatch.setattr(fsflush, "FIRST_BACKOFF", 0.5)
    monkeypatch.setattr(fsflush, "DIRTY_LIMIT", 1 << 62)
    f = fsflush.FsFlush(str(tmp_path))
    try:
        assert f.usable()
        assert f.flush(4)  # slow, but it did flush
        assert not f.usable()
        wait_until(f.usable, timeout=30, what="the flush tried again after its back-off")
    finally:
        f.close()


def test_no_flush_where_syncfs_would_not_report_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Linux 5.8 ``syncfs`` returned 0 after a failed writeback: acknowledging on
    it could lose an append the client was told is saved."""
    real = os.uname()
    old = os.uname_result(
        (real.sysname, real.nodename, "5.4.0-42-generic", real.version, real.machine)
    )
    monkeypatch.setattr(os, "uname", lambda: old)
    assert syscalls._find_syncfs() is None


@pytest.fixture
def other_fs() -> Callable[[], str]:
    """A folder on another filesystem than the temp dir (tmpfs), or skip."""
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    made: list[tempfile.TemporaryDirectory[str]] = []

    def make() -> str:
        d = tempfile.TemporaryDirectory(dir=shm)
        made.append(d)
        return d.name

    yield make  # type: ignore[misc]
    for d in made:
        d.cleanup()


async def test_journals_on_another_filesystem_get_their_own_fdatasync(
    tmp_path: Path, calls: Calls, other_fs: Callable[[], str]
) -> None:
    """A day folder linked to another filesystem: flushing ours would not cover it."""
    sessions = tmp_path / "data" / "sessions"
    sessions.mkdir(parents=True)
    today = datetime.now(UTC)
    for day in (today, today + timedelta(days=1)):  # in case the test runs over midnight
        (sessions / day.strftime("%Y-%m-%d")).symlink_to(other_fs())
    b = FileBackend(tmp_path / "data", threads=4)
    try:
        (sid,) = await open_sessions(b, 1)
        fd = b.store._journals[sid].fd
        calls.fdatasyncs.clear()
        assert (await append(b, sid, "x")).seq == 3  # type: ignore[attr-defined]
        assert fd in calls.fdatasyncs
    finally:
        await b.close()


def test_no_flush_while_the_machine_holds_much_dirty_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 3 GB ``dd`` beside 32 writers held one filesystem flush for 590 ms: with more
    dirty pages than ``DIRTY_LIMIT`` waiting, each journal gets its own fdatasync."""
    monkeypatch.setattr(syscalls, "syncfs", lambda fd: None)
    monkeypatch.setattr(fsflush, "DIRTY_LIMIT", 1 << 62)
    f = fsflush.FsFlush(str(tmp_path))
    try:
        assert f.usable()
        monkeypatch.setattr(fsflush, "DIRTY_LIMIT", -1)  # "more than the limit", always
        assert not f.usable()
    finally:
        f.close()


def test_dirty_bytes_come_from_meminfo() -> None:
    info = b"MemTotal: 100 kB\nDirty:        1620 kB\nWriteback:      4 kB\nOther: 1 kB\n"
    assert fsflush._kib(info, b"\nDirty:") == 1620
    assert fsflush._kib(info, b"\nWriteback:") == 4
    assert fsflush._kib(info, b"\nMissing:") == 0


async def test_a_backend_opened_amid_dirty_data_flushes_once_it_is_written(
    tmp_path: Path, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the syncer decided at construction whether to flush the filesystem
    at all, with the dirty-data check included: a server started right after a large
    import never flushed together for its whole life."""
    monkeypatch.setattr(fsflush, "DIRTY_LIMIT", -1)  # much dirty data while it opens
    b = FileBackend(tmp_path / "data", threads=4)
    try:
        monkeypatch.setattr(fsflush, "DIRTY_LIMIT", 1 << 62)  # written out since
        sids = await open_sessions(b, 2)
        calls.flushes = 0
        await asyncio.gather(*(append(b, sid, f"x-{sid}") for sid in sids))
        assert calls.flushes >= 1
    finally:
        await b.close()
