"""A loopback TCP proxy that can break connections the way networks do, for client tests.

``drop_all()`` aborts every connection through it (a WebSocket or keep-alive socket
dies mid-stream); ``lose_answer(marker)`` lets the next request containing ``marker``
reach the server, then cuts the client off before the answer gets back (the write
happened; the client cannot know).
"""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.conns: set[asyncio.StreamWriter] = set()
        self.lose: list[bytes] = []  # markers whose next request loses its answer
        self.lost = 0  # answers lost so far
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self._host = f"127.0.0.1:{self.port}".encode()
        self._upstream_host = f"127.0.0.1:{self.upstream_port}".encode()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lose_answer(self, marker: bytes) -> None:
        self.lose.append(marker)

    def drop_all(self) -> None:
        for w in list(self.conns):
            w.transport.abort()
        self.conns.clear()

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.conns |= {cwriter, uwriter}
        cut = asyncio.Event()

        async def up() -> None:
            while data := await creader.read(65536):
                hit = next((m for m in self.lose if m in data), None)
                if hit is not None:  # before forwarding: the answer cannot outrun it
                    self.lose.remove(hit)
                    cut.set()
                # the server allows only its own Host: name the server, not the proxy
                uwriter.write(data.replace(self._host, self._upstream_host))
                await uwriter.drain()

        async def down() -> None:
            while data := await ureader.read(65536):
                if cut.is_set():  # the request ran; its answer never reaches the client
                    self.lost += 1
                    cwriter.transport.abort()
                    uwriter.transport.abort()
                    return
                cwriter.write(data)
                await cwriter.drain()

        try:
            await asyncio.gather(up(), down())
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a connection we broke, or the proxy closing
        finally:
            for w in (cwriter, uwriter):
                self.conns.discard(w)
                w.transport.abort()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
