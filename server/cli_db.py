"""The command line's commands on a PostgreSQL database (``--database URL`` or
``$SESSIONLOG_DATABASE_URL``): the same commands as on a data directory, over the
postgres backend, plus ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from eventlog.backends.postgres.backend import PostgresBackend
from eventlog.events import Event

from .progress import counter, progress


def _run(
    args: argparse.Namespace, body: Callable[[PostgresBackend], Coroutine[Any, Any, int]]
) -> int:
    async def main() -> int:
        b = PostgresBackend(args.database, pool_size=4)
        try:
            return await body(b)
        finally:
            await b.close()

    return asyncio.run(main())


def migrate(args: argparse.Namespace) -> int:
    from eventlog.backends.postgres import schema
    from eventlog.backends.postgres.db import Database, redact

    async def main() -> int:
        db = Database(args.database, max_size=1)
        try:
            async with db.conn("migrating") as c:
                before = await schema.current_version(c)
                applied = await schema.migrate(c)
        finally:
            await db.close()
        what = f"applied {', '.join(map(str, applied))}" if applied else "nothing to do"
        print(
            f"{redact(args.database)}: schema version {before} -> {schema.LATEST} ({what})",
            file=sys.stderr,
        )
        return 0

    return asyncio.run(main())


def compact(args: argparse.Namespace) -> int:
    async def body(b: PostgresBackend) -> int:
        t, n = time.monotonic(), 0
        while (k := await b.compact()) > 0:
            n += k
        print(f"compacted {n} session(s) in {time.monotonic() - t:.2f} s", file=sys.stderr)
        return 0

    return _run(args, body)


def verify(args: argparse.Namespace) -> int:
    from eventlog.backends.postgres.maintenance import verify as check

    async def body(b: PostgresBackend) -> int:
        with progress("verifying", None) as bar:
            n, problems = await check(b, counter(bar))
        for p in problems:
            print(f"{p.session_id}: {p.what}")
        print(f"checked {n} session(s): {len(problems)} problem(s)", file=sys.stderr)
        return 1 if problems else 0

    return _run(args, body)


def reindex(args: argparse.Namespace) -> int:
    from eventlog.backends.postgres.maintenance import reindex as rebuild

    async def body(b: PostgresBackend) -> int:
        t = time.monotonic()
        with progress("indexing", None) as bar:
            n = await rebuild(b, counter(bar))
        print(f"indexed {n} session(s) in {time.monotonic() - t:.2f} s", file=sys.stderr)
        return 0

    return _run(args, body)


def export(args: argparse.Namespace, req: Any, out: Any) -> int:
    async def body(b: PostgresBackend) -> int:
        async for chunk in await b.export(req):
            out.write(chunk)
        return 0

    return _run(args, body)


def tail(
    args: argparse.Namespace,
    start: Callable[[list[Event]], None],
    emit: Callable[[Event], None],
) -> int:
    """Show a session's history (``start``), then ``emit`` new events from every
    instance until ^C."""
    from eventlog.notify import Published

    async def body(b: PostgresBackend) -> int:
        q: asyncio.Queue[Published] = asyncio.Queue()
        b.subscribe(lambda n: q.put_nowait(n) if isinstance(n, Published) else None)
        head = await b.watch(args.session_id)
        history = await b.events(args.session_id, 0)
        start(history)
        last = max(head, history[-1].seq if history else 0)
        while True:
            n = await q.get()
            if n.session_id != args.session_id:
                continue
            for ev in n.events:
                if ev.seq > last:
                    emit(ev)
                    last = ev.seq

    try:
        return _run(args, body)
    except KeyboardInterrupt:
        return 0
