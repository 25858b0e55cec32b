"""``PostgresBackend``: the ``Backend`` over one PostgreSQL database shared by instances.

Writes go through ``writes.py`` (one round trip per batch, row-locked, gap-free), live
events through ``live.py`` (LISTEN as a wake-up, the table as the truth), the list
through ``listing.py``. Opening is lazy, so ``eventlog.connect`` stays synchronous: the
pool, the migration check and the LISTEN connection start on first use.
"""

from __future__ import annotations

import asyncio
import builtins
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from ... import formats
from ...backend import RequestWrites
from ...errors import InvalidRequest, SessionNotFound
from ...events import (
    Event,
    SessionStarted,
    SessionStartedData,
    decoder,
    encoder,
    new_event_id,
    now_iso,
)
from ...fold import fold
from ...model import Session, summarize
from ...notify import Hub, Lifecycle, Notice
from ...requests import (
    ExportRequest,
    ListRequest,
    LoadRequest,
    StartRequest,
    check,
    check_session_id,
)
from ...results import ImportOutcome, ListResult, LoadResult
from . import importer, listing, schema
from .db import Database, redact
from .hints import Hints
from .live import Live
from .writes import Committed, Writes

_session = msgspec.json.Decoder(Session)
# events past a session's snapshot before compaction folds them in (the partial index
# sessions_to_compact, migration 2, has the same number)
_COMPACT_AFTER = 200


