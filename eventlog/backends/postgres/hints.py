"""Wake-ups for other instances, sent after commit and batched.

A NOTIFY inside the writing transaction would hold PostgreSQL's database-wide notify
lock through that commit's WAL flush, serialising every writer (measured: 32 writers
fell to about a tenth of plain INSERT+COMMIT). So a write commits without one, and its
hint is queued here; all hints queued while one NOTIFY is in flight go out together in
the next, packed into payloads under the 8000-byte limit. A hint lost to a crash between
the commit and its NOTIFY costs other instances one poll interval, never an event: the
table is the truth (``live.py``). The first hint of a batch waits ``WINDOW`` for others.
"""

from __future__ import annotations

import asyncio
import logging

from .db import Database

log = logging.getLogger("sessionlog.postgres")
CHANNEL = "sessionlog"
PAYLOAD_BYTES = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
# How long the first hint of a batch waits for company: a NOTIFY costs a round trip
# (as much CPU as the write itself on a small machine); 5 ms is a tenth of the 50 ms
# in which another instance's subscribers should see a write.
WINDOW = 0.005
SEPARATOR = "\n"


def pack(hints: list[str]) -> list[str]:
    """Hints joined by newlines into as few payloads as fit under ``PAYLOAD_BYTES``."""
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for h in hints:
        n = len(h.encode()) + 1
        if cur and size + n > PAYLOAD_BYTES:
            out.append(SEPARATOR.join(cur))
            cur, size = [], 0
        cur.append(h)
        size += n
    if cur:
        out.append(SEPARATOR.join(cur))
    return out


class Hints:
    """The queue of hints this instance owes the others, and its one sender task."""

    def __init__(self, db: Database, instance: str) -> None:
        self._db = db
        self._instance = instance
        self._queue: dict[str, str] = {}  # key -> hint (a session's newer head replaces)
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # NOTIFY statements sent (for tests and health)

    def events(self, session_id: str, head: int) -> None:
        self._put(f"E {session_id}", f"E {self._instance} {session_id} {head}")

    def started(self, session_id: str) -> None:
        self._put(f"S {session_id}", f"S {self._instance} {session_id}")

    def deleted(self, session_id: str) -> None:
        self._put(f"D {session_id}", f"D {self._instance} {session_id}")

    def _put(self, key: str, hint: str) -> None:
        self._queue.pop(key, None)  # keep queue order = commit order of the latest
        self._queue[key] = hint
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            await asyncio.sleep(WINDOW)
            while self._queue:
                hints, self._queue = list(self._queue.values()), {}
                try:
                    async with self._db.conn("sending hints") as c:
                        await c.execute(
                            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                            CHANNEL,
                            pack(hints),
                        )
                    self.sent += 1
                except Exception as e:  # other instances catch up on their poll
                    log.warning("could not send %d hint(s): %s", len(hints), e)
        finally:
            self._task = None

    async def flush(self) -> None:
        """Wait until every queued hint was sent (on close)."""
        while self._task is not None:
            await asyncio.shield(self._task)
