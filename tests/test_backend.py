"""FileBackend's event-loop write path: writes on the loop, fsyncs in a thread.

An append to an open journal is built and written on the event loop and only its fsync
waits in a pool thread, shared by every append written meanwhile. These tests pin what
that path must never give up: no acknowledgement before the fsync, one fsync for many
appends, a failed fsync acknowledges nothing, and another process holding the journal
makes the loop step aside (to a thread) rather than wait for it.
"""

from __future__ import annotations

import asyncio
import errno
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import eventlog.backends.file.syscalls as syscalls
from eventlog.backends.file.backend import FileBackend
from eventlog.errors import StorageError
from eventlog.ops import build_append
from eventlog.requests import AppendRequest, LoadRequest, StartRequest


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[FileBackend]:
    b = FileBackend(tmp_path / "data", threads=8)
    yield b
    await b.close()


async def open_session(b: FileBackend) -> str:
    """A session whose journal is open (its first append opens it, in a thread)."""
    sid = (await b.start(StartRequest())).session_id
    await b.append(AppendRequest(session_id=sid, role="user", content="first"))
    assert b.store.is_open(sid)
    return sid


def wrap_fdatasync(monkeypatch: pytest.MonkeyPatch, around: Callable[[int], None]) -> None:
    """Also turns off the filesystem-wide flush (``syncfs``, tests/test_fsflush.py), so
    every journal gets its own fdatasync: the path without it, and after one fails."""
    monkeypatch.setattr(syscalls, "syncfs", None)
    monkeypatch.setattr(syscalls, "fdatasync", around)


async def test_an_append_is_not_acknowledged_before_its_fsync_returns(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression guard: the loop writes the line itself, so nothing but the awaited
    fsync stands between the write and the acknowledgement."""
    sid = await open_session(backend)
    gate = threading.Event()
    real = syscalls.fdatasync

    def held(fd: int) -> None:
        gate.wait(10)
        real(fd)

    wrap_fdatasync(monkeypatch, held)
    task = asyncio.create_task(
        backend.append(AppendRequest(session_id=sid, role="user", content="wait"))
    )
    await asyncio.sleep(0.3)
    assert not task.done(), "acknowledged while its fsync was still running"
    gate.set()
    assert (await task).seq == 3


async def test_concurrent_appends_on_the_loop_share_fsyncs_and_stay_gap_free(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = await open_session(backend)
    calls = 0
    real = syscalls.fdatasync

    def counted(fd: int) -> None:
        nonlocal calls
        calls += 1
        real(fd)

    wrap_fdatasync(monkeypatch, counted)
    results = await asyncio.gather(
        *(
            backend.append(AppendRequest(session_id=sid, role="user", content=f"m{i}"))
            for i in range(200)
        )
    )
    assert sorted(r.seq for r in results) == list(range(3, 203))
    assert calls <= 10, f"{calls} fsyncs for 200 concurrent appends: no group commit"
    loaded = (await backend.load(LoadRequest(session_id=sid))).session
    assert sorted(m.content for m in loaded.messages[1:]) == sorted(f"m{i}" for i in range(200))


async def test_a_failed_fsync_acknowledges_none_of_the_appends_waiting_on_it(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = await open_session(backend)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "injected")

    wrap_fdatasync(monkeypatch, failing)
    outcomes = await asyncio.gather(
        *(
            backend.append(
                AppendRequest(session_id=sid, role="user", content=f"m{i}", message_id=f"m{i}")
            )
            for i in range(20)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(o, StorageError) for o in outcomes), outcomes
    monkeypatch.undo()
    # the disk is back: a retry of each is written once (or found, durable now)
    retried = [
        await backend.append(
            AppendRequest(session_id=sid, role="user", content=f"m{i}", message_id=f"m{i}")
        )
        for i in range(20)
    ]
    assert sorted(r.seq for r in retried) == list(range(3, 23))


HOLD_FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


async def test_the_loop_steps_aside_while_another_process_holds_the_journal(
    backend: FileBackend,
) -> None:
    """The loop never waits for another process's flock (it could be stopped, or slow):
    the append moves to a thread, which waits, and completes once the lock is free."""
    sid = await open_session(backend)
    path = backend.store.path_of(sid)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FLOCK, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        req = AppendRequest(session_id=sid, role="user", content="later")
        assert backend.store.try_write(sid, [build_append(req)]) is None
        task = asyncio.create_task(backend.append(req))
        ticks = 0
        for _ in range(10):  # the loop stays free while the append waits in its thread
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 10 and not task.done()
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
    assert (await task).seq == 3
