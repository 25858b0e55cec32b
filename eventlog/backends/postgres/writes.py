"""The write path: requests to one session are batched, decided by ``ops`` against a
cached ``SessionState``, and committed with other sessions' batches by one
``sessionlog_write_batch`` call (one round trip; ``group.py``).

The cache is optimistic: it is exact only while this instance is the session's only
writer. ``sessionlog_write`` takes the session's row lock and writes only if the head is
still the seq the batch was built on; otherwise another instance wrote first, and the
batch is rebuilt on the caught-up state. Under that lock the seq is gap-free whatever
the number of instances, and dedup (event id, message_id) sees every committed event.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

from ...errors import (
    EventLogError,
    InvalidRequest,
    SequenceConflict,
    SessionNotFound,
    Unavailable,
)
from ...events import (
    Event,
    MessageAppended,
    MessageCompleted,
    MessageEdited,
    SessionStarted,
    SessionUpdated,
    encoder,
)
from ...model import Summary, session_type, summarize
from ...ops import WriteRequest, builder
from ...state import SessionState
from .db import Database, connection_lost
from .group import Count, Doc, GroupCommit, Row, SessionWrite

# How many times a batch is rebuilt when other instances keep writing first.
_MAX_TRIES = 50
# How many times a write whose connection died is checked and tried again.
_MAX_LOST = 2


class Committed(msgspec.Struct, frozen=True):
    """What one commit wrote, for publication."""

    session_id: str
    events: list[Event]
    summary: Summary


def docs_of(state: SessionState, events: list[Event]) -> list[Doc]:
    """The search docs that ``events`` change: a message's text once it is complete
    (appended whole, completed or edited), and the title."""
    docs: dict[str, Doc] = {}
    for ev in events:
        match ev:
            case MessageAppended(data=d) | MessageCompleted(data=d) | MessageEdited(data=d):
                m = state.folder.message(d.message_id)
                if m is not None and m.status == "complete":
                    pos = state.folder.index_of(d.message_id)
                    docs[d.message_id] = Doc(d.message_id, m.content, "D", pos)
            case SessionStarted(data=d) if d.title:
                docs[""] = Doc("", d.title, "A", None)
            case SessionUpdated(data=d) if d.title is not None:
                docs[""] = Doc("", d.title, "A", None)
    return list(docs.values())


def _counted(state: SessionState) -> tuple[bool, str, int]:
    """What the list's totals count a session under: (archived, type, messages)."""
    s = state.folder.view()
    return s.archived, session_type(s.metadata), s.stats.total_messages


