"""Background threads (index flush, compactor, file watcher) must not preempt request
handling: on Linux they run as ``SCHED_BATCH``. On a busy server each journal write used
to wake the file watcher's thread, which then took the CPU from the event loop (a context
switch per append: about a quarter of the WebSocket append rate on one core)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest

from eventlog.backends.file.priority import demote_this_thread, demote_threads_named
from eventlog.backends.file.store import Store

from .browser_helpers import wait_until
from .served import ThreadedServer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's"
)


def policy(tid: int) -> int:
    return os.sched_getscheduler(tid)


def threads_named(prefix: str) -> set[int]:
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().startswith(prefix):
                    found.add(int(tid))
        except OSError:
            continue
    return found


def test_a_demoted_thread_runs_as_batch_and_the_caller_is_left_alone() -> None:
    seen: list[int] = []

    def work() -> None:
        demote_this_thread()
        seen.append(policy(0))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [os.SCHED_BATCH]
    assert policy(0) == os.SCHED_OTHER


def test_demoting_by_name_finds_only_matching_threads() -> None:
    assert demote_threads_named("no-thread-is-called-this") == 0
    assert policy(0) == os.SCHED_OTHER


def test_the_store_background_thread_is_batch(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        ids = {t.name: t.native_id for t in threading.enumerate()}
        tid = ids["eventlog"]
        assert tid is not None
        wait_until(lambda: policy(tid) == os.SCHED_BATCH, timeout=30, what="a batch thread")
    finally:
        store.close()


async def test_the_fsync_threads_are_not_demoted() -> None:
    """They are on every acknowledgement's path: as batch threads they waited behind any
    other busy process on the machine (one client's append p50 1.7 -> 8-11 ms)."""
    from eventlog.backends.file.syncer import LoopSyncer

    syncer = LoopSyncer(threads=2)
    try:
        tids = [t.native_id for t in threading.enumerate() if t.name.startswith("eventlog-fsync")]
        assert tids
        assert all(policy(t) == os.SCHED_OTHER for t in tids if t)
    finally:
        await asyncio.to_thread(syncer.close)


def test_the_servers_file_watcher_thread_is_batch(tmp_path: Path) -> None:
    before = threads_named("notify-rs")
    server = ThreadedServer(tmp_path)
    try:
        wait_until(lambda: threads_named("notify-rs") - before, timeout=30, what="the watcher")
        new = threads_named("notify-rs") - before
        wait_until(
            lambda: all(
                policy(t) == os.SCHED_BATCH for t in new if t in threads_named("notify-rs")
            ),
            timeout=30,
            what="the watcher's thread demoted",
        )
        assert policy(0) == os.SCHED_OTHER  # the test's own thread is untouched
    finally:
        server.stop()
