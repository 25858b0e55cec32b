"""Fan-out of durable events to WebSocket subscribers, with bounded per-socket queues.

One ``Broker`` per app listens to the backend once and hands each event, encoded once,
to every ``Sub`` of its session. A ``Sub`` buffers live events while its backlog is
being sent and drops any seq it has already sent, which is what makes a subscription
gap-free and duplicate-free when appends race it. Every socket has one ``Outbox``: a
byte-budgeted queue drained by a single writer task; a client that does not read makes
it overflow and is disconnected instead of growing server memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable

import msgspec
from aiohttp import WSMsgType, web

from eventlog.events import Event
from eventlog.notify import Lifecycle, Notice, Published

log = logging.getLogger("sessionlog.server")
encoder = msgspec.json.Encoder()

Frame = tuple[int, bytes]  # (seq, encoded event frame)


def encode(obj: object) -> bytes:
    return encoder.encode(obj)


def event_frame(session_id: str, event: Event) -> bytes:
    """``{"op":"event","session_id":S,"type":…,"seq":…,"id":…,"ts":…,"data":{…}}``."""
    # splice the encoded event into the frame: one encode per event, shared by all sockets
    return (
        b'{"op":"event","session_id":'
        + encoder.encode(session_id)
        + b","
        + (encoder.encode(event)[1:])
    )


def list_frame(notice: Lifecycle) -> bytes:
    session = notice.summary if notice.summary is not None else {"session_id": notice.session_id}
    return encoder.encode({"op": "list_event", "type": notice.type, "session": session})


class Outbox:
    """Frames waiting for one socket; at most ``budget`` bytes, else ``on_overflow``."""

    def __init__(self, ws: web.WebSocketResponse, budget: int, on_overflow: Callable[[], None]):
        self.ws = ws
        self.budget = budget
        self.on_overflow = on_overflow
        self.frames: deque[bytes] = deque()
        self.size = 0  # bytes in ``frames``
        self.held = 0  # bytes buffered by subscriptions still sending their backlog
        self.peak = 0
        self.closed = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()

    def put(self, frame: bytes) -> None:
        if self.closed:
            return
        self.frames.append(frame)
        self.size += len(frame)
        self._check()
        self._wake.set()

    def hold(self, nbytes: int) -> None:
        """Account for bytes a subscription keeps aside (they count against the budget)."""
        if self.closed:
            return
        self.held += nbytes
        self._check()

    def _check(self) -> None:
        total = self.size + self.held
        self.peak = max(self.peak, total)
        if total > self.budget and not self.closed:
            self.close()
            self.on_overflow()

    def close(self) -> None:
        self.closed = True
        self.frames.clear()
        self.size = self.held = 0
        self._wake.set()
        self._room.set()

    async def room(self) -> None:
        """Wait until the queue is at most half full (paces a long backlog)."""
        while not self.closed and self.size + self.held > self.budget // 2:
            self._room.clear()
            await self._room.wait()

    async def run(self) -> None:
        """The socket's only writer: frames go out in the order they were queued."""
        ws = self.ws
        try:
            while not self.closed:
                if not self.frames:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                frame = self.frames.popleft()
                self.size -= len(frame)
                if self.size + self.held <= self.budget // 2:
                    self._room.set()
                # waits (TCP back-pressure) once aiohttp's small write buffer is full
                await ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self.close()  # the peer went away; the reader loop notices and cleans up


class Sub:
    """One socket's subscription to one session."""

    __slots__ = ("last_sent", "outbox", "pending", "pending_bytes", "session_id")

    def __init__(self, session_id: str, outbox: Outbox) -> None:
        self.session_id = session_id
        self.outbox = outbox
        self.last_sent = 0
        # live events that arrive before the backlog is out; None once live
        self.pending: list[Frame] | None = []
        self.pending_bytes = 0

    def deliver(self, frames: Iterable[Frame]) -> None:
        if self.outbox.closed:
            return  # the socket is going away: keep nothing for it
        if self.pending is not None:
            for f in frames:
                self.pending.append(f)
                self.pending_bytes += len(f[1])
                self.outbox.hold(len(f[1]))
            return
        self.send(frames)

    def send(self, frames: Iterable[Frame]) -> None:
        """Send events in order, skipping every seq already sent (no duplicates)."""
        for seq, frame in frames:
            if seq > self.last_sent:
                self.outbox.put(frame)
                self.last_sent = seq

    def go_live(self) -> None:
        """Backlog sent: flush what arrived meanwhile, then pass events straight on."""
        pending, self.pending = self.pending or [], None
        if not self.outbox.closed:
            self.outbox.held -= self.pending_bytes
        self.pending_bytes = 0
        self.send(pending)


class Broker:
    """Routes backend notices to subscriptions; runs on the event loop."""

    def __init__(self) -> None:
        self.by_session: dict[str, set[Sub]] = {}
        self.list_outboxes: set[Outbox] = set()

    def add(self, sub: Sub) -> None:
        self.by_session.setdefault(sub.session_id, set()).add(sub)

    def remove(self, sub: Sub) -> None:
        subs = self.by_session.get(sub.session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.by_session[sub.session_id]

    @property
    def subscriptions(self) -> int:
        return sum(len(s) for s in self.by_session.values())

    def on_notice(self, notice: Notice) -> None:
        try:
            if isinstance(notice, Published):
                subs = self.by_session.get(notice.session_id)
                if not subs:
                    return
                frames = [(e.seq, event_frame(notice.session_id, e)) for e in notice.events]
                for sub in list(subs):
                    sub.deliver(frames)
            elif self.list_outboxes:
                frame = list_frame(notice)
                for outbox in list(self.list_outboxes):
                    outbox.put(frame)
        except Exception:  # a listener must never take the backend's publisher down
            log.exception("failed to fan out a notice")


async def close_quietly(ws: web.WebSocketResponse, code: int, reason: str, timeout: float) -> None:
    """Close with ``code`` without waiting on a peer that does not read (no drain),
    and give up on the close handshake after ``timeout`` seconds."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=code, message=reason.encode(), drain=False), timeout)
