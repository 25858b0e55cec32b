"""``GET /api/sessions/ws``: live subscriptions and pipelined writes (SPEC §5).

One reader loop per socket handles frames in order; subscribe/unsubscribe run inline
(so they take effect in the order sent), writes are spawned as tasks (so one socket can
pipeline many appends and share group commits) and acked once durable, in completion
order. Everything the server sends goes through the socket's ``Outbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from msgspec import Meta

from eventlog.backend import Backend
from eventlog.errors import InvalidRequest
from eventlog.requests import (
    TOO_DEEP,
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    SessionId,
    UpdateRequest,
    parse,
    too_deep,
)

from .config import Limits
from .errors import ApiError, describe
from .fanout import Broker, Outbox, Sub, close_quietly, encode, event_frame
from .security import Guard
from .state import BACKEND, BROKER, CONFIG, CONNECTIONS, GUARD

log = logging.getLogger("sessionlog.server")

CLOSE_TOO_SLOW = 4008  # the client did not read fast enough; it resumes with after_seq
CLOSE_UNAUTHORIZED = 4001
BACKLOG_BATCH = 256  # backlog frames queued between checks for room in the outbox


class Head(msgspec.Struct):
    """The part of every frame the dispatcher needs; other fields are left for the op."""

    op: str
    req_id: Any = None


class SubscribeFrame(msgspec.Struct, kw_only=True):
    session_id: SessionId
    after_seq: Annotated[int, Meta(ge=0)] | None = None


class SessionFrame(msgspec.Struct, kw_only=True):
    session_id: SessionId


class AuthFrame(msgspec.Struct, kw_only=True):
    token: str = ""


_head = msgspec.json.Decoder(Head)

WRITE_OPS: dict[str, tuple[type[msgspec.Struct], str]] = {
    "append": (AppendRequest, "append"),
    "delta": (DeltaRequest, "delta"),
    "complete": (CompleteRequest, "complete"),
    "edit": (EditRequest, "edit"),
    "update": (UpdateRequest, "update"),
}


class Connection:
    """The state of one WebSocket: its subscriptions, outbox and in-flight writes."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        backend: Backend,
        broker: Broker,
        limits: Limits,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.backend = backend
        self.broker = broker
        self.limits = limits
        self.outbox = Outbox(ws, limits.send_queue_bytes, self._overflowed)
        self.subs: dict[str, Sub] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(limits.inflight_ops)
        self.closer: asyncio.Task[None] | None = None

    # -- sending -------------------------------------------------------------------

    def send(self, obj: object) -> None:
        self.outbox.put(encode(obj))

    def reply(self, op: str, req_id: Any, **fields: Any) -> None:
        """A frame answering a request; ``req_id`` is echoed when the client sent one."""
        frame = {"op": op, **fields} if req_id is None else {"op": op, "req_id": req_id, **fields}
        self.send(frame)

    def send_error(self, req_id: Any, exc: BaseException, **extra: Any) -> None:
        _, code, message, more = describe(exc)
        self.send(
            {"op": "error", "req_id": req_id, "code": code, "error": message, **more, **extra}
        )

    def _overflowed(self) -> None:
        log.warning("closing a WebSocket whose client does not keep up")
        self.close(CLOSE_TOO_SLOW, "too slow: resubscribe with after_seq")

    def close(self, code: int, reason: str) -> None:
        """Start closing (once); the reader loop ends when the close goes out."""
        if self.closer is None:
            self.outbox.close()
            self.closer = asyncio.create_task(
                close_quietly(self.ws, code, reason, self.limits.close_timeout + 1)
            )

    # -- the reader loop -----------------------------------------------------------

    async def run(self, guard: Guard, authed: bool) -> None:
        writer = asyncio.create_task(self.outbox.run())
        try:
            if authed or await self._authenticate(guard):
                async for msg in self.ws:
                    if msg.type is WSMsgType.TEXT:
                        await self.handle(msg.data)
                    elif msg.type is WSMsgType.BINARY:
                        self.send_error(
                            None,
                            ApiError("invalid_request", "send JSON text frames, not binary ones"),
                        )
        finally:
            await self._cleanup(writer)

    async def _authenticate(self, guard: Guard) -> bool:
        """A browser cannot set headers on a WebSocket: the first frame may carry the token."""
        try:
            msg = await self.ws.receive(timeout=self.limits.auth_timeout)
        except TimeoutError:
            msg = None
        token = None
        if msg is not None and msg.type is WSMsgType.TEXT:
            with contextlib.suppress(msgspec.MsgspecError):
                head = _head.decode(msg.data)
                if head.op == "auth":
                    token = msgspec.json.decode(msg.data, type=AuthFrame).token
        if token is not None and guard.token_matches(token):
            self.send({"op": "authed"})
            return True
        self.close(
            CLOSE_UNAUTHORIZED,
            'unauthorized: send ?token= or a first frame {"op":"auth","token":...}',
        )
        return False

    async def handle(self, data: str) -> None:
        try:
            head = _head.decode(data)
        except msgspec.ValidationError as e:
            self.send_error(None, InvalidRequest(f"invalid frame: {e}", "op"))
            return
        except msgspec.DecodeError as e:
            self.send_error(None, ApiError("invalid_json", f"the frame is not valid JSON: {e}"))
            return
        except RecursionError:  # an exception here would end the socket
            self.send_error(None, InvalidRequest(TOO_DEEP, "req_id"))
            return
        if too_deep(head.req_id):  # it is echoed in the answer, which must encode
            self.send_error(None, InvalidRequest(TOO_DEEP, "req_id"))
            return
        op, req_id = head.op, head.req_id
        try:
            if op in WRITE_OPS:
                kind, method = WRITE_OPS[op]
                req = parse(kind, data)  # invalid fields are refused before anything runs
                await self.slots.acquire()  # bounds in-flight writes; the reader waits
                task = asyncio.create_task(self._write(method, req, req_id))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif op == "subscribe":
                await self.subscribe(parse(SubscribeFrame, data), req_id)
            elif op == "unsubscribe":
                await self.unsubscribe(parse(SessionFrame, data).session_id, req_id)
            elif op == "subscribe_list":
                self.broker.list_outboxes.add(self.outbox)
                self.reply("subscribed_list", req_id)
            elif op == "unsubscribe_list":
                self.broker.list_outboxes.discard(self.outbox)
                self.reply("unsubscribed_list", req_id)
            elif op == "ping":
                self.reply("pong", req_id)
            elif op == "auth":
                self.reply("authed", req_id)  # already authenticated
            else:
                raise ApiError(
                    "invalid_request",
                    f"unknown op {op!r}: expected one of subscribe, unsubscribe, subscribe_list, "
                    "unsubscribe_list, append, delta, complete, edit, update, ping",
                    field="op",
                )
        except Exception as e:
            self.send_error(req_id, e)

    async def _write(self, method: str, req: Any, req_id: Any) -> None:
        try:
            fn: Callable[[Any], Awaitable[Any]] = getattr(self.backend, method)
            result = await fn(req)
            self.send(
                {
                    "op": "ack",
                    "req_id": req_id,
                    "seq": result.seq,
                    "message_id": result.message_id,
                    "duplicate": result.duplicate,
                }
            )
        except Exception as e:
            self.send_error(req_id, e)
        finally:
            self.slots.release()

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(self, frame: SubscribeFrame, req_id: Any) -> None:
        """Live listener first, then head, then backlog, then what arrived meanwhile."""
        sid = frame.session_id
        if sid in self.subs:
            await self._drop(self.subs.pop(sid))
        sub = Sub(sid, self.outbox)
        self.broker.add(sub)  # from here on nothing published for sid is missed
        try:
            head = await self.backend.watch(sid)
        except BaseException as e:
            self.broker.remove(sub)
            if isinstance(e, Exception):
                self.send_error(req_id, e, session_id=sid)
                return
            raise
        self.subs[sid] = sub
        after = frame.after_seq
        if after is not None and after > head:
            # The client has seen events the store does not have (it failed over to an
            # asynchronous replica that lost the tail, or was restored from a backup):
            # its copy cannot be patched, so it gets the whole session again, flagged.
            self.reply("subscribed", req_id, session_id=sid, seq=head, resync=True)
            after = 0
        else:
            self.reply("subscribed", req_id, session_id=sid, seq=head)
        if after is None:
            sub.last_sent = head  # live only
        else:
            sub.last_sent = after
            if after < head:
                try:
                    backlog = await self.backend.events(sid, after)
                except Exception as e:
                    self.send_error(req_id, e, session_id=sid)
                    backlog = []
                for i in range(0, len(backlog), BACKLOG_BATCH):
                    if self.outbox.closed or self.subs.get(sid) is not sub:
                        return
                    sub.send((e.seq, event_frame(sid, e)) for e in backlog[i : i + BACKLOG_BATCH])
                    await self.outbox.room()
        if self.subs.get(sid) is sub:
            sub.go_live()

    async def unsubscribe(self, sid: str, req_id: Any) -> None:
        sub = self.subs.pop(sid, None)
        if sub is not None:
            await self._drop(sub)
        self.reply("unsubscribed", req_id, session_id=sid)

    async def _drop(self, sub: Sub) -> None:
        self.broker.remove(sub)
        if sub.pending is not None and not self.outbox.closed:
            self.outbox.held -= sub.pending_bytes
        sub.pending = None
        with contextlib.suppress(Exception):
            await self.backend.unwatch(sub.session_id)

    async def _drop_if_stuck(self) -> None:
        """Give a peer that is behind ``close_timeout`` to read up to our close frame,
        then drop it rather than keep its unsent frames until TCP gives up."""
        t = self.transport
        if not isinstance(t, asyncio.WriteTransport):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.close_timeout
        while t.get_write_buffer_size() > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if t.get_write_buffer_size() > 0:
            t.abort()

    async def _cleanup(self, writer: asyncio.Task[None]) -> None:
        self.broker.list_outboxes.discard(self.outbox)
        subs, self.subs = list(self.subs.values()), {}
        for sub in subs:
            await self._drop(sub)
        if self.closer is not None:
            await self.closer
        await self._drop_if_stuck()
        self.outbox.close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        # in-flight writes finish on their own (their acks have nowhere to go; a client
        # that retries with the same id gets the original seq back)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    guard, limits = app[GUARD], app[CONFIG].limits
    presented = guard.bearer(request) or request.query.get("token")
    if presented is not None and not guard.token_matches(presented):
        raise ApiError("unauthorized", "wrong token: pass the token the server was started with")
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat,
        max_msg_size=limits.frame_bytes,
        compress=False,  # loopback: deflate would only cost CPU (and memory per socket)
        timeout=limits.close_timeout,
    )
    if not ws.can_prepare(request).ok:
        raise ApiError("invalid_request", "this endpoint is a WebSocket: connect with ws://")
    await ws.prepare(request)
    conn = Connection(ws, app[BACKEND], app[BROKER], limits, request.transport)
    app[CONNECTIONS].add(conn)
    try:
        await conn.run(guard, authed=guard.token is None or presented is not None)
    except Exception:
        # after the upgrade the error middleware must not answer: it would write an
        # HTTP 500 into the WebSocket stream. Log it and close as a server error.
        log.exception("WebSocket connection failed")
        if not ws.closed:
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal server error")
    finally:
        app[CONNECTIONS].discard(conn)
    return ws


async def close_all(app: web.Application) -> None:
    """on_shutdown: tell every client we are going away (1001) so it reconnects later."""
    connections = app[CONNECTIONS]
    conns = list(connections)
    for conn in conns:
        conn.close(WSCloseCode.GOING_AWAY, "server shutting down")
    await asyncio.gather(*(c.closer for c in conns if c.closer is not None), return_exceptions=True)
