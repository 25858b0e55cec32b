"""``RemoteBackend``: the ``Backend`` of a running sessionlog server, over HTTP + WebSocket.

Requests and answers are the server's own JSON (SPEC §4), decoded straight into the
engine's Structs; writes go over HTTP keep-alive (a round trip costs what the raw POST
does), listeners and watches over one WebSocket (``live.py``). Every write without an
event ``id`` gets one before it is sent, so a retry after a broken connection is
answered by the server as a duplicate instead of being written twice.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from ...errors import InvalidRequest, SessionNotFound
from ...events import Event, decoder, new_event_id
from ...formats import event_lines
from ...model import Session
from ...notify import Notice
from ...ops import Result, SaveResult
from ...requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    RecordErrorRequest,
    SaveRequest,
    StartRequest,
    UpdateRequest,
)
from ...results import ImportOutcome, ListResult, LoadResult
from .errors import ServerUnavailable
from .http import ONCE, SAFE, Http
from .live import Live

_enc = msgspec.json.Encoder()


class _Started(msgspec.Struct):
    session: Session


class _Loaded(msgspec.Struct):
    session: Session
    message_start: int = 0


class _Updated(msgspec.Struct):
    seq: int
    duplicate: bool = False


class _Imported(msgspec.Struct):
    imported: list[str]
    skipped: list[str] = msgspec.field(default_factory=list)
    replaced: list[str] = msgspec.field(default_factory=list)


class _Compacted(msgspec.Struct):
    compacted: int


_result = msgspec.json.Decoder(Result)
_save = msgspec.json.Decoder(SaveResult)
_started = msgspec.json.Decoder(_Started)
_loaded = msgspec.json.Decoder(_Loaded)
_list = msgspec.json.Decoder(ListResult)
_updated = msgspec.json.Decoder(_Updated)
_imported = msgspec.json.Decoder(_Imported)
_compacted = msgspec.json.Decoder(_Compacted)

Write = AppendRequest | DeltaRequest | CompleteRequest | EditRequest | RecordErrorRequest


class RemoteBackend:
    """A sessionlog server at ``url`` (``http://host:port``), optionally with ``token``.

    ``retries`` bounds the attempts after a connection failure (never after an error
    answer); ``timeout`` is the connect and per-read timeout in seconds. Requests work
    from any event loop; listeners and watches live on the loop of the first
    ``subscribe``/``watch`` and run there, as in-process.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        retry_delay: float = 0.1,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"invalid url: expected http://host:port or https://host:port, got {url!r}",
                "url",
            )
        self.url = url.rstrip("/")
        self.http = Http(self.url, token, timeout, retries, retry_delay)
        self.live = Live(self.http, timeout)

    def __repr__(self) -> str:
        return f"RemoteBackend({self.url!r})"

    # -- writes ------------------------------------------------------------------------

    async def start(self, req: StartRequest) -> Session:
        # no id to deduplicate by: sent again only if it never reached the server
        body = await self.http.post("/api/sessions/start", _enc.encode(req), retry=ONCE)
        return _started.decode(body).session

    async def append(self, req: AppendRequest) -> Result:
        return await self._write("/api/sessions/append", req)

    async def delta(self, req: DeltaRequest) -> Result:
        return await self._write("/api/sessions/delta", req)

    async def complete(self, req: CompleteRequest) -> Result:
        return await self._write("/api/sessions/complete", req)

    async def edit(self, req: EditRequest) -> Result:
        return await self._write("/api/sessions/edit", req)

    async def record_error(self, req: RecordErrorRequest) -> Result:
        return await self._write("/api/sessions/error", req)

    async def _write(self, path: str, req: Write) -> Result:
        ours = req.id is None
        if ours:
            req = msgspec.structs.replace(req, id=new_event_id())
        await self.live.before_write(req.session_id)
        body, resent = await self.http.send(
            path,
            _enc.encode(req),
            session_id=req.session_id,
            expected_seq=getattr(req, "expected_seq", None),
        )
        result = _result.decode(body)
        if result.duplicate and resent and ours:
            # the id was made for this call: the "duplicate" is our own lost first try
            result = msgspec.structs.replace(result, duplicate=False)
        if not result.duplicate:
            await self.live.after_write(req.session_id, result.seq)
        return result

    async def update(self, req: UpdateRequest) -> Result:
        ours = req.id is None
        if ours:
            req = msgspec.structs.replace(req, id=new_event_id())
        await self.live.before_write(req.session_id)
        body, resent = await self.http.send(
            "/api/sessions/update",
            _enc.encode(req),
            session_id=req.session_id,
            expected_seq=req.expected_seq,
        )
        out = _updated.decode(body)
        duplicate = out.duplicate and not (resent and ours)  # see _write
        if not out.duplicate:
            await self.live.after_write(req.session_id, out.seq)
        return Result(out.seq, duplicate)

    async def save(self, req: SaveRequest) -> SaveResult:
        # a repeated save matches its messages by id or position and changes nothing;
        # with expected_seq a repeat would be refused, so that one is not repeated
        await self.live.before_write(req.session_id)
        body = await self.http.post(
            "/api/sessions/save",
            _enc.encode(req),
            retry=SAFE if req.expected_seq is None else ONCE,
            session_id=req.session_id,
            expected_seq=req.expected_seq,
        )
        result = _save.decode(body)
        if result.appended or result.edited:
            await self.live.after_write(req.session_id, result.seq)
        return result

    async def delete(self, session_id: str) -> None:
        body = _enc.encode({"session_id": session_id})
        try:
            await self.http.post("/api/sessions/delete", body, retry=ONCE, session_id=session_id)
        except ServerUnavailable:
            # the first attempt may have deleted it: ask again; "not found" now means done
            try:
                await self.http.post("/api/sessions/delete", body, session_id=session_id)
            except SessionNotFound:
                return

    async def import_events(self, data: bytes) -> builtins.list[str]:
        body = await self.http.post(  # whole: all or nothing, as the Backend promises
            "/api/sessions/import?whole=true",
            data,
            retry=ONCE,
            content_type="application/x-ndjson",
        )
        return _imported.decode(body).imported

    async def import_sessions(
        self, sessions: builtins.list[tuple[str, builtins.list[Event]]], replace: bool = False
    ) -> ImportOutcome:
        """Sent as an ``events`` backup; the server skips (or replaces) existing ones."""
        if not sessions:
            return ImportOutcome()
        data = b"".join(line for sid, evs in sessions for line in event_lines(sid, evs))
        path = "/api/sessions/import" + ("?replace=true" if replace else "")
        out = _imported.decode(
            await self.http.post(path, data, retry=ONCE, content_type="application/x-ndjson")
        )
        return ImportOutcome(out.imported, out.skipped, out.replaced)

    # -- reads -------------------------------------------------------------------------

    async def load(self, req: LoadRequest) -> LoadResult:
        body = await self.http.post(
            "/api/sessions/load", _enc.encode(req), session_id=req.session_id
        )
        out = _loaded.decode(body)
        return LoadResult(out.session, out.message_start)

    async def list(self, req: ListRequest) -> ListResult:
        return _list.decode(await self.http.post("/api/sessions/list", _enc.encode(req)))

    async def events(self, session_id: str, after_seq: int) -> builtins.list[Event]:
        """The session's events after ``after_seq``, read from its ``events`` export."""
        req = ExportRequest(session_id=session_id, format="events")
        chunks = await self.http.stream("/api/sessions/export", _enc.encode(req), session_id)
        data = b"".join([c async for c in chunks])
        out = []
        for line in data.splitlines():
            if line.strip():
                event = decoder.decode(line)  # the line's extra session_id is ignored
                if event.seq > after_seq:
                    out.append(event)
        return out

    async def export(self, req: ExportRequest) -> AsyncIterator[bytes]:
        return await self.http.stream("/api/sessions/export", _enc.encode(req), req.session_id)

    async def compact(self) -> int:
        return _compacted.decode(await self.http.post("/api/sessions/compact", b"{}")).compacted

    async def health(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.json.decode(await self.http.get("/api/health"))
        out.pop("success", None)
        return out

    # -- live ----------------------------------------------------------------------------

    async def watch(self, session_id: str) -> int:
        return await self.live.watch(session_id)

    async def unwatch(self, session_id: str) -> None:
        await self.live.unwatch(session_id)

    def subscribe(self, listener: Callable[[Notice], None]) -> Callable[[], None]:
        """``listener`` hears, on this event loop and in seq order, every event of the
        sessions this backend watches or writes to (from any writer), and the session
        list's lifecycle notices. It has heard a write by the time that write returns."""
        return self.live.add_listener(listener)

    async def close(self) -> None:
        await self.live.close()
        await self.http.close()
