"""The storage interface the server talks to, and its file-backed implementation.

``Backend`` is deliberately small and async so that a second implementation (several
servers sharing Redis Streams) can slot in without touching ``server/``; the
conformance suite (tests/test_backend_conformance.py) runs against every backend.

``FileBackend`` runs the synchronous ``Store`` on a thread pool, except the hot path:
a write to an open, uncontended journal is built and written on the event loop (a few
microseconds of CPU, and no thread hop for the GIL to convoy on), and only its fsync
waits in a thread, one per journal at a time, shared by everything written meanwhile.
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
from typing import Any, Protocol, TypeVar

from .events import Event
from .index import ListResult
from .journal import FsyncPolicy, Journal
from .model import Session
from .notify import Notice
from .ops import Result, SaveResult, WriteRequest, builder
from .requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    RecordErrorRequest,
    SaveRequest,
    StartRequest,
    UpdateRequest,
    check,
)
from .store import LoadResult, Store

T = TypeVar("T")


class Backend(Protocol):
    """What the server needs from storage. Listeners are called on the event loop."""

    async def start(self, req: StartRequest) -> Session: ...
    async def append(self, req: AppendRequest) -> Result: ...
    async def delta(self, req: DeltaRequest) -> Result: ...
    async def complete(self, req: CompleteRequest) -> Result: ...
    async def edit(self, req: EditRequest) -> Result: ...
    async def update(self, req: UpdateRequest) -> Result: ...
    async def record_error(self, req: RecordErrorRequest) -> Result: ...
    async def save(self, req: SaveRequest) -> SaveResult: ...
    async def load(self, req: LoadRequest) -> LoadResult: ...
    async def list(self, req: ListRequest) -> ListResult: ...
    async def delete(self, session_id: str) -> None: ...
    async def events(self, session_id: str, after_seq: int) -> builtins.list[Event]: ...
    async def watch(self, session_id: str) -> int:
        """Start delivering this session's events (incl. other writers'); returns head seq."""
        ...

    async def unwatch(self, session_id: str) -> None: ...
    async def export(self, req: ExportRequest) -> AsyncIterator[bytes]:
        """Validates (raising not_found etc.) before returning the chunk stream."""
        ...

    async def import_events(self, data: bytes) -> builtins.list[str]: ...
    async def compact(self) -> int: ...
    async def health(self) -> dict[str, Any]: ...
    def subscribe(self, listener: Callable[[Notice], None]) -> Callable[[], None]: ...
    async def close(self) -> None: ...


class _Waiting:
    """Appends written on the loop, waiting for a journal's next fsync."""

    __slots__ = ("running", "waiters")

    def __init__(self) -> None:
        self.running = False
        self.waiters: builtins.list[tuple[int, asyncio.Future[None]]] = []


class FileBackend:
    """``Backend`` over a ``Store`` in a data directory."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "always",
        threads: int = 64,
        store: Store | None = None,
    ) -> None:
        self.store = store or Store(root, fsync=fsync, reconcile="background")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="eventlog")
        self._syncing: dict[Journal, _Waiting] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    async def start(self, req: StartRequest) -> Session:
        return await self._run(self.store.start, req)

    async def append(self, req: AppendRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def delta(self, req: DeltaRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def complete(self, req: CompleteRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def edit(self, req: EditRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def update(self, req: UpdateRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def record_error(self, req: RecordErrorRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def save(self, req: SaveRequest) -> SaveResult:
        return await self._write(req)  # type: ignore[no-any-return]

    async def _write(self, req: WriteRequest) -> Any:
        """Build and write on the loop when the journal is open and free (microseconds,
        no thread hop), then await the fsync, which one pool thread per journal runs for
        every append written meanwhile; otherwise the whole write runs in the pool."""
        req = check(req)
        tried = self.store.try_write(req.session_id, builder(req))
        if tried is None:
            return await self._run(self.store.write, req)
        journal, call = tried
        if call.end:
            await self._durable(journal, call.end)
        return call.outcome()

    async def _durable(self, journal: Journal, end: int) -> None:
        """Wait until ``journal`` is durable (and published) up to ``end``."""
        if self.store.fsync != "always":
            journal.commit(end)  # publishes at once; no fsync to wait for
            return
        if journal.durable_offset >= end:
            return  # an fsync that started after the write covered it, and published it
        waiting = self._syncing.get(journal)
        if waiting is None:
            waiting = self._syncing[journal] = _Waiting()
        fut = asyncio.get_running_loop().create_future()
        waiting.waiters.append((end, fut))
        if not waiting.running:
            self._sync(journal, waiting)
        await fut

    def _sync(self, journal: Journal, waiting: _Waiting) -> None:
        # ``sync`` fsyncs everything written so far (group commit with any other
        # writers of the journal) and publishes it before this future completes, so
        # listeners hear an event no later than its writer's acknowledgement.
        waiting.running = True
        done = asyncio.get_running_loop().run_in_executor(self._pool, journal.sync)
        done.add_done_callback(partial(self._synced, journal, waiting))

    def _synced(self, journal: Journal, waiting: _Waiting, done: asyncio.Future[None]) -> None:
        waiting.running = False
        err = done.exception() if not done.cancelled() else asyncio.CancelledError()
        durable = journal.durable_offset
        later: builtins.list[tuple[int, asyncio.Future[None]]] = []
        for end, fut in waiting.waiters:
            if fut.done():  # its request was cancelled (the client went away)
                continue
            if end <= durable:
                fut.set_result(None)
            elif err is not None:  # a failed fsync: nothing after ``durable`` is acked
                fut.set_exception(err)
            else:
                later.append((end, fut))  # written while that fsync ran: the next one
        waiting.waiters = later
        if later:
            self._sync(journal, waiting)
        else:
            del self._syncing[journal]

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

    async def compact(self) -> int:
        return await self._run(self.store.compact)

    async def health(self) -> dict[str, Any]:
        return await self._run(self.store.health)

    def subscribe(self, listener: Callable[[Notice], None]) -> Callable[[], None]:
        """``listener`` runs on the event loop of the caller, in publication order.

        Notices from the store's threads queue up and are handed over in one loop
        wake-up per batch (an append yields two notices; under load, many more).
        """
        loop = asyncio.get_running_loop()
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
            if not loop.is_closed():
                loop.call_soon_threadsafe(drain)

        return self.store.subscribe(hop)

    async def close(self) -> None:
        await self._run(self.store.close)
        self._pool.shutdown(wait=True)
