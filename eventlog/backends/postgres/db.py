"""The connection pool, and the one place database failures become engine errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from ...errors import EventLogError, StorageError, Unavailable
from ...events import Event, decoder

T = TypeVar("T")

# What "the database is not there right now" looks like from asyncpg: the server went
# away (connection errors, admin shutdown, terminated backend), refused us, or timed out.
_GONE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
)


def connection_lost(e: BaseException) -> bool:
    """Did this fail because the connection went away (so the outcome may be unknown)?"""
    cause = e.__cause__ if isinstance(e, Unavailable) else e
    return isinstance(cause, _GONE)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{tail}"


def unavailable(e: BaseException, doing: str) -> Unavailable:
    err = Unavailable(
        f"the database is unavailable while {doing} ({type(e).__name__}: {e}); nothing was "
        "acknowledged: retry when it is back (a retry with the same id is never written twice)"
    )
    err.__cause__ = e
    return err


@contextlib.contextmanager
def translated(doing: str) -> Any:
    """Raise database failures as ``Unavailable``; the engine's own errors pass through."""
    try:
        yield
    except EventLogError:
        raise
    except asyncpg.DataError as e:  # an InterfaceError, but a bug of ours, not an outage
        raise _refused(e, doing) from e
    except _GONE as e:
        raise unavailable(e, doing) from e
    except asyncpg.PostgresError as e:
        raise _refused(e, doing) from e


def _refused(e: BaseException, doing: str) -> StorageError:
    """The database answered but refused: not an outage, and not the client's fault."""
    return StorageError(
        f"the database refused the request while {doing} ({type(e).__name__}: {e}); "
        "nothing was acknowledged"
    )


async def _keep_session(c: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip per use): pooled connections
    never change session state (no LISTEN, SET or session-level advisory lock; the
    migration's lock is released in the same ``conn`` block)."""
    if c.is_in_transaction():  # a task cancelled mid-transaction: never hand that on
        await c.execute("ROLLBACK")


class Database:
    """An asyncpg pool opened on first use (so ``eventlog.connect`` can stay sync)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 40) -> None:
        self.url = url
        self._min, self._max = min_size, max_size
        self.pool: asyncpg.Pool | None = None
        # idle connections of ``kept``: outside the pool, for a hot path's own use
        self._kept: list[asyncpg.Connection] = []

    def _settings(self) -> dict[str, Any]:
        return {
            "command_timeout": 60,
            "server_settings": {
                "application_name": "sessionlog",
                # JIT compiles a search's plan for 30-50 ms when the planner expects
                # many rows (bench_postgres.py): never worth it here
                "jit": "off",
            },
        }

    async def open(self) -> asyncpg.Pool:
        if self.pool is None:
            try:
                self.pool = await asyncpg.create_pool(
                    self.url,
                    min_size=self._min,
                    max_size=self._max,
                    max_inactive_connection_lifetime=60,
                    reset=_keep_session,
                    **self._settings(),
                )
            except (*_GONE, asyncpg.PostgresError) as e:
                raise unavailable(e, f"connecting to {redact(self.url)}") from e
        return self.pool

    async def _acquire(self, doing: str) -> asyncpg.Connection:
        pool = self.pool or await self.open()
        try:
            # any failure to get a connection (refused, "does not allow connections",
            # too many clients, auth going away mid-failover) means: not available now
            return await pool.acquire(timeout=30)
        except EventLogError:
            raise
        except (*_GONE, asyncpg.PostgresError) as e:
            raise unavailable(e, doing) from e

    async def _release(self, c: asyncpg.Connection) -> None:
        if self.pool is not None:
            with contextlib.suppress(*_GONE, asyncpg.PostgresError):
                await self.pool.release(c)

    @contextlib.asynccontextmanager
    async def _using(self, doing: str) -> AsyncIterator[None]:
        """Database errors as ``translated`` words them; a lost connection also expires
        the others (``_lost``)."""
        try:
            with translated(doing):
                yield
        except Unavailable as e:
            if connection_lost(e):
                await self._lost()
            raise

    @contextlib.asynccontextmanager
    async def conn(self, doing: str) -> AsyncIterator[asyncpg.Connection]:
        c = await self._acquire(doing)
        try:
            async with self._using(doing):
                yield c
        finally:
            await self._release(c)

    async def _lost(self) -> None:
        """A connection died: a restart or failover ended the idle ones too. The pool
        opens new ones on its next acquires, and ``kept`` too, instead of handing out
        dead ones."""
        while self._kept:
            self._kept.pop().terminate()
        if self.pool is not None:
            await self.pool.expire_connections()

    @contextlib.asynccontextmanager
    async def kept(self, doing: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection that a hot path keeps between uses, outside the pool (a pooled
        connection's acquire, release and proxy cost more CPU than the statement): an
        idle kept one, or a new one. After a clean use it is kept; after a failure it is
        closed (it may be dead, or mid-transaction)."""
        c = self._kept.pop() if self._kept else None
        if c is None or c.is_closed():
            try:
                c = await asyncpg.connect(self.url, timeout=30, **self._settings())
            except (*_GONE, asyncpg.PostgresError) as e:
                raise unavailable(e, doing) from e
        clean = False
        try:
            async with self._using(doing):
                yield c
            clean = True
        finally:
            if clean and not c.is_closed() and not c.is_in_transaction():
                self._kept.append(c)
            else:
                c.terminate()

    async def read(self, doing: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run an idempotent read; once more on a fresh connection if the first was dead
        (a pooled connection whose server process was terminated fails on first use)."""
        for attempt in (1, 2):
            try:
                async with self.conn(doing) as c:
                    return await fn(c)
            except Unavailable as e:
                if attempt == 2 or not connection_lost(e):
                    raise
        raise AssertionError("unreachable")

    async def head(self, doing: str, session_id: str) -> int | None:
        """A session's last seq, or None if there is no such session."""
        head = await self.read(
            doing,
            lambda c: c.fetchval("SELECT head FROM sessions WHERE session_id = $1", session_id),
        )
        return None if head is None else int(head)

    async def events_after(self, doing: str, session_id: str, after: int) -> list[Event]:
        """A session's events with ``seq > after``, in order (the table is the truth)."""
        rows = await self.read(
            doing,
            lambda c: c.fetch(
                "SELECT body FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq",
                session_id,
                after,
            ),
        )
        return [decoder.decode(r[0]) for r in rows]

    async def close(self) -> None:
        """Close the kept connections and the pool (calls in flight should be done)."""
        while self._kept:
            c = self._kept.pop()
            with contextlib.suppress(*_GONE, asyncpg.PostgresError):
                await c.close(timeout=5)
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()
