"""Shared fixtures: a real store in a temp data directory."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings

from eventlog.backends.file.store import Store
from eventlog.requests import StartRequest
from server.app import make_app
from server.config import Config

# A shared CI machine may be slow at any moment: no hypothesis test may fail for timing
# (the too_slow health check failed test_fold once on a loaded machine; issue 11).
# Tests that pass their own ``suppress_health_check`` list too_slow there as well.
settings.register_profile(
    "shared-machine",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("shared-machine")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "memory"
    d.mkdir()
    return d


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    s = Store(data_dir)
    yield s
    s.close()


@pytest.fixture
def session_id(store: Store) -> str:
    return store.start(StartRequest(title="fixture")).session_id


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes: compare before/after to prove nothing changed.

    The SQLite index and id store (derived data) are left out: reading them may touch
    their WAL/SHM files.
    """
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.startswith(("index.sqlite3", "ids.sqlite3")):
                continue
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


# -- server fixtures (tests/test_server_*.py) ---------------------------------------------


class Api:
    """A JSON client for one in-process server: ``post`` returns (status, body dict)."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.server: TestServer = client.server  # type: ignore[assignment]

    @property
    def app(self) -> Any:
        return self.server.app

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        if not path.startswith("/"):
            path = "/api/sessions/" + path
        if body is not None:
            kw["json"] = body
        async with self.client.post(path, **kw) as r:
            return r.status, json.loads(await r.read())

    async def ok(self, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        status, out = await self.post(path, body, **kw)
        assert status == 200 and out["success"] is True, (status, out)
        return out

    async def start(self, **body: Any) -> str:
        return str((await self.ok("start", body))["session_id"])

    async def ws(self, **kw: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.client.ws_connect("/api/sessions/ws", **kw)


MakeServer = Callable[..., Awaitable[TestServer]]


@pytest_asyncio.fixture
async def make_server(aiohttp_server: Any, data_dir: Path) -> MakeServer:
    """Start an in-process server on a free loopback port; keyword args go to Config."""

    async def make(**kw: Any) -> TestServer:
        kw.setdefault("data", str(data_dir))
        kw.setdefault("port", 0)
        kw.setdefault("compact_interval", 0)  # tests compare files: no background writes
        return await aiohttp_server(make_app(Config(**kw)))  # type: ignore[no-any-return]

    return make


@pytest_asyncio.fixture
async def make_api(make_server: MakeServer, aiohttp_client: Any) -> Callable[..., Awaitable[Api]]:
    async def make(**kw: Any) -> Api:
        return Api(await aiohttp_client(await make_server(**kw)))

    return make


@pytest_asyncio.fixture
async def api(
    request: pytest.FixtureRequest, make_api: Callable[..., Awaitable[Api]]
) -> AsyncIterator[Api]:
    """A server over a data directory; tests marked ``@both_backends`` run once more
    over a fresh PostgreSQL database."""
    if getattr(request, "param", "file") == "file":
        yield await make_api()
        return
    from tests.pg import create_database, drop_database

    url = await create_database()
    try:
        yield await make_api(database=url)
    finally:
        await drop_database(url)


both_backends = pytest.mark.parametrize("api", ["file", "postgres"], indirect=True)


class ServerProcess:
    """``python -m server serve`` in a child process on a free port."""

    def __init__(self, data: Path, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [PYTHON, "-m", "server", "serve", "--port", "0", "--data", str(data), *args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.stdout = b""
        self.url = self._wait_for_url(timeout=20)
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def _wait_for_url(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.stdout:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"server did not start: {self.stdout!r} {self.stderr()!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                self.stdout += chunk
        line = self.stdout.split(b"\n", 1)[0].decode()
        return line.split()[2]  # "sessionlog serving http://127.0.0.1:PORT/ ..."

    def stderr(self) -> bytes:
        return self._drain(self.proc.stderr)

    def _drain(self, pipe: Any) -> bytes:
        if pipe is None or pipe.closed or self.proc.poll() is None:
            return b""
        data = pipe.read()
        pipe.close()
        return bytes(data)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the server and wait for it; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.fixture
def server_process(data_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory for ``ServerProcess``es (all killed at teardown)."""
    started: list[ServerProcess] = []

    def start(*args: str, data: Path | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        p = ServerProcess(data or data_dir, *args, env=env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


@pytest_asyncio.fixture
async def pg_url() -> Any:
    """A fresh PostgreSQL database (skips locally without one; fails in CI)."""
    from tests.pg import create_database, drop_database

    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest_asyncio.fixture(params=["file", "postgres", "remote"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Each backend in turn (tests/backends.py): the shared suites run against all."""
    from tests.backends import open_backend

    async with open_backend(request.param, tmp_path / "data") as b:
        yield b
