"""The one place that turns exceptions into the JSON error envelope (SPEC §4).

``{"success": false, "error": "<for a person>", "code": "<machine>"}`` with a status
per code. Engine errors carry their code; aiohttp's own HTTP errors (unknown route,
wrong method, body too large) are mapped too, so no client ever sees an HTML error
page or a traceback. Anything unexpected is logged and answered with a generic 500.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from eventlog.errors import (
    EventLogError,
    InvalidRequest,
    SequenceConflict,
    SessionExists,
    StorageError,
    Unavailable,
)

log = logging.getLogger("sessionlog.server")

STATUS = {
    "invalid_json": 400,
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "internal": 500,
    "journal_corrupt": 500,
    "storage_error": 503,
    "unavailable": 503,  # the database is unreachable: nothing was saved, retry later
    "schema_too_new": 500,  # 507 when the disk is full (see describe)
}
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT}
_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    """An error the server itself decides on (security checks, bad media type, ...)."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    body = {"success": False, "error": message, "code": code, **extra}
    return web.Response(
        status=status, body=_encoder.encode(body), content_type="application/json", headers=headers
    )


def describe(exc: BaseException) -> tuple[int, str, str, dict[str, Any]]:
    """(status, code, message, extra fields) for any exception; also used by WebSocket."""
    if isinstance(exc, ApiError):
        return STATUS.get(exc.code, 400), exc.code, exc.message, exc.extra
    if isinstance(exc, SequenceConflict):
        return 409, "conflict", exc.message, {"current_seq": exc.current}
    if isinstance(exc, SessionExists):
        return 409, "conflict", exc.message, {"session_id": exc.session_id}
    if isinstance(exc, InvalidRequest):
        extra = {"field": exc.field} if exc.field else {}
        return STATUS.get(exc.code, 400), exc.code, exc.message, extra
    if isinstance(exc, Unavailable):
        return 503, exc.code, exc.message, {}
    if isinstance(exc, StorageError):
        cause = exc.__cause__
        if isinstance(cause, OSError):
            full = cause.errno in _FULL_DISK
        else:  # the engine does not always chain the OSError; its message names it
            full = any(os.strerror(n) in exc.message for n in _FULL_DISK)
        # 507 tells the user the disk is full; 503 says "not now, nothing was saved"
        return (507 if full else 503), "storage_error", exc.message, {}
    if isinstance(exc, EventLogError):
        return STATUS.get(exc.code, 500), exc.code, exc.message, {}
    if isinstance(exc, web.HTTPException):
        code = _HTTP_CODES.get(exc.status, "internal" if exc.status >= 500 else "invalid_request")
        message = {
            "not_found": "no such endpoint: see GET /api/openapi.json for the API",
            "payload_too_large": "the request body is too large",
        }.get(code, exc.reason)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = f"{exc.method} is not allowed here: use {allowed}"
        return exc.status, code, message, {}
    log.error("unexpected error while handling a request", exc_info=exc)
    return 500, "internal", "internal server error (details are in the server log)", {}


def error_response(exc: BaseException) -> web.Response:
    status, code, message, extra = describe(exc)
    headers = None
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers = {"Allow": ",".join(sorted(exc.allowed_methods))}
    return envelope(status, code, message, headers, **extra)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: every failure becomes the JSON envelope."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise  # redirects and the like are not errors
        return error_response(e)
    except Exception as e:
        return error_response(e)
