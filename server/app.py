"""The app factory: routes, middlewares, and the background work tied to the app's life.

Lifetime (aiohttp ``cleanup_ctx``, entered in order, left in reverse): the backend is
opened first and closed last (its close runs a final compaction); the compactor and the
file watcher run in between. ``on_shutdown`` closes WebSockets with 1001 before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from eventlog.backend import Backend
from eventlog.backends.file.backend import FileBackend

from .api import add_routes
from .config import Config
from .errors import ApiError, error_middleware
from .fanout import Broker
from .openapi import openapi
from .security import Guard, make_header_hook, make_middleware
from .state import BACKEND, BROKER, CONFIG, CONNECTIONS, GUARD
from .watch import watcher_ctx
from .ws import close_all, ws_handler

log = logging.getLogger("sessionlog.server")
STATIC = Path(__file__).with_name("static")


def make_app(config: Config, backend: Backend | None = None) -> web.Application:
    """A ready-to-run app. Pass ``backend`` to share one you own (it is not closed)."""
    guard = Guard(config)
    app = web.Application(
        middlewares=[error_middleware, make_middleware(guard)],
        # bodies are read by api.read_body with per-endpoint limits; this is the ceiling
        client_max_size=max(config.limits.body_bytes, config.limits.import_bytes),
    )
    app[CONFIG] = config
    app[GUARD] = guard
    app[BROKER] = Broker()
    app[CONNECTIONS] = set()
    app.cleanup_ctx.append(_backend_ctx(backend))
    app.cleanup_ctx.append(_compactor_ctx)
    app.cleanup_ctx.append(watcher_ctx)
    app.on_shutdown.append(close_all)
    app.on_response_prepare.append(make_header_hook(guard))

    add_routes(app)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/sessions/ws", ws_handler)
    app.router.add_get("/", index)
    # our own route, not add_static: a missing file must get the JSON 404 envelope
    # (aiohttp's static handler answers before the error middleware sees it)
    app.router.add_get("/static/{path:.*}", static_file)
    return app


def _backend_ctx(
    given: Backend | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        if given is not None:
            backend = given
        elif config.database:
            from eventlog.backends.postgres.backend import PostgresBackend

            # connects, migrates (refusing a newer schema) and starts listening
            backend = await PostgresBackend(config.database, read_url=config.read_database).open()
        else:
            # opening reconciles the index with the journals: keep it off the event loop
            backend = await asyncio.to_thread(
                FileBackend,
                os.path.abspath(config.data),
                fsync=config.fsync,
                cache_bytes=config.cache_mb << 20,
            )
        app[BACKEND] = backend
        unsubscribe = backend.subscribe(app[BROKER].on_notice)
        try:
            yield
        finally:
            unsubscribe()
            if given is None:
                await backend.close()  # flushes the index and compacts one last time

    return ctx


async def _compactor_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fold journals into their snapshots on the auto-save cadence (SPEC §2)."""
    interval = app[CONFIG].compact_interval
    if interval <= 0:
        yield
        return
    stop = asyncio.Event()

    async def run() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await app[BACKEND].compact()
            except Exception:
                log.exception("compaction failed; it will be retried")

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()  # let a compaction in progress finish rather than cancel it
        await task


async def index(request: web.Request) -> web.StreamResponse:
    page = STATIC / "index.html"
    if not page.is_file():
        raise ApiError("not_found", "the web page is not installed (server/static/index.html)")
    return web.FileResponse(page, headers={"Cache-Control": "no-cache"})


_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}$")


async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of the flat ``server/static/`` folder; anything else is a JSON 404."""
    name = request.match_info["path"]
    path = STATIC / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise ApiError("not_found", f"no static file {name!r}: the page's files are /static/<name>")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
