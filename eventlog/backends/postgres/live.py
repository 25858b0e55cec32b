"""Live events across instances: one LISTEN connection per instance, as a wake-up only.

The table is the truth. A watched session's cursor (``published``) re-reads
``seq > published`` whenever a hint says there may be more, on a slow poll, and after
the LISTEN connection is re-established, so a lost or merged NOTIFY costs latency,
never an event. Every delivery goes through ``_deliver``, which drops what was already
published and fetches any gap first: subscribers see each seq once, in order.

Hints (``pg_notify('sessionlog', …)``, sent after commit by ``hints.py``, several per
payload, one per line):
``E <instance> <session> <head>`` events, ``S <instance> <session>`` started,
``D <instance> <session>`` deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from ...errors import SessionNotFound
from ...events import Event, MessageDelta
from ...model import Summary
from ...notify import Hub, Lifecycle, Published
from .db import _GONE, Database, redact
from .hints import CHANNEL, SEPARATOR
from .writes import Committed

LISTENER = "sessionlog-listen"  # application_name of the LISTEN connection

log = logging.getLogger("sessionlog.postgres")
_summary = msgspec.json.Decoder(Summary)


class _Watch:
    __slots__ = ("again", "count", "known", "published", "pumping")

    def __init__(self) -> None:
        self.count = 0
        self.known = False  # is ``published`` the subscribers' real position yet?
        self.published = 0
        self.pumping = False
        self.again = False


class Live:
    """Publishes this instance's commits at once and other instances' on their hints."""

    def __init__(
        self,
        db: Database,
        instance: str,
        hub: Hub,
        forget: Callable[[str], None],
        behind: Callable[[str], None],
        poll_interval: float = 1.0,
    ) -> None:
        self._db = db
        self._instance = instance
        self._hub = hub
        self._forget = forget
        self._behind = behind
        self.poll_interval = poll_interval
        self._watched: dict[str, _Watch] = {}
        self._rows: dict[str, str] = {}  # sessions whose list row to fetch -> lifecycle type
        self._rows_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self.reconnects = 0  # LISTEN connections re-established (for health and tests)
        self.listening = asyncio.Event()

    # -- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        tasks = [t for t in (self._runner, self._rows_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._conn is not None:
            with contextlib.suppress(*_GONE, asyncpg.PostgresError):
                await self._conn.close(timeout=2)

    async def _run(self) -> None:
        """Hold the LISTEN connection; on loss, reconnect and re-read every cursor."""
        backoff = 0.02
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self._db.url, timeout=10, server_settings={"application_name": LISTENER}
                )
            except (*_GONE, asyncpg.PostgresError) as e:
                log.warning("LISTEN connection to %s failed: %s", redact(self._db.url), e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self._conn = conn
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._on_hint)
            except (*_GONE, asyncpg.PostgresError):
                continue
            backoff = 0.02
            if self.listening.is_set():
                self.reconnects += 1
            self.listening.set()
            for sid in list(self._watched):  # hints sent while we were away are lost
                self._pump(sid)
            while not lost.is_set() and not conn.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.poll_interval)
                if not lost.is_set():
                    self._spawn(self._poll())
            log.warning("LISTEN connection lost; reconnecting")
            with contextlib.suppress(*_GONE, asyncpg.PostgresError):
                await conn.close(timeout=1)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self) -> None:
        """The slow path: a hint can be lost (e.g. sent while reconnecting)."""
        if not self._watched:
            return
        try:
            rows = await self._db.read(
                "polling watched sessions",
                lambda c: c.fetch(
                    "SELECT session_id, head FROM sessions WHERE session_id = ANY($1)",
                    list(self._watched),
                ),
            )
        except Exception as e:
            log.warning("poll failed: %s", e)
            return
        for sid, head in rows:
            w = self._watched.get(sid)
            if w is not None and w.known and head > w.published:
                self._pump(sid)

    # -- hints -------------------------------------------------------------------------

    def _on_hint(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for hint in payload.split(SEPARATOR):  # hints.py packs several per payload
            self._hint(hint)

    def _hint(self, hint: str) -> None:
        parts = hint.split(" ")
        if len(parts) < 3:
            return
        kind, instance, sid = parts[0], parts[1], parts[2]
        mine = instance == self._instance
        if kind == "E" and len(parts) == 4 and parts[3].isdigit():
            w = self._watched.get(sid)
            if w is not None and w.known and int(parts[3]) > w.published:
                self._pump(sid)
            if not mine:
                self._behind(sid)  # our cached write state is behind now
                self._want_row(sid, "session.updated")
        elif kind == "S" and not mine:
            self._want_row(sid, "session.started")
        elif kind == "D" and not mine:
            self._forget(sid)
            self._hub.emit(Lifecycle("session.deleted", sid, None))

    def _want_row(self, sid: str, kind: str) -> None:
        """Fetch list rows for lifecycle notices in one query per loop turn."""
        if not self._hub.listening():
            return
        if self._rows.get(sid) != "session.started":
            self._rows[sid] = kind
        if self._rows_task is None:
            self._rows_task = asyncio.get_running_loop().create_task(self._fetch_rows())

    async def _fetch_rows(self) -> None:
        await asyncio.sleep(0)
        wanted, self._rows = self._rows, {}
        self._rows_task = None
        try:
            rows = await self._db.read(
                "reading list rows",
                lambda c: c.fetch(
                    "SELECT session_id, summary FROM sessions WHERE session_id = ANY($1)",
                    list(wanted),
                ),
            )
        except Exception as e:
            log.warning("list rows for live updates could not be read: %s", e)
            return
        for sid, body in rows:
            self._hub.emit(Lifecycle(wanted[sid], sid, _summary.decode(body)))  # type: ignore[arg-type]

    # -- publication -------------------------------------------------------------------

    def committed(self, c: Committed) -> None:
        """This instance committed ``c``: publish it now (no round trip)."""
        self._deliver(c.session_id, c.events)
        # a token stream changes no list row worth a notice per delta (as on files)
        if self._hub.listening() and not all(isinstance(e, MessageDelta) for e in c.events):
            kind = "session.started" if c.events[0].seq == 1 else "session.updated"
            self._hub.emit(Lifecycle(kind, c.session_id, c.summary))  # type: ignore[arg-type]

    def _deliver(self, sid: str, events: list[Event]) -> None:
        w = self._watched.get(sid)
        if w is None or not w.known:
            # nobody follows it across instances (yet): our own commits, in commit order
            self._hub.emit(Published(sid, events))
            if w is not None and events:
                w.published = max(w.published, events[-1].seq)
            return
        fresh = [e for e in events if e.seq > w.published]
        if not fresh:
            return
        if fresh[0].seq != w.published + 1:
            self._pump(sid)  # a gap (another instance's events): read it from the table
            return
        self._hub.emit(Published(sid, fresh))
        w.published = fresh[-1].seq

    def _pump(self, sid: str) -> None:
        w = self._watched.get(sid)
        if w is None:
            return
        if w.pumping:
            w.again = True
            return
        w.pumping = True
        self._spawn(self._catch_up(sid, w))

    async def _catch_up(self, sid: str, w: _Watch) -> None:
        try:
            while True:
                w.again = False
                try:
                    events = await self._db.events_after("reading new events", sid, w.published)
                except Exception as e:
                    log.warning("catching up %s failed (retried on the next hint/poll): %s", sid, e)
                    return
                if events and self._watched.get(sid) is w:
                    self._deliver(sid, events)
                if not w.again:
                    return
        finally:
            w.pumping = False

    # -- watches -----------------------------------------------------------------------

    async def watch(self, sid: str) -> int:
        """Follow ``sid``'s events from every instance; returns its head."""
        w = self._watched.get(sid)
        if w is None:
            w = self._watched[sid] = _Watch()
        w.count += 1
        try:
            head = await self._db.head("reading a session's head", sid)
        except BaseException:
            self._unwatch(sid)
            raise
        if head is None:
            self._unwatch(sid)
            raise SessionNotFound(sid)
        if not w.known:
            w.known = True
            w.published = max(w.published, head)
        elif head > w.published:
            self._pump(sid)
        return head

    def _unwatch(self, sid: str) -> None:
        w = self._watched.get(sid)
        if w is not None:
            w.count -= 1
            if w.count <= 0:
                del self._watched[sid]

    async def unwatch(self, sid: str) -> None:
        self._unwatch(sid)
