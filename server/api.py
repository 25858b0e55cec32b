"""The POST endpoints of SPEC §4 (plus the HTTP twins of the WebSocket writes) and health.

Each handler checks the media type and size of the body, decodes it straight into the
engine's request Struct (the single source of validation), awaits the backend (which
runs storage work off the event loop), and encodes the answer with msgspec. Errors are
raised and turned into the envelope by ``errors.error_middleware``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from eventlog.formats import CONTENT_TYPES, filename
from eventlog.imports import ImportReport
from eventlog.model import Message, Session, Summary, summarize
from eventlog.ops import Result, SaveResult
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    Content,
    DeleteRequest,
    DeltaRequest,
    EditRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    RecordErrorRequest,
    SaveRequest,
    StartRequest,
    UpdateRequest,
    parse,
)
from eventlog.results import ListResult

from .errors import ApiError
from .imports import import_sessions
from .markdown import render_all
from .state import BACKEND, BROKER, CONFIG, CONNECTIONS

log = logging.getLogger("sessionlog.server")
R = TypeVar("R", bound=msgspec.Struct)

JSON_TYPES = frozenset({"application/json"})

try:
    VERSION = metadata.version("sessionlog")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0"

_encoder = msgspec.json.Encoder()


# -- response shapes (also published in the OpenAPI document) -------------------------


class StartResponse(msgspec.Struct):
    session_id: str
    session: Session


class LoadResponse(msgspec.Struct, omit_defaults=True):
    session: Session
    message_start: int | None = None  # present when a message_limit/message_before applied


class AppendResponse(msgspec.Struct):
    seq: int
    duplicate: bool
    message_id: str | None
    message: Message | None


class UpdateResponse(msgspec.Struct):
    seq: int
    session: Summary
    duplicate: bool = False  # a retry of an update already made (same ``id``)


class DeleteResponse(msgspec.Struct):
    session_id: str


class RenderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Message contents to show as HTML (the page asks for what it displays)."""

    texts: Annotated[list[Content], msgspec.Meta(max_length=1000)]


class RenderResponse(msgspec.Struct):
    html: list[str]  # sanitised, one per text, in order


class CompactResponse(msgspec.Struct):
    compacted: int  # sessions whose snapshot was brought up to date


class HealthResponse(msgspec.Struct, omit_defaults=True):
    status: str
    version: str
    sessions: int
    open_journals: int
    websockets: int
    subscriptions: int
    fsync: str
    backend: str = "file"  # or "postgres"
    # with ?session_id=S: how many WebSocket subscriptions follow S (a demo waits for one)
    session_subscriptions: int | None = None
    # the list or full-text index is still being built (a copied store, a lost index):
    # until false, a search may miss sessions that the list already shows
    indexing: bool = False


# -- helpers ----------------------------------------------------------------------------


def ok(payload: msgspec.Struct | dict[str, Any]) -> web.Response:
    """``{"success": true, ...payload}``: the payload's fields are spliced in, not copied."""
    body = _encoder.encode(payload)
    body = b'{"success":true}' if body == b"{}" else b'{"success":true,' + body[1:]
    return web.Response(body=body, content_type="application/json")


async def read_body(request: web.Request, limit: int, types: frozenset[str] = JSON_TYPES) -> bytes:
    """The raw body, refused with 415 for another media type and 413 beyond ``limit``
    (checked against Content-Length first, then while reading, so memory stays bounded)."""
    if request.content_type not in types:
        got = request.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(
            "unsupported_media_type",
            f"send the body as {' or '.join(sorted(types))} (got {got})",
        )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        "payload_too_large", f"the request body is larger than the limit of {limit} bytes"
    )


def decode(kind: type[R], body: bytes) -> R:
    """Body -> request Struct; ``invalid_json`` if it is not JSON at all, otherwise the
    engine's ``invalid_request`` naming the field."""
    if not body.strip():
        body = b"{}"  # an empty body means "all defaults" (e.g. list, start)
    try:
        return parse(kind, body)
    except Exception:
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as e:
            raise ApiError("invalid_json", f"the body is not valid JSON: {e}") from None
        except RecursionError:
            pass  # JSON nested too deeply to read again: the first error stands
        raise


async def body_of(request: web.Request, kind: type[R]) -> R:
    return decode(kind, await read_body(request, request.app[CONFIG].limits.body_bytes))


# -- endpoints --------------------------------------------------------------------------


async def start(request: web.Request) -> web.Response:
    session = await request.app[BACKEND].start(await body_of(request, StartRequest))
    return ok(StartResponse(session.session_id, session))


async def load(request: web.Request) -> web.Response:
    req = await body_of(request, LoadRequest)
    found = await request.app[BACKEND].load(req)
    limited = req.message_limit is not None or req.message_before is not None
    return ok(LoadResponse(found.session, found.message_start if limited else None))


async def list_sessions(request: web.Request) -> web.Response:
    result: ListResult = await request.app[BACKEND].list(await body_of(request, ListRequest))
    return ok(result)


async def save(request: web.Request) -> web.Response:
    result: SaveResult = await request.app[BACKEND].save(await body_of(request, SaveRequest))
    return ok(result)


async def delete(request: web.Request) -> web.Response:
    req = await body_of(request, DeleteRequest)
    await request.app[BACKEND].delete(req.session_id)
    return ok(DeleteResponse(req.session_id))


