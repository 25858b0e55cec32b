"""Helpers shared by the by-hand benchmarks: quantiles and medians, a child server
process (ours, or a bare aiohttp echo as the anchor), its RSS and CPU time, and the
HTTP, WebSocket and fan-out load loops. Imported by the scripts beside it (run as
``bench/x.py``, this folder is first on ``sys.path``)."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent
# a taskset list of every CPU: a child started by a pinned process would inherit its pinning
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"

# -- numbers ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (the value at index ``int(q * n)``; the upper
    median for q=0.5 and an even n); NaN for no values. Any unit; ``values`` unsorted."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 0) -> float:
    """Median wall time of ``repeat`` calls of ``fn``, in ms, after ``warmup`` untimed
    calls (to warm caches the figure should not include)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e6


def median_ratio(figures: list[float], anchors: list[float]) -> float:
    """Median over rounds of each round's figure over the anchor of the same round: this
    machine's neighbours come and go, so a figure is compared with its neighbour in time."""
    return statistics.median(f / a for f, a in zip(figures, anchors, strict=True))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


# -- a child process --------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds a process has used so far; with ``children``, also its
    children's once they have exited and been waited for (a server's index-build workers:
    part of a cold start's cost). Per-request figures leave them out, or a worker reaped
    during one run would land there in a lump."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[11:15]: utime stime cutime cstime
    return sum(int(x) for x in fields[11 : 15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by every PostgreSQL process of this machine (backends and
    helpers of a local cluster): ``ps`` names them ``postgres``."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith(("postgres", "postmaster")):
                    total += cpu_seconds(int(pid))
        except OSError:  # gone meanwhile
            continue
    return total


def own_cpu_seconds() -> float:
    """This process's user + system CPU seconds (the load generator's cost)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Child:
    """A server in a child process (under ``taskset -c cpus`` if given), started and
    waited on until it prints its first line; ``url`` is the first http:// word of it."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        cpus: str | None = None,
    ) -> None:
        self.started = time.perf_counter()
        pin = ["taskset", "-c", cpus] if cpus is not None else []
        self.p = subprocess.Popen(
            [*pin, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.p.stdout is not None
        self.first_line = self.p.stdout.readline().strip()
        url = next((w for w in self.first_line.split() if w.startswith("http://")), None)
        if url is None:
            self.stop()
            cmd = " ".join(args)[:200]
            raise RuntimeError(f"server did not start: {cmd} said {self.first_line!r}")
        self.url = url if url.endswith("/") else url + "/"

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        if self.p.stdout:
            self.p.stdout.close()


def serve(*args: str, **child: Any) -> Child:
    """``python -m server serve --port 0 ARGS`` (of the tree in ``cwd``, default ours)."""
    return Child([sys.executable, "-m", "server", "serve", "--port", "0", *args], **child)


# The anchor: a bare aiohttp server that decodes and encodes the JSON an append carries
# (POST /echo), and acks WebSocket frames as an append would be (GET /ws).
ECHO_SERVER = """
import sys, msgspec
from aiohttp import web, WSMsgType
try:
    import uvloop
except ImportError:
    uvloop = None
async def echo(request):
    body = msgspec.json.decode(await request.read())
    return web.Response(body=msgspec.json.encode({"success": True, **body}),
                        content_type="application/json")
async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            frame = msgspec.json.decode(msg.data)
            await sock.send_str(msgspec.json.encode(
                {"op": "ack", "req_id": frame.get("req_id"), "seq": 1}).decode())
    return sock
app = web.Application()
app.router.add_post("/echo", echo)
app.router.add_get("/ws", ws)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
            print=lambda *a: print("ready http://127.0.0.1:%s/" % sys.argv[1], flush=True),
            loop=uvloop.new_event_loop() if uvloop and "--uvloop" in sys.argv else None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_server(uvloop: bool = False, **child: Any) -> Child:
    """``ECHO_SERVER`` on a free port (on uvloop if asked and installed)."""
    args = [sys.executable, "-c", ECHO_SERVER, str(free_port())]
    return Child(args + (["--uvloop"] if uvloop else []), **child)


async def wait_healthy(base: str, timeout: float = 600, interval: float = 0.01) -> None:
    """Poll ``/api/health`` every ``interval`` seconds until it answers 200."""
    deadline = time.perf_counter() + timeout
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() < deadline:
            try:
                async with http.get(f"{base}api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(interval)
    raise RuntimeError("server never became healthy")


async def start_sessions(base: str, n: int) -> list[str]:
    async with aiohttp.ClientSession() as http:
        out = []
        for _ in range(n):
            async with http.post(f"{base}api/sessions/start", json={}) as r:
                out.append((await r.json())["session_id"])
        return out


# -- load -------------------------------------------------------------------------------------


async def http_load(
    url: str,
    bodies: Callable[[int], dict],
    clients: int,
    seconds: float,
    pid: int | None = None,
) -> tuple[float, list[float], float]:
    """``clients`` keep-alive loops POST ``bodies(k)`` for ``seconds`` (after one untimed
    request each opens the connections): requests per second, latencies, and process
    ``pid``'s own CPU seconds per timed request (NaN without a pid)."""
    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:

        async def once(k: int) -> None:
            async with http.post(url, json=bodies(k)) as r:
                await r.read()

        await asyncio.gather(*(once(k) for k in range(clients)))
        deadline = time.perf_counter() + seconds

        async def loop(k: int) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with http.post(url, json=bodies(k)) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(await r.text())
                lat.append(time.perf_counter() - t0)

        t0, cpu0 = time.perf_counter(), cpu_seconds(pid) if pid is not None else 0.0
        await asyncio.gather(*(loop(k) for k in range(clients)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0 if pid is not None else float("nan")
    return len(lat) / elapsed, lat, cpu / max(len(lat), 1)


async def ws_load(
    url: str,
    frames: Callable[[int, int], dict],
    clients: int,
    seconds: float,
    pid: int | None = None,
) -> tuple[float, list[float], float]:
    """``clients`` WebSockets each send ``frames(k, n)`` and wait for its ack, for
    ``seconds``: frames per second, round trips, and process ``pid``'s own CPU seconds
    per frame (NaN without a pid)."""
    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [await http.ws_connect(url) for _ in range(clients)]
        deadline = time.perf_counter() + seconds

        async def loop(k: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            n = 0
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await ws.send_str(msgspec.json.encode(frames(k, n)).decode())
                frame = msgspec.json.decode((await ws.receive()).data)
                if frame.get("op") != "ack":
                    raise RuntimeError(frame)
                lat.append(time.perf_counter() - t0)
                n += 1

        t0, cpu0 = time.perf_counter(), cpu_seconds(pid) if pid is not None else 0.0
        await asyncio.gather(*(loop(k, ws) for k, ws in enumerate(sockets)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0 if pid is not None else float("nan")
        for ws in sockets:
            await ws.close()
    return len(lat) / elapsed, lat, cpu / max(len(lat), 1)


async def subscribe(
    http: aiohttp.ClientSession, base: str, sid: str, n: int
) -> list[aiohttp.ClientWebSocketResponse]:
    """``n`` WebSockets (browser windows) subscribed to ``sid`` on the server at ``base``."""
    windows = []
    for _ in range(n):
        ws = await http.ws_connect(f"{base}api/sessions/ws")
        await ws.send_json({"op": "subscribe", "session_id": sid})
        if (answer := await ws.receive_json())["op"] != "subscribed":
            raise RuntimeError(answer)
        windows.append(ws)
    return windows


async def fanout_round(
    http: aiohttp.ClientSession,
    writer_base: str,
    windows: list[aiohttp.ClientWebSocketResponse],
    sid: str,
    n: int,
) -> tuple[list[float], list[float], list[float]]:
    """``n`` appends to ``sid`` through a WebSocket on ``writer_base``, one at a time; for
    each, the time until the last of ``windows`` has it: from the send, from the ack (0
    when the event beats the ack), and from the first window's receipt (the spread)."""
    got: dict[int, list[float]] = {}
    done: dict[int, asyncio.Event] = {}

    async def window(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            t = time.perf_counter()
            frame = msgspec.json.decode(msg.data)
            if frame.get("op") != "event":
                continue
            arrivals = got.setdefault(frame["seq"], [])
            arrivals.append(t)
            if len(arrivals) == len(windows):
                done.setdefault(frame["seq"], asyncio.Event()).set()

    readers = [asyncio.create_task(window(ws)) for ws in windows]
    writer = await http.ws_connect(f"{writer_base}api/sessions/ws")
    from_send: list[float] = []
    from_ack: list[float] = []
    spread: list[float] = []
    try:
        for i in range(n):
            t_send = time.perf_counter()
            await writer.send_json(
                {
                    "op": "append",
                    "req_id": i,
                    "session_id": sid,
                    "role": "assistant",
                    "content": "token " * 10,
                }
            )
            ack = await writer.receive_json()
            t_ack = time.perf_counter()
            if ack["op"] != "ack":
                raise RuntimeError(ack)
            await asyncio.wait_for(done.setdefault(ack["seq"], asyncio.Event()).wait(), 30)
            arrivals = got.pop(ack["seq"])
            last = max(arrivals)
            from_send.append(last - t_send)
            from_ack.append(max(0.0, last - t_ack))
            spread.append(last - min(arrivals))
    finally:
        await writer.close()
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return from_send, from_ack, spread
