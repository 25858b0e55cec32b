"""Durability for appends written on an event loop: fsyncs in a few threads, in batches.

An append written on the loop (``Journal.try_write``) awaits ``LoopSyncer.durable``.
Each journal has at most one fsync queued or running on its behalf; appends written
meanwhile wait for the next one (group commit). A thread takes its share of the
journals queued so far, fsyncs each (``Journal.make_durable``) and hands the share to
the loop, which publishes what became durable and answers the writers; shares that
finish while a wake-up of the loop is pending go with it. One session's burst costs one
hand-off, and many sessions' fsyncs run side by side, as the disk allows.

Where the whole filesystem can be flushed at once (``FsFlush``), one more thread takes
every journal queued and flushes them all with one ``syncfs`` (group commit across
sessions); the others then only fdatasync what it passes on: journals on another
filesystem, and everything while flushes are slow or after one failed.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable

from ...errors import StorageError
from .fsflush import FsFlush
from .journal import Journal

Done = list[tuple[Journal, Exception | None]]


def _take(
    todo: queue.SimpleQueue[Journal | None], more: Callable[[int], int]
) -> list[Journal] | None:
    """The next journal (waiting for one) and up to ``more(queued)`` of those queued
    behind it; None: stop."""
    first = todo.get()
    if first is None:
        return None
    batch = [first]
    for _ in range(more(todo.qsize())):
        try:
            nxt = todo.get_nowait()
        except queue.Empty:
            break
        if nxt is None:  # closing: let the other threads see it too
            todo.put(None)
            break
        batch.append(nxt)
    return batch


class _Waiting:
    """One journal's appends waiting for its next fsync (touched on the loop only)."""

    __slots__ = ("queued", "waiters")

    def __init__(self) -> None:
        self.queued = False  # an fsync for this journal is queued or running
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []


class LoopSyncer:
    """fsyncs journals for one event loop; ``close`` stops its threads."""

    def __init__(self, flush: FsFlush | None = None, threads: int = 16) -> None:
        if flush is not None and not flush.available():
            flush.close()
            flush = None
        self._flush = flush
        self._waiting: dict[Journal, _Waiting] = {}
        # SimpleQueue: a put from the loop costs well under a microsecond (a Condition's
        # notify costs tens); None tells a thread to stop
        self._todo: queue.SimpleQueue[Journal | None] = queue.SimpleQueue()
        # what the flushing thread passes on to the fdatasync threads
        self._each = self._todo if self._flush is None else queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        # fsyncs that finished since the loop was last woken for them: threads that
        # finish meanwhile add theirs to the wake-up already on its way (one self-pipe
        # write and one loop wake-up for many journals)
        self._finished: Done = []
        self._finished_lock = threading.Lock()
        self._wake_pending = False
        self._workers = [
            threading.Thread(target=self._work, name=f"eventlog-fsync-{i}", daemon=True)
            for i in range(threads)
        ]
        self._leader: threading.Thread | None = None
        if self._flush is not None:
            self._leader = threading.Thread(target=self._lead, name="eventlog-fsync-all")
            self._leader.daemon = True
            self._leader.start()
        for t in self._workers:
            t.start()

    async def durable(self, journal: Journal, end: int) -> None:
        """Return once ``journal`` is on disk (and published) up to byte ``end``; raise
        the journal's StorageError if the fsync that should cover it fails."""
        if journal.durable_offset >= end:
            return  # an fsync that began after the write covered it (and published it)
        loop = asyncio.get_running_loop()
        self._loop = loop
        waiting = self._waiting.get(journal)
        if waiting is None:
            waiting = self._waiting[journal] = _Waiting()
        fut = loop.create_future()
        waiting.waiters.append((end, fut))
        if not waiting.queued:
            self._queue(journal, waiting)
        await fut

    def _queue(self, journal: Journal, waiting: _Waiting) -> None:
        waiting.queued = True
        self._todo.put(journal)

    def _work(self) -> None:
        """fdatasync journals one by one, a share of those queued at a time (so idle
        threads fsync other journals meanwhile: the disk runs them in parallel)."""
        while True:
            batch = _take(self._each, lambda queued: queued // len(self._workers))
            if batch is None:
                return
            self._hand_over(self._fdatasync_each(batch))

    def _lead(self) -> None:
        """Flush every journal queued with one ``syncfs``; pass the rest on."""
        flush = self._flush
        assert flush is not None
        while True:
            batch = _take(self._todo, lambda queued: queued)
            if batch is None:
                return
            if flush.usable():
                mine = [j for j in batch if j.dev == flush.dev]
                if mine:
                    self._hand_over(self._flush_together(flush, mine))
                    batch = [j for j in batch if j.dev != flush.dev]
            for journal in batch:
                self._each.put(journal)

    def _flush_together(self, flush: FsFlush, journals: list[Journal]) -> Done:
        done: Done = []
        targets: list[tuple[Journal, int]] = []
        for journal in journals:
            try:
                targets.append((journal, journal.flush_target()))
            except StorageError as e:  # its earlier fsync failed: the journal is poisoned
                done.append((journal, e))
        if flush.flush(len(targets)):
            for journal, target in targets:
                journal.flushed(target)
                done.append((journal, None))
            return done
        return done + self._fdatasync_each([j for j, _ in targets])

    def _fdatasync_each(self, journals: list[Journal]) -> Done:
        """fdatasync each journal on its own (each sees its own file's errors)."""
        done: Done = []
        for journal in journals:
            t0 = time.monotonic()
            try:
                # everything written so far; published by _synced on the loop, so
                # this thread needs the GIL once more per batch, for the hand-off
                journal.make_durable(journal.written_offset)
                done.append((journal, None))
            except Exception as e:  # a StorageError: the journal is poisoned
                done.append((journal, e))
            if self._flush is not None:
                self._flush.note_fdatasync(time.monotonic() - t0)
        return done

    def _hand_over(self, done: Done) -> None:
        loop = self._loop
        if not done or loop is None or loop.is_closed():
            return
        with self._finished_lock:
            self._finished += done
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._take_finished)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            with self._finished_lock:
                self._wake_pending = False

    def _take_finished(self) -> None:
        with self._finished_lock:
            done, self._finished = self._finished, []
            self._wake_pending = False
        self._synced(done)

    def _synced(self, done: Done) -> None:
        for journal, err in done:
            journal.publish_durable()  # subscribers hear of it before its writer's ack
            waiting = self._waiting.get(journal)
            if waiting is None:
                continue
            waiting.queued = False
            durable = journal.durable_offset
            later = []
            for end, fut in waiting.waiters:
                if fut.done():  # its request was cancelled (the client went away)
                    continue
                if end <= durable:
                    fut.set_result(None)
                elif err is not None:  # a failed fsync: nothing past ``durable`` is acked
                    fut.set_exception(err)
                else:
                    later.append((end, fut))  # written while that fsync ran: the next one
            waiting.waiters = later
            if later:
                self._queue(journal, waiting)
            else:
                del self._waiting[journal]

    def close(self) -> None:
        """Finish the fsyncs already queued, then stop the threads (blocks)."""
        if self._leader is not None:
            self._todo.put(None)  # the leader first: it may still pass journals on
            self._leader.join()
        for _ in self._workers:
            self._each.put(None)
        for t in self._workers:
            t.join()
        if self._flush is not None:
            self._flush.close()
