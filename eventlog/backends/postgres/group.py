"""Group commit across sessions: the writes that sessions have ready in one loop turn go
to the database in one ``sessionlog_write_batch`` call, one transaction, one WAL flush.

Each session still has at most one write in flight (``writes.py`` drains a session's
queue one batch at a time), so the writes in flight never share a session, and within
a call they are sorted by session_id: two instances lock rows in the same order and
cannot deadlock. A call that fails fails every write in it alike, and the transaction
is atomic, so each writer's own recovery (``Writes._commit``) sees the same outcome.
"""

from __future__ import annotations

import asyncio

import msgspec

from .db import Database

MAX_IN_FLIGHT = 4  # calls at once: enough to overlap round trips, few enough to batch


class Doc(msgspec.Struct, frozen=True):
    """A search doc: a complete message's text (weight D) or the title (A, no position)."""

    doc_id: str
    text: str
    weight: str
    position: int | None


class Count(msgspec.Struct, frozen=True):
    """A change to the list's totals under (archived, type)."""

    archived: bool
    type: str
    n: int
    messages: int


class Row(msgspec.Struct, frozen=True):
    """One event row: its id, the message it appends (if any), the journal line."""

    id: str
    mid: str | None
    body: str


class SessionWrite(msgspec.Struct, frozen=True):
    """What one session's commit writes, built on the session's head ``base``."""

    sid: str
    base: int
    events: list[Row]
    last_updated: str
    type: str
    tags: list[str]
    pinned: bool
    archived: bool
    messages: int
    summary: str
    docs: list[Doc]
    counts: list[Count]


_encode = msgspec.json.Encoder().encode


class GroupCommit:
    """Collects ``SessionWrite``s and sends them in as few calls as there is room for."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[tuple[SessionWrite, asyncio.Future[int]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0  # batches sent (tests check that writes share them)

    async def write(self, w: SessionWrite) -> int:
        """Commit ``w`` with whatever else is ready; returns the head found (see the SQL)."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((w, fut))
        self._kick()
        return await fut

    def _kick(self) -> None:
        if self._queue and not self._scheduled and self._in_flight < MAX_IN_FLIGHT:
            self._scheduled = True
            # after this turn's other writers have queued theirs
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if not self._queue or self._in_flight >= MAX_IN_FLIGHT:
            return
        batch, self._queue = self._queue, []
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[SessionWrite, asyncio.Future[int]]]) -> None:
        batch.sort(key=lambda b: b[0].sid)
        try:
            # a connection kept between calls, beside the pool (at most MAX_IN_FLIGHT)
            async with self._db.kept("appending") as c:
                found = await c.fetchval(
                    "SELECT sessionlog_write_batch($1::jsonb)",
                    _encode([w for w, _ in batch]).decode(),
                )
            self.calls += 1
        except BaseException as e:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            if not isinstance(e, Exception):
                raise
        else:
            for (_, fut), head in zip(batch, found, strict=True):
                if not fut.done():
                    fut.set_result(int(head))
        finally:
            self._in_flight -= 1
            self._kick()

    async def close(self) -> None:
        """Wait for the calls in flight (before the database closes their connections)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
