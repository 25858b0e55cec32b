"""Benchmark the server over real sockets; run by hand, it reports and asserts nothing.

    .venv/bin/python bench/bench_server.py [--seconds 5] [--clients 32] [--windows 100]
                                           [--sessions 100000] [--rounds 3] [--skip-startup]

Every server runs in its own process (a bare aiohttp JSON echo as the baseline, then
``python -m server serve``); this process is the load generator. Measured:

- HTTP: echo vs durable ``/append`` (fsync=always) with N keep-alive clients, on one
  shared session (group commit) and on one session per client; req/s, p50/p99;
  alternating for R rounds, medians (and the median of the per-round ratios).
  Goal: append >= 50% of echo.
- WebSocket: durable append + ack round trips with N clients.
- Fan-out: one writer, W subscribed windows; time from the writer's ack (and from its
  send) to the last window's receipt. Goal p99 < 5 ms.
- Start-up with S sessions on disk (journals written directly): process start until
  /api/health answers, cold (index built) and warm; RSS after a list call.
  Goal start < 2 s, RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    echo_server,
    fanout_round,
    http_load,
    ms,
    pct,
    rss_mib,
    serve,
    start_sessions,
    subscribe,
    us,
    wait_healthy,
    ws_load,
)

from eventlog.events import (  # noqa: E402
    MessageAppended,
    MessageAppendedData,
    SessionStarted,
    SessionStartedData,
    encode_line,
    new_event_id,
)

rows: list[tuple[str, str, str]] = []


def report(name: str, value: str, note: str = "") -> None:
    rows.append((name, value, note))
    print(f"  {name:<46} {value:<28} {note}", flush=True)


# -- HTTP -------------------------------------------------------------------------------------


async def bench_http(args: argparse.Namespace, base: str) -> None:
    """Echo and append runs alternate, ``--rounds`` times: this machine's neighbours
    come and go, so each append rate is compared with the echo rate of its own round."""
    echo = echo_server()
    [shared] = await start_sessions(base, 1)
    own = await start_sessions(base, args.clients)
    body = {"session_id": "x" * 12, "role": "user", "content": "hello " * 20}
    cases: list[tuple[str, str, Callable[[int], dict], int]] = [
        (
            "HTTP echo baseline (bare aiohttp)",
            f"{echo.url}echo",
            lambda k: body,
            echo.p.pid,
        ),
    ]
    for label, pick in (
        ("one shared session", lambda k: shared),
        ("one session per client", lambda k: own[k]),
    ):
        cases.append(
            (
                f"HTTP durable append, {label}",
                f"{base}api/sessions/append",
                lambda k, pick=pick: {
                    "session_id": pick(k),
                    "role": "user",
                    "content": "hello " * 20,
                },
                args.server_pid,
            )
        )
    runs: dict[str, list[tuple[float, list[float], float]]] = {c[0]: [] for c in cases}
    try:
        for _ in range(args.rounds):
            for label, url, bodies, pid in cases:
                runs[label].append(await http_load(url, bodies, args.clients, args.seconds, pid))
    finally:
        echo.stop()
    echo_runs = runs[cases[0][0]]
    for label, *_ in cases:
        rates = [r for r, _, _ in runs[label]]
        lat = [x for _, ls, _ in runs[label] for x in ls]
        cpu = statistics.median(c for _, _, c in runs[label])
        ratios = [r / e for r, (e, _, _) in zip(rates, echo_runs, strict=True)]
        vs_echo = "" if label == cases[0][0] else f" = {statistics.median(ratios):.0%} of echo"
        report(
            label,
            f"{statistics.median(rates):,.0f} req/s{vs_echo}",
            f"p50 {ms(pct(lat, 0.5))} p99 {ms(pct(lat, 0.99))}, server CPU {us(cpu)}/req; "
            f"rounds {'/'.join(f'{r:,.0f}' for r in rates)}"
            + (f" ({'/'.join(f'{x:.0%}' for x in ratios)})" if vs_echo else ""),
        )


# -- WebSocket ---------------------------------------------------------------------------------


async def bench_ws(args: argparse.Namespace, base: str) -> None:
    [sid] = await start_sessions(base, 1)
    rate, lat, cpu = await ws_load(
        f"{base}api/sessions/ws",
        lambda k, n: {
            "op": "append",
            "req_id": n,
            "session_id": sid,
            "role": "user",
            "content": "hello " * 20,
        },
        args.clients,
        args.seconds,
        args.server_pid,
    )
    report(
        f"WS durable append+ack, {args.clients} clients",
        f"{rate:,.0f} msg/s",
        f"p50 {ms(pct(lat, 0.5))} p99 {ms(pct(lat, 0.99))}, server CPU {us(cpu)}/msg",
    )


async def bench_fanout(args: argparse.Namespace, base: str) -> None:
    [sid] = await start_sessions(base, 1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        windows = await subscribe(http, base, sid, args.windows)
        from_send, from_ack, spread = await fanout_round(
            http, base, windows, sid, args.fanout_messages
        )
        for ws in windows:
            await ws.close()
    report(
        f"Fan-out to {args.windows} windows: ack -> last receipt",
        f"p50 {ms(pct(from_ack, 0.5))}",
        f"p99 {ms(pct(from_ack, 0.99))} (goal p99 < 5 ms)",
    )
    report(
        f"Fan-out to {args.windows} windows: first -> last receipt",
        f"p50 {ms(pct(spread, 0.5))}",
        f"p99 {ms(pct(spread, 0.99))}",
    )
    report(
        f"Fan-out to {args.windows} windows: send -> last receipt",
        f"p50 {ms(pct(from_send, 0.5))}",
        f"p99 {ms(pct(from_send, 0.99))} (includes the fsync)",
    )


# -- start-up with many sessions -------------------------------------------------------------------


def write_sessions(root: Path, n: int) -> None:
    """n small journals (started + 2 messages) spread over a year of date folders."""
    now = datetime(2026, 2, 9, 12, tzinfo=UTC)
    for i in range(n):
        t = now - timedelta(minutes=5 * i)
        ts = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        folder = root / "sessions" / ts[:10]
        if i == 0 or not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
        sid = secrets.token_hex(6)
        lines = [
            SessionStarted(
                seq=1,
                id=new_event_id(),
                ts=ts,
                data=SessionStartedData("User", {"type": "chat"}, ""),
            ),
            MessageAppended(
                seq=2,
                id=new_event_id(),
                ts=ts,
                data=MessageAppendedData(
                    f"m{i}a", "user", f"question number {i} about things", ts, {}
                ),
            ),
            MessageAppended(
                seq=3,
                id=new_event_id(),
                ts=ts,
                data=MessageAppendedData(f"m{i}b", "assistant", "an answer " * 8, ts, {}),
            ),
        ]
        (folder / f"{sid}.jsonl").write_bytes(b"".join(encode_line(e) for e in lines))


async def bench_startup(args: argparse.Namespace, data: Path) -> None:
    t0 = time.perf_counter()
    write_sessions(data, args.sessions)
    report(f"Generate {args.sessions:,} journals", f"{time.perf_counter() - t0:.1f} s", "")
    for label in ("cold: builds the index", "warm: index present"):
        proc = serve("--data", str(data), "--fsync", "never")
        base = proc.url
        try:
            await wait_healthy(base)
            started = time.perf_counter() - proc.started
            async with aiohttp.ClientSession() as http:
                t1 = time.perf_counter()
                async with http.post(f"{base}api/sessions/list", json={}) as r:
                    total = (await r.json())["total_sessions"]
                first_page = time.perf_counter() - t1
            report(
                f"Start-up with {total:,} sessions ({label})",
                f"{started:.2f} s",
                f"RSS {rss_mib(proc.p.pid):.0f} MiB, first list page {ms(first_page)} "
                "(goal < 2 s, < 200 MB)",
            )
        finally:
            proc.stop()


# -- main ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        proc = serve("--data", str(tmp / "live"), "--fsync", args.fsync)
        base = proc.url
        try:
            await wait_healthy(base)
            args.server_pid = proc.p.pid
            print(f"server {base} (fsync={args.fsync}), {os.cpu_count()} cores", flush=True)
            phases: list[Callable[[argparse.Namespace, str], Awaitable[None]]] = [
                bench_http,
                bench_ws,
                bench_fanout,
            ]
            for phase in phases:
                await phase(args, base)
            report("Server RSS after the load phases", f"{rss_mib(proc.p.pid):.0f} MiB", "")
        finally:
            proc.stop()
        if not args.skip_startup:
            await bench_startup(args, tmp / "many")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| measurement | result | detail |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per throughput phase")
    p.add_argument("--rounds", type=int, default=3, help="echo/append alternations")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--windows", type=int, default=100)
    p.add_argument("--fanout-messages", type=int, default=500)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--fsync", default="always", choices=("always", "interval", "never"))
    p.add_argument("--skip-startup", action="store_true")
    asyncio.run(main(p.parse_args()))
