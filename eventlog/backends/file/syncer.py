"""Durability for appends written on an event loop: fsyncs in a few threads, in batches.

An append written on the loop (``Journal.try_write``) awaits ``LoopSyncer.durable``.
Each journal has at most one fsync queued or running on its behalf; appends written
meanwhile wait for the next one (group commit). A thread takes its share of the
journals queued so far, fsyncs each (``Journal.make_durable``) and hands the share to
the loop, which publishes what became durable and answers the writers; shares that
finish while a wake-up of the loop is pending go with it. One session's burst costs one
hand-off, and many sessions' fsyncs run side by side, as the disk allows.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from .journal import Journal


class _Waiting:
    """One journal's appends waiting for its next fsync (touched on the loop only)."""

    __slots__ = ("queued", "waiters")

    def __init__(self) -> None:
        self.queued = False  # an fsync for this journal is queued or running
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []


class LoopSyncer:
    """fsyncs journals for one event loop; ``close`` stops its threads."""

    def __init__(self, threads: int = 16) -> None:
        self._waiting: dict[Journal, _Waiting] = {}
        # SimpleQueue: a put from the loop costs well under a microsecond (a Condition's
        # notify costs tens); None tells a thread to stop
        self._todo: queue.SimpleQueue[Journal | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        # fsyncs that finished since the loop was last woken for them: threads that
        # finish meanwhile add theirs to the wake-up already on its way (one self-pipe
        # write and one loop wake-up for many journals)
        self._finished: list[tuple[Journal, Exception | None]] = []
        self._finished_lock = threading.Lock()
        self._wake_pending = False
        self._threads = [
            threading.Thread(target=self._work, name=f"eventlog-fsync-{i}", daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
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
        while True:
            first = self._todo.get()
            if first is None:
                return
            # a share of what is queued, so idle threads fsync other journals at the
            # same time (the disk runs fsyncs of different files in parallel)
            batch = [first]
            for _ in range(self._todo.qsize() // len(self._threads)):
                try:
                    more = self._todo.get_nowait()
                except queue.Empty:
                    break
                if more is None:  # closing: let the others see it too
                    self._todo.put(None)
                    break
                batch.append(more)
            loop = self._loop
            done: list[tuple[Journal, Exception | None]] = []
            for journal in batch:
                try:
                    # everything written so far; published by _synced on the loop, so
                    # this thread needs the GIL once more per batch, for the hand-off
                    journal.make_durable(journal.written_offset)
                    done.append((journal, None))
                except Exception as e:  # a StorageError: the journal is poisoned
                    done.append((journal, e))
            if loop is None or loop.is_closed():
                continue
            with self._finished_lock:
                self._finished += done
                if self._wake_pending:
                    continue
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

    def _synced(self, done: list[tuple[Journal, Exception | None]]) -> None:
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
        for _ in self._threads:
            self._todo.put(None)
        for t in self._threads:
            t.join()
