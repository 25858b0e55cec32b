"""``GET /api/openapi.json``: an OpenAPI 3.1 document generated from the same msgspec
Structs that validate requests and shape responses, so it cannot drift from the code."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiohttp import web

from .api import POST_ROUTES, VERSION, HealthResponse
from .errors import STATUS

REF = "#/components/schemas/{name}"


class ErrorResponse(msgspec.Struct, omit_defaults=True):
    """Every failure: a message for a person and a code for a program."""

    success: Literal[False]
    error: str
    code: str
    field: str | None = None  # invalid_request: the offending field
    current_seq: int | None = None  # conflict: the session's seq now


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": REF.format(name=kind.__name__)}


def _success(kind: type | None) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "properties": {"success": {"const": True}},
        "required": ["success"],
    }
    schema = {"allOf": [envelope, _ref(kind)]} if kind is not None else envelope
    return {"description": "success", "content": {"application/json": {"schema": schema}}}


_ERROR = {"content": {"application/json": {"schema": _ref(ErrorResponse)}}}


def _errors(*codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        status = str(STATUS[code])
        entry = out.setdefault(status, {"description": "", **_ERROR})
        entry["description"] = (entry["description"] + " | " if entry["description"] else "") + code
    return out


_COMMON = (
    "invalid_json",
    "invalid_request",
    "unauthorized",
    "forbidden",
    "payload_too_large",
    "unsupported_media_type",
    "internal",
)
_WRITE = ("not_found", "conflict", "storage_error")


def build() -> dict[str, Any]:
    kinds: list[type] = [ErrorResponse, HealthResponse]
    for _, req, resp, _ in POST_ROUTES.values():
        kinds += [k for k in (req, resp) if k is not None]
    _, components = msgspec.json.schema_components(kinds, ref_template=REF)
    paths: dict[str, Any] = {}
    for path, (_, req, resp, summary) in POST_ROUTES.items():
        name = path.rsplit("/", 1)[1]
        op: dict[str, Any] = {"operationId": name, "summary": summary, "tags": ["sessions"]}
        if req is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(req)}},
            }
        else:  # import: the body is an `events` export, one event per line
            text = {"schema": {"type": "string", "description": "an `events` export (JSONL)"}}
            op["requestBody"] = {
                "required": True,
                "content": {
                    t: text
                    for t in ("application/jsonl", "application/x-ndjson", "application/json")
                },
            }
        if name == "export":
            ok_resp = {
                "description": "the file, as an attachment",
                "content": {
                    "application/jsonl": {"schema": {"type": "string"}},
                    "text/markdown": {"schema": {"type": "string"}},
                },
            }
        else:
            ok_resp = _success(resp)
        codes = _COMMON if name in ("start", "list", "render") else _COMMON + _WRITE
        op["responses"] = {"200": ok_resp, **_errors(*codes)}
        paths[path] = {"post": op}
    paths["/api/health"] = {
        "get": {
            "operationId": "health",
            "summary": "Liveness and counts",
            "parameters": [
                {
                    "name": "session_id",
                    "in": "query",
                    "required": False,
                    "description": "also count the subscriptions to this session",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {"200": _success(HealthResponse)},
        }
    }
    paths["/api/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        }
    }
    paths["/api/sessions/ws"] = {
        "get": {
            "operationId": "websocket",
            "summary": "WebSocket: subscribe to sessions and pipeline writes (SPEC §5)",
            "description": (
                "JSON text frames with `op`. Client: subscribe {session_id, after_seq?}, "
                "unsubscribe, subscribe_list, unsubscribe_list, append/delta/complete/edit/update "
                "(same fields as the POST endpoints, plus req_id), ping, auth {token}. Server: "
                "subscribed {session_id, seq}, event {session_id, seq, type, ts, data}, "
                "list_event {type, session}, ack {req_id, seq, message_id, duplicate}, "
                "error {req_id, code, error}, pong. Close codes: 1001 server shutting down, "
                "1009 frame too large, 4001 unauthorized, 4008 too slow (resubscribe with "
                "after_seq)."
            ),
            "parameters": [
                {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}
            ],
            "responses": {
                "101": {"description": "switching protocols"},
                **_errors("unauthorized", "forbidden"),
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sessionlog",
            "version": VERSION,
            "description": "Crash-safe, event-sourced chat and voice session store.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],  # the token is optional (--token)
    }


_document: bytes | None = None


async def openapi(request: web.Request) -> web.Response:
    global _document
    if _document is None:  # built once, on first use
        _document = msgspec.json.encode(build())
    return web.Response(body=_document, content_type="application/json")
