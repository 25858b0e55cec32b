"""``FileBackend``: the ``Backend`` over a ``Store`` in a data directory.

It runs the synchronous ``Store`` on a thread pool, except the hot path:
a write to an open, uncontended journal is built and written on the event loop (a few
microseconds of CPU, and no thread hop for the GIL to convoy on), and only its fsync
waits in a thread (``syncer.py``), shared by everything written meanwhile.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from ...backend import RequestWrites
from ...events import Event
from ...model import Session
from ...notify import Notice
from ...ops import Build, WriteRequest, builder
from ...requests import (
    ExportRequest,
    ListRequest,
    LoadRequest,
    StartRequest,
    check,
)
from ...results import ImportOutcome, ListResult, LoadResult
from .durability import FsyncPolicy
from .fsflush import FsFlush
from .journal import Call, Journal
from .priority import demote_this_thread
from .store import Store
from .syncer import LoopSyncer

T = TypeVar("T")


class FileBackend(RequestWrites):
    """``Backend`` over a ``Store`` in a data directory."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "always",
        threads: int = 64,
        store: Store | None = None,
        cache_bytes: int = 64 << 20,
    ) -> None:
        self.store = store or Store(
            root, fsync=fsync, reconcile="background", cache_bytes=cache_bytes
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="eventlog")
        # compaction rewrites snapshots: seconds of work that must not preempt requests
        self._compactor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="eventlog-compact", initializer=demote_this_thread
        )
        self._syncer = LoopSyncer(FsFlush(self.store.layout.sessions))
        self._batches: dict[str, builtins.list[tuple[Build, asyncio.Future[Any]]]] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    async def start(self, req: StartRequest) -> Session:
        return await self._run(self.store.start, req)

    async def _write(self, req: WriteRequest) -> Any:
        """Build and write on the loop when the journal is open and free (microseconds,
        no thread hop), then await the fsync that ``LoopSyncer`` runs for everything
        written meanwhile; otherwise the whole write runs in the pool.

        Writes to one session that arrive in the same loop iteration go out together
        (``_flush``): one flock, stat and write for all of them."""
        req = check(req)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Journal, Call] | None] = loop.create_future()
        batch = self._batches.get(req.session_id)
        if batch is None:
            batch = self._batches[req.session_id] = []
            loop.call_soon(self._flush, req.session_id)
        batch.append((builder(req), fut))
        try:
            tried = await fut
        except asyncio.CancelledError:  # the client went away, maybe after the write
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                done = fut.result()
                if done is not None:
                    self.store.release(done[0])
            raise
        if tried is None:
            return await self._run(self.store.write, req)
        journal, call = tried
        try:
            if call.end:
                if self.store.fsync == "always":
                    await self._syncer.durable(journal, call.end)
                else:
                    journal.commit(call.end)  # no fsync to wait for: publishes at once
        finally:
            self.store.release(journal)  # the lease try_write took for this call
        return call.outcome()

    def _flush(self, session_id: str) -> None:
        batch = [(b, f) for b, f in self._batches.pop(session_id) if not f.done()]
        try:
            tried = self.store.try_write(session_id, [b for b, _ in batch])
        except Exception as e:  # e.g. invalid session id: each caller gets the error
            for _, f in batch:
                f.set_exception(e)
            return
        for i, (_, f) in enumerate(batch):
            f.set_result(None if tried is None else (tried[0], tried[1][i]))

    async def load(self, req: LoadRequest) -> LoadResult:
        return await self._run(self.store.load, req)

    async def list(self, req: ListRequest) -> ListResult:
        return await self._run(self.store.list, req)

    async def delete(self, session_id: str) -> None:
        await self._run(self.store.delete, session_id)

    async def events(self, session_id: str, after_seq: int) -> builtins.list[Event]:
        return await self._run(self.store.events, session_id, after_seq)

    async def watch(self, session_id: str) -> int:
        return await self._run(self.store.watch, session_id)

    async def unwatch(self, session_id: str) -> None:
        await self._run(self.store.unwatch, session_id)

    async def refresh(self, session_id: str) -> None:
        """A journal changed on disk (the server's file watcher calls this)."""
        if self.store.unchanged(session_id):
            return  # our own append: skip the thread hop and the journal lock
        await self._run(self.store.external_change, session_id)

    async def export(self, req: ExportRequest) -> AsyncIterator[bytes]:
        it = await self._run(self.store.export, req)  # raises before any byte is sent
        return self._chunks(it)

    async def _chunks(self, it: Iterator[bytes]) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._run(next, it, None)
            if chunk is None:
                return
            yield chunk

    async def import_events(self, data: bytes) -> builtins.list[str]:
        return await self._run(self.store.import_events, data)

    async def import_sessions(
        self, sessions: builtins.list[tuple[str, builtins.list[Event]]], replace: bool = False
    ) -> ImportOutcome:
        return await self._run(self.store.import_sessions, sessions, replace)

    async def compact(self) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._compactor, self.store.compact)

    async def health(self) -> dict[str, Any]:
        return await self._run(self.store.health)

    def subscribe(self, listener: Callable[[Notice], None]) -> Callable[[], None]:
        """``listener`` runs on the event loop of the caller, in publication order.

        Notices from the store's threads queue up and are handed over in one loop
        wake-up per batch (an append yields two notices; under load, many more).
        """
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        pending: deque[Notice] = deque()
        lock = threading.Lock()
        scheduled = False

        def drain() -> None:
            nonlocal scheduled
            with lock:
                batch = list(pending)
                pending.clear()
                scheduled = False
            for notice in batch:
                listener(notice)

        def hop(notice: Notice) -> None:
            nonlocal scheduled
            with lock:  # the queue keeps publication order; one wake-up drains it all
                pending.append(notice)
                if scheduled:
                    return
                scheduled = True
            if threading.get_ident() == loop_thread:
                loop.call_soon(drain)  # published on the loop (syncer.py): no wake-up
            elif not loop.is_closed():
                loop.call_soon_threadsafe(drain)

        return self.store.subscribe(hop)

    async def close(self) -> None:
        await self._run(self._syncer.close)
        await self._run(self.store.close)
        self._pool.shutdown(wait=True)
        self._compactor.shutdown(wait=True)
