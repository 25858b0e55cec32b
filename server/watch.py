"""Notice journals that other processes change (a CLI, a voice capture process writing
through ``eventlog`` directly) and let the backend publish what they wrote (SPEC §3).

The backend does the real work in ``refresh``: new lines of a watched session become
events for its subscribers, a new journal becomes ``session.started``, a vanished one
``session.deleted``. This task only maps file changes to session ids, quickly: events
must reach subscribers within half a second, so the debounce is short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator

from aiohttp import web
from watchfiles import Change, awatch

from eventlog.backends.file.priority import demote_threads_named
from eventlog.requests import SESSION_ID_PATTERN

from .state import BACKEND, CONFIG

log = logging.getLogger("sessionlog.server")
_SID = re.compile(SESSION_ID_PATTERN)

DEBOUNCE_MS = 50  # how long a burst of changes is gathered before it is handled
STEP_MS = 20  # how often the watcher thread checks for changes and for stop


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def journal_filter(change: Change, path: str) -> bool:
    """Journals, and new day folders; snapshots (.json), temp and .torn files are ours
    or derived."""
    if path.endswith(".jsonl"):
        return True
    return change == Change.added and _DAY.match(os.path.basename(path)) is not None


def journals_in(folder: str) -> list[str]:
    """The journals already in a folder that just appeared. A new folder is watched
    only from when the watcher sees it: a journal created in it before then (the first
    session of a day, started by another process) sends no event of its own."""
    try:
        return [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".jsonl")]
    except OSError:  # gone again, or not a folder
        return []


def session_of(path: str) -> str | None:
    """The session id a journal path names, or None for anything else."""
    name = os.path.basename(path)[: -len(".jsonl")]
    return name if _SID.match(name) else None


async def watch_journals(app: web.Application, folder: str, stop: asyncio.Event) -> None:
    backend = app[BACKEND]
    refresh = getattr(backend, "refresh", None)
    if refresh is None:
        return  # a backend that is not file-based publishes other writers' events itself
    async for changes in awatch(
        folder,
        watch_filter=journal_filter,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        recursive=True,
        ignore_permission_denied=True,
    ):
        paths = [path for _, path in changes if path.endswith(".jsonl")]
        for _, path in changes:
            if not path.endswith(".jsonl"):
                paths += await asyncio.to_thread(journals_in, path)
        sids = {sid for path in paths if (sid := session_of(path)) is not None}
        results = await asyncio.gather(*(refresh(sid) for sid in sids), return_exceptions=True)
        for sid, result in zip(sids, results, strict=True):
            if isinstance(result, Exception):
                log.warning("could not pick up changes to session %s: %s", sid, result)


async def watcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the watcher runs for the app's lifetime."""
    config = app[CONFIG]
    folder = os.path.join(os.path.abspath(config.data), "sessions")
    if not config.watch or not os.path.isdir(folder):
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_supervise(app, folder, stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 2)


def _demote_watcher_thread(loop: asyncio.AbstractEventLoop, tries: int = 20) -> None:
    """The watcher's own thread (watchfiles' notify-rs) wakes on every journal write,
    ours included; it must not preempt the loop for that, since its news can wait a
    moment. It exists once the watcher has started: look for it every half second."""
    if demote_threads_named("notify-rs") == 0 and tries > 1:
        loop.call_later(0.5, _demote_watcher_thread, loop, tries - 1)


async def _supervise(app: web.Application, folder: str, stop: asyncio.Event) -> None:
    """Keep watching even if the watcher fails (e.g. the folder was briefly unavailable)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        loop.call_soon(_demote_watcher_thread, loop)
        try:
            await watch_journals(app, folder, stop)
            return
        except Exception:
            log.exception("file watcher failed; restarting it in 1 s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)
