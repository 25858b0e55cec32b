"""The WebSocket half of ``RemoteBackend``: listeners, watched sessions, resumption.

One socket per backend, opened when the first listener or watch needs it. Every
session it follows is subscribed with ``after_seq`` = the last seq handed to the
listeners, so after a dropped connection (server restart, network, a ``4008 too
slow``) the reconnect gets exactly the events that were missed: no gap, and a seq
already delivered is never delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
import msgspec

from ...events import decoder as event_decoder
from ...model import Summary
from ...notify import Lifecycle, Notice, Published
from .errors import error_from
from .http import Http, ws_url

log = logging.getLogger("sessionlog.remote")

RECONNECT_FIRST = 0.05  # seconds before the first reconnect; doubles up to RECONNECT_MAX
RECONNECT_MAX = 2.0


class _Head(msgspec.Struct):
    op: str
    session_id: str | None = None
    seq: int | None = None
    type: str | None = None
    code: str | None = None
    error: str | None = None


class _ListFrame(msgspec.Struct):
    type: Literal["session.started", "session.updated", "session.deleted"]
    session: dict[str, Any]


_head = msgspec.json.Decoder(_Head)
_list = msgspec.json.Decoder(_ListFrame)
_enc = msgspec.json.Encoder()


class Live:
    """Subscriptions over one reconnecting WebSocket, delivered to listeners in order."""

    def __init__(self, http: Http, wait_timeout: float) -> None:
        self.http = http
        self.url = ws_url(http.base)
        self.wait_timeout = wait_timeout
        self.listeners: tuple[Callable[[Notice], None], ...] = ()
        self.watched: dict[str, int] = {}  # explicit watch() counts
        self.auto: set[str] = set()  # followed because a listener should hear our writes
        self.last: dict[str, int] = {}  # last seq delivered, per followed session
        self.heads: dict[str, asyncio.Future[int]] = {}  # subscribes awaiting their answer
        self.waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None
        self.closing = False

    # -- what the backend asks ---------------------------------------------------------

    def add_listener(self, listener: Callable[[Notice], None]) -> Callable[[], None]:
        first = not self.listeners
        self.listeners = (*self.listeners, listener)
        self._ensure_task()
        if first:
            self._send({"op": "subscribe_list"})

        def remove() -> None:
            self.listeners = tuple(x for x in self.listeners if x is not listener)
            if not self.listeners:
                self._send({"op": "unsubscribe_list"})
                for sid in list(self.auto):
                    self.auto.discard(sid)
                    self._maybe_unsubscribe(sid)

        return remove

    async def watch(self, session_id: str) -> int:
        self.watched[session_id] = self.watched.get(session_id, 0) + 1
        try:
            return await self._follow(session_id)
        except BaseException:
            self._unwatch_count(session_id)
            raise

    async def unwatch(self, session_id: str) -> None:
        self._unwatch_count(session_id)

    async def before_write(self, session_id: str) -> None:
        """With listeners, follow a session before writing to it, so they hear the write."""
        if self.listeners and session_id not in self.auto and session_id not in self.watched:
            self.auto.add(session_id)
            try:
                await self._follow(session_id)
            except BaseException:
                self.auto.discard(session_id)
                raise
        elif session_id in self.heads:
            await asyncio.shield(self.heads[session_id])

    async def after_write(self, session_id: str, seq: int) -> None:
        """Return once the listeners heard ``seq`` (as in-process, where they hear a
        write before its caller does), or after ``wait_timeout`` if the socket is down."""
        if not self.listeners or session_id not in self.last or self.last[session_id] >= seq:
            return
        fut = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(session_id, []).append((seq, fut))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), self.wait_timeout)

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for fut in self.heads.values():
            if not fut.done():
                fut.cancel()

    # -- subscriptions -------------------------------------------------------------------

    def _follow(self, session_id: str) -> asyncio.Future[int]:
        fut = self.heads.get(session_id)
        if fut is not None:
            return asyncio.shield(fut)
        if session_id in self.last:  # followed and caught up: the head is what we have
            done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            done.set_result(self.last[session_id])
            return done
        fut = self.heads[session_id] = asyncio.get_running_loop().create_future()
        self._ensure_task()
        self._subscribe(session_id)
        return asyncio.shield(fut)

    def _subscribe(self, session_id: str) -> None:
        frame: dict[str, Any] = {"op": "subscribe", "session_id": session_id}
        if session_id in self.last:
            frame["after_seq"] = self.last[session_id]
        self._send(frame)

    def _unwatch_count(self, session_id: str) -> None:
        n = self.watched.get(session_id, 0) - 1
        if n > 0:
            self.watched[session_id] = n
            return
        self.watched.pop(session_id, None)
        self._maybe_unsubscribe(session_id)

    def _maybe_unsubscribe(self, session_id: str) -> None:
        if session_id in self.watched or session_id in self.auto:
            return
        self.last.pop(session_id, None)
        self._send({"op": "unsubscribe", "session_id": session_id})

    def _followed(self) -> set[str]:
        return set(self.watched) | self.auto

    def _send(self, frame: dict[str, Any]) -> None:
        """Send now if connected; otherwise the reconnect sends the current state."""
        ws = self.ws
        if ws is not None and not ws.closed:
            task = asyncio.ensure_future(ws.send_str(_enc.encode(frame).decode()))
            task.add_done_callback(_ignore)

    # -- the connection --------------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = RECONNECT_FIRST
        while not self.closing:
            try:
                ws = await self.http.session().ws_connect(
                    self.url, headers=self.http.auth, heartbeat=30.0, max_msg_size=0
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                log.info("cannot connect to %s (%r); retrying in %.2fs", self.url, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = RECONNECT_FIRST
            self.ws = ws
            try:
                # the state as it is now, queued before any other frame can be
                if self.listeners:
                    self._send({"op": "subscribe_list"})
                for sid in self._followed():
                    self._subscribe(sid)
                async for msg in ws:
                    if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        self._frame(msg.data)
            except (aiohttp.ClientError, OSError, ConnectionError) as e:
                log.info("WebSocket to %s broke (%r); resuming", self.url, e)
            finally:
                self.ws = None
                with contextlib.suppress(Exception):
                    await ws.close()
            if not self.closing:
                log.info("WebSocket to %s closed (%s); resuming", self.url, ws.close_code)

    def _frame(self, data: str | bytes) -> None:
        head = _head.decode(data)
        sid = head.session_id
        if head.op == "event" and sid is not None:
            event = event_decoder.decode(data)
            last = self.last.get(sid)
            if last is None or event.seq <= last:
                return  # not followed (any more), or already delivered before a reconnect
            self.last[sid] = event.seq
            self._emit(Published(sid, [event]))
            self._wake(sid, event.seq)
        elif head.op == "list_event":
            frame = _list.decode(data)
            if frame.type == "session.deleted":
                notice = Lifecycle("session.deleted", str(frame.session.get("session_id")), None)
            else:
                summary = msgspec.convert(frame.session, Summary)
                notice = Lifecycle(frame.type, summary.session_id, summary)
            self._emit(notice)
        elif head.op == "subscribed" and sid is not None:
            self.last.setdefault(sid, head.seq or 0)
            fut = self.heads.pop(sid, None)
            if fut is not None and not fut.done():
                fut.set_result(head.seq or 0)
        elif head.op == "error":
            self._refused(head, data)

    def _refused(self, head: _Head, data: str | bytes) -> None:
        sid = head.session_id
        fut = self.heads.pop(sid, None) if sid is not None else None
        if fut is None or sid is None:
            log.warning("the server refused a frame: %s", head.error)
            return
        body = data.encode() if isinstance(data, str) else data
        self.watched.pop(sid, None)
        self.auto.discard(sid)
        if not fut.done():
            fut.set_exception(error_from(400, body, sid))

    def _emit(self, notice: Notice) -> None:
        for listener in self.listeners:
            try:
                listener(notice)
            except Exception:
                log.exception("a listener failed")

    def _wake(self, session_id: str, seq: int) -> None:
        waiting = self.waiters.get(session_id)
        if not waiting:
            return
        keep = []
        for want, fut in waiting:
            if want <= seq:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((want, fut))
        self.waiters[session_id] = keep


def _ignore(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a send on a socket that just broke: the reconnect resends
