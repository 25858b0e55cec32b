"""A real sessionlog server on a free loopback port, in a thread with its own event loop.

For tests whose client needs a loop of its own (``RemoteBackend`` in the conformance
suite, the framework adapters): the server keeps running across the client's loops.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from eventlog.backends.remote import RemoteBackend
from server.app import make_app
from server.config import Config


class ThreadedServer:
    """``make_app`` served on 127.0.0.1:<free port> over ``data`` until ``stop()``."""

    def __init__(self, data: Path, **config: Any) -> None:
        config.setdefault("compact_interval", 0)
        self.config = Config(data=str(data), port=0, **config)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(self.config), access_log=None, shutdown_timeout=2)
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._start())
            except BaseException as e:
                failed.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="sessionlog-test-server", daemon=True)
        self.thread.start()
        ready.wait()
        if failed:
            raise failed[0]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port: int = self.runner.addresses[0][1]

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


class ServedRemote(RemoteBackend):
    """A ``RemoteBackend`` that owns its server: ``close`` stops both."""

    def __init__(self, data: Path, **kw: Any) -> None:
        self.server = ThreadedServer(data)
        super().__init__(self.server.url, **kw)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await asyncio.to_thread(self.server.stop)
