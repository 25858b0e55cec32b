"""Every backend the shared suites run against, each from a fresh temp dir and, for
PostgreSQL, a fresh database (``tests/pg.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from eventlog.backend import Backend
from eventlog.backends.file.backend import FileBackend
from eventlog.backends.postgres.backend import PostgresBackend
from tests import pg
from tests.served import ServedRemote

BACKENDS: dict[str, Callable[[Path, str], Backend]] = {
    "file": lambda root, _url: FileBackend(root, threads=16),
    "postgres": lambda _root, url: PostgresBackend(url, pool_size=8, poll_interval=0.2),
    # a real server on a free port over ``root``, used over HTTP + WebSocket
    "remote": lambda root, _url: ServedRemote(root),
}


@contextlib.asynccontextmanager
async def database(name: str) -> AsyncIterator[str]:
    if name != "postgres":
        yield ""
        return
    url = await pg.create_database()
    try:
        yield url
    finally:
        await pg.drop_database(url)


@contextlib.asynccontextmanager
async def open_backend(name: str, root: Path) -> AsyncIterator[Backend]:
    """A fresh backend of kind ``name``, closed (and its database dropped) on exit."""
    async with database(name) as url:
        b = BACKENDS[name](root, url)
        try:
            yield b
        finally:
            await b.close()