class Writes:
    """Per-session batching over a bounded cache of session states."""

    def __init__(
        self,
        db: Database,
        on_commit: Callable[[Committed], None],
        cache_sessions: int = 512,
    ) -> None:
        self._db = db
        self.group = GroupCommit(db)
        self._on_commit = on_commit
        self._cache: OrderedDict[str, SessionState] = OrderedDict()
        self._cache_max = cache_sessions
        self._pending: dict[str, list[tuple[WriteRequest, asyncio.Future[Any]]]] = {}
        self._drains: set[asyncio.Task[None]] = set()  # held: the loop keeps weak refs
        self._behind: set[str] = set()

    def forget(self, session_id: str) -> None:
        """Drop a cached state (deleted, or possibly out of step with the table)."""
        self._cache.pop(session_id, None)
        self._behind.discard(session_id)

    def behind(self, session_id: str) -> None:
        """Another instance wrote to this session: catch the cache up before building
        (a read of the new events only), rather than fail a write and reread it all."""
        if session_id in self._cache:
            self._behind.add(session_id)

    async def submit(self, req: WriteRequest) -> Any:
        """Queue a validated write; resolves once committed (or raises its refusal)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue = self._pending.get(req.session_id)
        if queue is None:
            queue = self._pending[req.session_id] = []
            task = asyncio.get_running_loop().create_task(self._drain(req.session_id))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        queue.append((req, fut))
        return await fut

    async def _drain(self, session_id: str) -> None:
        """Commit everything queued for one session, a batch at a time, until empty.
        One drain per session at a time: that is what orders this instance's writes."""
        try:
            while True:
                await asyncio.sleep(0)  # let requests that arrive together join the batch
                batch = [(r, f) for r, f in self._pending[session_id] if not f.done()]
                self._pending[session_id] = []
                if not batch:
                    return
                try:
                    outcomes = await self._commit(session_id, [r for r, _ in batch])
                except BaseException as e:
                    self.forget(session_id)
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(e)
                    if not isinstance(e, Exception):
                        raise
                    continue
                for (_, f), out in zip(batch, outcomes, strict=True):
                    if f.done():
                        continue
                    if isinstance(out, BaseException):
                        f.set_exception(out)
                    else:
                        f.set_result(out)
        finally:
            if not self._pending.get(session_id):
                self._pending.pop(session_id, None)

    async def _state(self, session_id: str) -> SessionState:
        state = self._cache.get(session_id)
        if state is not None:
            self._cache.move_to_end(session_id)
            if session_id in self._behind:
                self._behind.discard(session_id)
                state.apply_state(
                    await self._db.events_after("catching up a session", session_id, state.last_seq)
                )
            return state
        state = SessionState(session_id)
        events = await self._db.events_after("reading a session to write to it", session_id, 0)
        if not events:
            raise SessionNotFound(session_id)
        state.apply_state(events)
        self._cache[session_id] = state
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)
        return state

    async def _commit(self, session_id: str, reqs: list[WriteRequest]) -> list[Any]:
        lost = 0
        for _ in range(_MAX_TRIES):
            state = await self._state(session_id)
            base = state.last_seq
            before = _counted(state)
            outcomes: list[Any] = []
            events: list[Event] = []
            for req in reqs:
                try:
                    evs, result = builder(req)(state)
                except EventLogError as e:
                    outcomes.append(e)
                    continue
                state.apply_state(evs)  # the next request in the batch builds on these
                events.extend(evs)
                outcomes.append(result)
            if not events:
                # Duplicates are answered from committed state; a refusal may come from a
                # stale cache (another instance wrote), so confirm the head first.
                refused = any(
                    isinstance(o, (SequenceConflict, InvalidRequest, SessionNotFound))
                    for o in outcomes
                )
                if refused:
                    head = await self._db.head("reading a session's head", session_id)
                    if head is None:
                        self.forget(session_id)
                        raise SessionNotFound(session_id)
                    if head != base:
                        self.forget(session_id)
                        continue
                return outcomes
            try:
                found = await self._write(session_id, base, state, events, before)
            except Unavailable as e:
                if not connection_lost(e) or lost >= _MAX_LOST:
                    raise
                # The connection died with the commit's outcome unknown. The transaction
                # either committed whole or not at all: our first event id in the table
                # says which (ids are random and unique), so nothing is written twice.
                lost += 1
                self.forget(session_id)
                fresh = await self._state(session_id)
                if events[0].id in fresh.event_ids and fresh.event_ids[events[0].id] == base + 1:
                    self._on_commit(Committed(session_id, events, summarize(fresh.folder.view())))
                    return outcomes
                continue
            if found == base:
                return outcomes
            self.forget(session_id)  # it holds our unwritten events: rebuild from the table
            if found < 0:
                raise SessionNotFound(session_id)
        raise SequenceConflict(session_id, base, base)  # pragma: no cover - livelock guard

    async def _write(
        self,
        session_id: str,
        base: int,
        state: SessionState,
        events: list[Event],
        before: tuple[bool, str, int],
    ) -> int:
        after = summarize(state.folder.view())
        counts: list[Count] = []
        archived, kind, messages = before
        if (archived, kind) != (after.archived, after.type):
            counts = [
                Count(archived, kind, -1, -messages),
                Count(after.archived, after.type, 1, after.message_count),
            ]
        elif messages != after.message_count:
            counts = [Count(after.archived, after.type, 0, after.message_count - messages)]
        found = await self.group.write(
            SessionWrite(
                sid=session_id,
                base=base,
                events=[
                    Row(
                        e.id,
                        e.data.message_id if isinstance(e, MessageAppended) else None,
                        encoder.encode(e).decode(),
                    )
                    for e in events
                ],
                last_updated=after.last_updated,
                type=after.type,
                tags=[t.casefold() for t in after.tags],  # filtered without case
                pinned=after.pinned,
                archived=after.archived,
                messages=after.message_count,
                summary=encoder.encode(after).decode(),
                docs=docs_of(state, events),
                counts=counts,
            )
        )
        if found == base:
            self._on_commit(Committed(session_id, events, after))
        return found