class PostgresBackend(RequestWrites):
    """``Backend`` over PostgreSQL (``postgresql://…``)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 40,
        poll_interval: float = 1.0,
        cache_sessions: int = 512,
        migrate: bool = True,
        read_url: str | None = None,
    ) -> None:
        """``read_url``: a read replica for the list and search (they tolerate a little
        lag); everything else, including subscriptions' reads, uses ``url``."""
        self.url = url
        self.instance = secrets.token_hex(4)  # tells our own hints from other instances'
        self.db = Database(url, max_size=pool_size)
        self.reads = Database(read_url, max_size=pool_size) if read_url else self.db
        self.hub = Hub()
        self.hints = Hints(self.db, self.instance)
        self.writes = Writes(self.db, self._committed, cache_sessions)
        self.live = Live(
            self.db, self.instance, self.hub, self.writes.forget, self.writes.behind, poll_interval
        )
        self._migrate = migrate
        self._opened: asyncio.Task[None] | None = None

    # -- lifetime ----------------------------------------------------------------------

    async def open(self) -> PostgresBackend:
        """Connect, check (and by default apply) migrations, start listening."""
        if self._opened is None:
            self._opened = asyncio.get_running_loop().create_task(self._open())
        try:
            await asyncio.shield(self._opened)
        except BaseException:
            self._opened = None  # the next call tries again (the database may be back)
            raise
        return self

    async def _open(self) -> None:
        async with self.db.conn(f"opening {redact(self.url)}") as c:
            if self._migrate:
                await schema.migrate(c)
            else:
                found = await schema.current_version(c)
                if found > schema.LATEST:
                    raise schema.SchemaTooNew(found, schema.LATEST)
                if found < schema.LATEST:
                    raise InvalidRequest(
                        f"the database's sessionlog schema is version {found}, this program "
                        f"needs {schema.LATEST}: run `sessionlog migrate --database URL`"
                    )
        self.live.start()

    async def _ready(self) -> None:
        if self._opened is None or not self._opened.done() or self._opened.exception():
            await self.open()

    async def close(self) -> None:
        await self.hints.flush()
        await self.live.close()
        await self.writes.group.close()
        await self.db.close()
        if self.reads is not self.db:
            await self.reads.close()

    # -- writes ------------------------------------------------------------------------

    def _committed(self, c: Committed) -> None:
        self.hints.events(c.session_id, c.events[-1].seq)
        self.live.committed(c)

    async def start(self, req: StartRequest) -> Session:
        req = check(req)
        await self._ready()
        ts = now_iso()
        for _ in range(100):
            sid = secrets.token_hex(6)
            first = SessionStarted(
                seq=1,
                id=new_event_id(),
                ts=ts,
                data=SessionStartedData(req.user_name, req.metadata, req.title),
            )
            session = fold(sid, [first])
            row = summarize(session)
            async with self.db.conn("starting a session") as c:
                ok = await c.fetchval(
                    "SELECT sessionlog_start($1, $2, $3, $4, $5, $6, $7)",
                    sid,
                    first.id,
                    encoder.encode(first).decode(),
                    ts,
                    row.type,
                    encoder.encode(row).decode(),
                    req.title,
                )
            if ok:
                self.hints.started(sid)
                self.live.committed(Committed(sid, [first], row))
                return session
        raise InvalidRequest("could not find a free session id after 100 tries")

    async def _write(self, req: Any) -> Any:
        req = check(req)
        await self._ready()
        return await self.writes.submit(req)

    async def delete(self, session_id: str) -> None:
        check_session_id(session_id)
        await self._ready()
        async with self.db.conn("deleting a session") as c:
            ok = await c.fetchval("SELECT sessionlog_delete($1)", session_id)
        self.writes.forget(session_id)
        if not ok:
            raise SessionNotFound(session_id)
        self.hints.deleted(session_id)
        self.hub.emit(Lifecycle("session.deleted", session_id, None))

    # -- reads -------------------------------------------------------------------------

    async def _session(self, session_id: str) -> Session:
        """Snapshot plus the events after it, folded (one round trip)."""

        async def read(c: Any) -> list[Any]:
            return await c.fetch(  # type: ignore[no-any-return]
                "SELECT 0 AS k, seq, body FROM snapshots WHERE session_id = $1 UNION ALL "
                "SELECT 1, seq, body FROM events WHERE session_id = $1 AND seq > coalesce("
                "(SELECT seq FROM snapshots WHERE session_id = $1), 0) ORDER BY 1, 2",
                session_id,
            )

        rows = await self.db.read("loading a session", read)
        if not rows:
            raise SessionNotFound(session_id)
        base = _session.decode(rows[0][2]) if rows[0][0] == 0 else None
        return fold(session_id, (decoder.decode(r[2]) for r in rows if r[0] == 1), base)

    async def load(self, req: LoadRequest) -> LoadResult:
        req = check(req)
        await self._ready()
        session = await self._session(req.session_id)
        return LoadResult.window(session, req.message_limit, req.message_before)

    async def list(self, req: ListRequest) -> ListResult:
        req = check(req)
        await self._ready()
        return await self.reads.read("listing sessions", lambda c: listing.query(c, req))

    async def events(self, session_id: str, after_seq: int) -> builtins.list[Event]:
        await self._ready()
        events = await self.db.events_after("reading events", session_id, after_seq)
        if not events and not await self._exists(session_id):
            raise SessionNotFound(session_id)
        return events

    async def _exists(self, session_id: str) -> bool:
        return await self.db.head("checking a session", session_id) is not None

    async def watch(self, session_id: str) -> int:
        await self._ready()
        return await self.live.watch(session_id)

    async def unwatch(self, session_id: str) -> None:
        await self.live.unwatch(session_id)

    def subscribe(self, listener: Callable[[Notice], None]) -> Callable[[], None]:
        return self.hub.add(listener)

    # -- export / import ---------------------------------------------------------------

    async def export(self, req: ExportRequest) -> AsyncIterator[bytes]:
        req = check(req)
        await self._ready()
        if req.all:
            rows = await self.db.read(
                "listing sessions to export",
                lambda c: c.fetch(
                    "SELECT session_id FROM sessions ORDER BY started_at, session_id"
                ),
            )
            ids = [r[0] for r in rows]
        else:
            ids = formats.named(req)
            for sid in ids:
                if not await self._exists(sid):
                    raise SessionNotFound(sid)
        return self._chunks(ids, req.format)

    async def _chunks(self, ids: builtins.list[str], fmt: str) -> AsyncIterator[bytes]:
        for sid in ids:
            try:
                events = await self.events(sid, 0)
            except SessionNotFound:
                continue  # deleted while a long export ran
            chunk = formats.chunk_of(sid, fmt, events)
            if chunk:
                yield chunk

    async def import_events(self, data: bytes) -> builtins.list[str]:
        """Import an ``events`` export in one transaction: all of it, or (if any session
        exists) nothing."""
        sessions = formats.parse_events(data)
        await self._ready()
        async with self.db.conn("importing") as c, c.transaction():
            folded = await importer.insert(c, sessions)
        self._announce(folded, [])
        return builtins.list(sessions)

    async def import_sessions(
        self, sessions: builtins.list[tuple[str, builtins.list[Event]]], replace: bool = False
    ) -> ImportOutcome:
        """Write whole sessions in one transaction; an existing one is skipped, or with
        ``replace`` deleted and rewritten in that same transaction."""
        await self._ready()
        out = ImportOutcome()
        if not sessions:
            return out
        async with self.db.conn("importing") as c, c.transaction():
            found = {
                r[0]
                for r in await c.fetch(
                    "SELECT session_id FROM sessions WHERE session_id = ANY($1)",
                    [sid for sid, _ in sessions],
                )
            }
            todo = {sid: evs for sid, evs in sessions if replace or sid not in found}
            out.skipped = [sid for sid, _ in sessions if sid in found and not replace]
            out.replaced = [sid for sid in todo if sid in found]
            for sid in out.replaced:
                await c.execute("SELECT sessionlog_delete($1)", sid)
            folded = await importer.insert(c, todo) if todo else {}
        out.imported = list(todo)  # every session written, replaced ones too (as on files)
        self._announce(folded, out.replaced)
        return out

    def _announce(self, written: dict[str, Session], replaced: builtins.list[str]) -> None:
        """Imported sessions: here to listeners, to other instances by hint."""
        for sid in replaced:
            self.writes.forget(sid)
            self.hints.deleted(sid)
        for s in written.values():
            self.hints.started(s.session_id)
            self.hub.emit(Lifecycle("session.started", s.session_id, summarize(s)))

    # -- maintenance -------------------------------------------------------------------

    async def compact(self) -> int:
        """Fold sessions with many events past their snapshot into a new snapshot, and
        roll the list's counter deltas into its totals. Returns sessions compacted."""
        await self._ready()
        async with self.db.conn("compacting") as c:
            await c.execute("SELECT sessionlog_rollup()")
            ids = [
                r[0]
                for r in await c.fetch(
                    f"SELECT session_id FROM sessions WHERE head - snap_seq >= {_COMPACT_AFTER} "
                    "LIMIT 1000"
                )
            ]
        for sid in ids:
            try:
                s = await self._session(sid)
            except SessionNotFound:
                continue
            async with self.db.conn("writing a snapshot") as c, c.transaction():
                await c.execute(
                    "INSERT INTO snapshots VALUES ($1, $2, $3) ON CONFLICT (session_id) DO "
                    "UPDATE SET seq = EXCLUDED.seq, body = EXCLUDED.body "
                    "WHERE snapshots.seq < EXCLUDED.seq",
                    sid,
                    s.seq,
                    encoder.encode(s).decode(),
                )
                await c.execute(
                    "UPDATE sessions SET snap_seq = $2 WHERE session_id = $1 AND snap_seq < $2",
                    sid,
                    s.seq,
                )
        return len(ids)

    async def health(self) -> dict[str, Any]:
        await self._ready()
        total = await self.db.read(
            "counting sessions",
            lambda c: c.fetchval(
                "SELECT coalesce(sum(n), 0) FROM (SELECT n FROM totals UNION ALL "
                "SELECT n FROM counter_deltas) t"
            ),
        )
        return {
            "backend": "postgres",
            "database": redact(self.url),
            "sessions": int(total),
            "schema_version": schema.LATEST,
            "instance": self.instance,
            "listen_reconnects": self.live.reconnects,
            "fsync": "commit",  # acknowledged after COMMIT (synchronous_commit decides)
        }
