"""A private event loop in a daemon thread, on which the adapters drive their backends.

Frameworks call history methods from anywhere: sync code, async code on the caller's
loop, several threads that each run their own loop. A ``Backend`` is bound to the loop
it runs on (its futures, its HTTP session), so the adapters never run it on the
caller's loop: every call is handed to this one loop and awaited from wherever it
came (``asyncio.wrap_future``) or waited for (sync callers). The adapters keep no
state bound to a caller's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The adapters' loop, started on first use (also after a fork)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            new = asyncio.new_event_loop()
            thread = threading.Thread(
                target=new.run_forever, name="sessionlog-adapters", daemon=True
            )
            thread.start()
            _loop, _thread = new, thread
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, loop())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the adapters' loop and wait for it (for sync callers)."""
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError(
            "a sync sessionlog adapter method was called from the adapters' own loop "
            "(e.g. from a listener): use the async method instead"
        )
    return submit(coro).result()


async def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the adapters' loop and await it from the caller's loop, whichever."""
    return await asyncio.wrap_future(submit(coro))


def _stop() -> None:
    if _loop is not None and _thread is not None and _thread.is_alive():
        _loop.call_soon_threadsafe(_loop.stop)
        _thread.join(5)


atexit.register(_stop)
