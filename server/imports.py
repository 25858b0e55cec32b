"""``POST /api/sessions/import``: an ``events`` backup or a ChatGPT/Claude.ai/Open WebUI
export (JSON or .zip), recognised by content (SPEC §11).

The body is spooled to a temporary file (bounded by ``Limits.import_bytes``) and read
from there as a stream, so a large export never sits in memory. Query parameters:
``replace=true`` replaces sessions that exist (the default skips and reports them);
``whole=true`` restores an ``events`` backup all or nothing (409 if any session exists:
what ``Backend.import_events`` promises, used by the remote client);
``filename=`` names the upload in error messages; ``progress=true`` answers with
NDJSON progress lines (``{"phase", "done", "total"}``) and then the result object
(``success`` true or false), for the page's progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

import msgspec
from aiohttp import web

from eventlog.imports import ImportReport, import_files

from .errors import ApiError, describe
from .state import BACKEND, CONFIG

IMPORT_TYPES = frozenset(
    {
        "application/json",
        "application/jsonl",
        "application/x-ndjson",
        "application/zip",
        "application/x-zip-compressed",
        "application/octet-stream",
    }
)
_encoder = msgspec.json.Encoder()
_TRUE = ("1", "true", "yes")


async def _spool(request: web.Request, limit: int) -> str:
    """The body in a temp file (its path); 415 for another media type, 413 past ``limit``."""
    if request.content_type not in IMPORT_TYPES:
        got = request.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(
            "unsupported_media_type",
            f"send the export as {' or '.join(sorted(IMPORT_TYPES))} (got {got})",
        )
    too_large = ApiError(
        "payload_too_large", f"the import is larger than the limit of {limit} bytes"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    fd, path = tempfile.mkstemp(prefix="sessionlog-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            size = 0
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise too_large
                await asyncio.to_thread(f.write, chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _ok(report: ImportReport) -> bytes:
    return b'{"success":true,' + _encoder.encode(report)[1:]


async def import_sessions(request: web.Request) -> web.StreamResponse:
    replace = request.query.get("replace", "").lower() in _TRUE
    name = request.query.get("filename") or "the uploaded file"
    path = await _spool(request, request.app[CONFIG].limits.import_bytes)
    try:
        if request.query.get("whole", "").lower() in _TRUE:
            data = await asyncio.to_thread(Path(path).read_bytes)
            imported = await request.app[BACKEND].import_events(data)
            return web.Response(
                body=_ok(ImportReport(imported=imported)), content_type="application/json"
            )
        if request.query.get("progress", "").lower() in _TRUE:
            return await _with_progress(request, path, name, replace)
        report = await import_files(request.app[BACKEND], [(path, name)], replace=replace)
        return web.Response(body=_ok(report), content_type="application/json")
    finally:
        os.unlink(path)


async def _with_progress(
    request: web.Request, path: str, name: str, replace: bool
) -> web.StreamResponse:
    """NDJSON: progress lines as the import goes, then the result (or the error)."""
    # the newest (done, total) of each phase, set from the import's threads; each phase's
    # last value is always sent, so the bar passes every phase however fast it goes
    latest: dict[str, tuple[int, int]] = {}

    def progress(phase: str, done: int, total: int) -> None:
        latest[phase] = (done, total)

    task = asyncio.ensure_future(
        import_files(request.app[BACKEND], [(path, name)], replace=replace, progress=progress)
    )
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    sent: dict[str, tuple[int, int]] = {}
    try:
        while True:
            await asyncio.wait([task], timeout=0.1)
            for phase, (done, total) in list(latest.items()):
                if sent.get(phase) != (done, total):
                    sent[phase] = (done, total)
                    line = {"phase": phase, "done": done, "total": total}
                    await resp.write(_encoder.encode(line) + b"\n")
            if task.done():
                break
        try:
            body = _ok(task.result())
        except Exception as e:  # the status line is out: the error goes in the last line
            status, code, message, extra = describe(e)
            body = _encoder.encode(
                {"success": False, "error": message, "code": code, "status": status, **extra}
            )
        await resp.write(body + b"\n")
        await resp.write_eof()
    except ConnectionError:
        pass  # the page went away; the import still finishes
    finally:
        if not task.done():
            with contextlib.suppress(Exception):
                await task
    return resp
