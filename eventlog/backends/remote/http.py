"""One aiohttp client session to a server: POSTs with retries, and the error mapping.

A retry happens only where repeating the request cannot write twice: anything before
the request left this machine (connection refused, DNS), and, after it may have left,
only requests the server deduplicates (writes carry an event ``id``, reads change
nothing). Error answers (4xx/5xx) are never retried: they are decisions, not accidents.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp

from .errors import ServerUnavailable, error_from

# Whether a request may be sent again once it may have reached the server.
SAFE = "safe"  # reads, and writes the server deduplicates by event id
ONCE = "once"  # retried only if it never left (start, import)


class Http:
    """The HTTP half of ``RemoteBackend``, usable from any event loop."""

    def __init__(
        self, base: str, token: str | None, timeout: float, retries: int, retry_delay: float
    ) -> None:
        self.base = base
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self.retries = retries
        self.retry_delay = retry_delay
        # one connection pool per event loop: aiohttp's are bound to the loop they
        # were made on, and a caller may use one backend from several loops
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            for gone in [lp for lp in self._sessions if lp.is_closed()]:
                del self._sessions[gone]
            session = self._sessions[loop] = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=0)
            )
        return session

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        retry: str = SAFE,
        session_id: str | None = None,
        expected_seq: int | None = None,
        content_type: str | None = None,
    ) -> bytes:
        """POST ``body`` and return the 200 answer's bytes, or raise the mapped error."""
        return (
            await self.send(
                path,
                body,
                retry=retry,
                session_id=session_id,
                expected_seq=expected_seq,
                content_type=content_type,
            )
        )[0]

    async def send(
        self,
        path: str,
        body: bytes,
        *,
        retry: str = SAFE,
        session_id: str | None = None,
        expected_seq: int | None = None,
        content_type: str | None = None,
    ) -> tuple[bytes, bool]:
        """``post``, also saying whether the request was sent again after an attempt
        that may have reached the server (then a "duplicate" may be our own first try)."""
        resent = False
        headers = (
            self.headers if content_type is None else {**self.auth, "Content-Type": content_type}
        )
        url = self.base + path
        attempt = 0
        while True:
            try:
                async with self.session().post(url, data=_payload(body), headers=headers) as resp:
                    data = await resp.read()
                    if resp.status == 200:
                        return data, resent
                    raise error_from(resp.status, data, session_id, expected_seq)
            except aiohttp.ClientConnectorError as e:  # never reached the server
                err: Exception = e
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                if retry != SAFE:
                    raise ServerUnavailable(
                        f"the connection to {self.base} broke during {path}; it may or may not "
                        f"have been carried out: check before repeating it ({e!r})"
                    ) from e
                err = e
                resent = True
            attempt += 1
            if attempt > self.retries:
                raise ServerUnavailable(
                    f"cannot reach the sessionlog server at {self.base} ({path}, "
                    f"{attempt} attempts): {err!r}; is it running, and is the URL right?"
                ) from err
            await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))

    async def get(self, path: str) -> bytes:
        attempt = 0
        while True:
            try:
                async with self.session().get(self.base + path, headers=self.auth) as resp:
                    data = await resp.read()
                    if resp.status == 200:
                        return data
                    raise error_from(resp.status, data)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                attempt += 1
                if attempt > self.retries:
                    raise ServerUnavailable(
                        f"cannot reach the sessionlog server at {self.base} ({path}): {e!r}"
                    ) from e
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))

    async def stream(self, path: str, body: bytes, session_id: str | None) -> AsyncIterator[bytes]:
        """POST and, once the server said 200, the answer's body in chunks; an error
        answer raises here, before any chunk (as ``Backend.export`` promises)."""
        attempt = 0
        while True:
            try:
                resp = await self.session().post(
                    self.base + path, data=_payload(body), headers=self.headers
                )
                break
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                attempt += 1
                if attempt > self.retries:
                    raise ServerUnavailable(
                        f"cannot reach the sessionlog server at {self.base} ({path}): {e!r}"
                    ) from e
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
        if resp.status != 200:
            try:
                data = await resp.read()
            finally:
                resp.release()
            raise error_from(resp.status, data, session_id)
        return _chunks(resp)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        sessions, self._sessions = self._sessions, {}
        for owner, session in sessions.items():
            if owner is loop:
                await session.close()
            elif owner.is_running():  # another live loop's pool is closed on that loop
                asyncio.run_coroutine_threadsafe(session.close(), owner)


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(1 << 16):
            yield chunk
    except aiohttp.ClientPayloadError as e:  # the server cut it: say so, never a short file
        raise ServerUnavailable(f"the export was cut off mid-stream: {e!r}") from e
    finally:
        resp.release()


def ws_url(base: str) -> str:
    return "ws" + base[4:] + "/api/sessions/ws" if base.startswith("http") else base


def _payload(body: bytes) -> bytes | io.BytesIO:
    """A large body as a stream (aiohttp sends it in chunks rather than copying it on the
    event loop), a fresh one for each attempt so a retry sends it whole again."""
    return io.BytesIO(body) if len(body) > 1 << 20 else body