def _write(kind: type[R], method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """append/delta/complete/edit/error: one shape, the engine's ``Result``."""

    async def handler(request: web.Request) -> web.Response:
        req = await body_of(request, kind)
        result: Result = await getattr(request.app[BACKEND], method)(req)
        return ok(result)

    handler.__name__ = method
    return handler


append = _write(AppendRequest, "append")
delta = _write(DeltaRequest, "delta")
complete = _write(CompleteRequest, "complete")
edit = _write(EditRequest, "edit")
record_error = _write(RecordErrorRequest, "record_error")


async def update(request: web.Request) -> web.Response:
    req = await body_of(request, UpdateRequest)
    backend = request.app[BACKEND]
    result = await backend.update(req)
    loaded = await backend.load(LoadRequest(session_id=req.session_id))
    return ok(UpdateResponse(result.seq, summarize(loaded.session), result.duplicate))


async def export(request: web.Request) -> web.StreamResponse:
    """The file itself, streamed a session at a time; every check happens before the
    status line goes out, so a bad request still gets a proper JSON error."""
    req = await body_of(request, ExportRequest)
    chunks = await request.app[BACKEND].export(req)
    ids = (
        None
        if req.all
        else [*(req.session_ids or []), *([req.session_id] if req.session_id else [])]
    )
    resp = web.StreamResponse(
        headers={
            "Content-Type": CONTENT_TYPES[req.format][0],
            "Content-Disposition": f'attachment; filename="{filename(req.format, ids)}"',
        }
    )
    try:
        await resp.prepare(request)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away mid-download
    except Exception:
        # Headers are out: the only honest signal left is to cut the connection, so the
        # client sees a truncated download instead of a complete-looking file.
        log.exception("export failed mid-stream")
        if request.transport is not None:
            request.transport.abort()
    finally:
        aclose = getattr(chunks, "aclose", None)  # stop the engine's reader early, if any
        if aclose is not None:
            await aclose()
    return resp


async def render(request: web.Request) -> web.Response:
    req = await body_of(request, RenderRequest)
    # pure CPU, up to megabytes of text: off the event loop
    return ok(RenderResponse(await asyncio.to_thread(render_all, req.texts)))


async def compact(request: web.Request) -> web.Response:
    """Fold every journal with news into its snapshot now (what the compactor does on its
    cadence): for a remote client's ``Backend.compact``."""
    await read_body(request, request.app[CONFIG].limits.body_bytes)
    return ok(CompactResponse(await request.app[BACKEND].compact()))


async def health(request: web.Request) -> web.Response:
    app = request.app
    counts = await app[BACKEND].health()
    watched = request.query.get("session_id")
    return ok(
        HealthResponse(
            status="ok",
            version=VERSION,
            sessions=int(counts.get("sessions", 0)),
            open_journals=int(counts.get("open_journals", 0)),
            websockets=len(app[CONNECTIONS]),
            subscriptions=app[BROKER].subscriptions,
            fsync=str(counts.get("fsync", app[CONFIG].fsync)),
            backend=str(counts.get("backend", "file")),
            session_subscriptions=(
                None if watched is None else len(app[BROKER].by_session.get(watched, ()))
            ),
            indexing=bool(counts.get("indexing", False)),
        )
    )


# path -> (handler, request Struct or None, response Struct, summary) for routes and OpenAPI
POST_ROUTES: dict[
    str,
    tuple[
        Callable[[web.Request], Awaitable[web.StreamResponse]],
        type[msgspec.Struct] | None,
        type[msgspec.Struct] | None,
        str,
    ],
] = {
    "/api/sessions/start": (start, StartRequest, StartResponse, "Start a new session"),
    "/api/sessions/load": (load, LoadRequest, LoadResponse, "Load a session (current)"),
    "/api/sessions/list": (list_sessions, ListRequest, ListResult, "List and search sessions"),
    "/api/sessions/save": (
        save,
        SaveRequest,
        SaveResult,
        "Save a client's full message list (append new, edit changed)",
    ),
    "/api/sessions/delete": (delete, DeleteRequest, DeleteResponse, "Delete a session"),
    "/api/sessions/export": (
        export,
        ExportRequest,
        None,
        "Export sessions as a file (openai, sharegpt, events, markdown)",
    ),
    "/api/sessions/append": (append, AppendRequest, AppendResponse, "Append a message"),
    "/api/sessions/delta": (delta, DeltaRequest, AppendResponse, "Stream into a partial message"),
    "/api/sessions/complete": (
        complete,
        CompleteRequest,
        AppendResponse,
        "Complete a partial message",
    ),
    "/api/sessions/edit": (edit, EditRequest, AppendResponse, "Edit a message"),
    "/api/sessions/error": (
        record_error,
        RecordErrorRequest,
        AppendResponse,
        "Record an error in a session",
    ),
    "/api/sessions/update": (
        update,
        UpdateRequest,
        UpdateResponse,
        "Change title, tags, pinned, archived or metadata",
    ),
    "/api/sessions/compact": (
        compact,
        None,
        CompactResponse,
        "Compact every session with new events into its snapshot now",
    ),
    "/api/sessions/import": (
        import_sessions,
        None,
        ImportReport,
        "Import an `events` export (JSONL) or a ChatGPT, Claude.ai or Open WebUI export "
        "(JSON or .zip); query: replace, filename, progress",
    ),
    "/api/render": (
        render,
        RenderRequest,
        RenderResponse,
        "Message contents as sanitised HTML (CommonMark + GitHub tables)",
    ),
}


def add_routes(app: web.Application) -> None:
    for path, (handler, _, _, _) in POST_ROUTES.items():
        app.router.add_post(path, handler)
    app.router.add_get("/api/health", health)
