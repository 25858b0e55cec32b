"""The remote client's append round trip against a raw HTTP append, same server.

    .venv/bin/python bench/bench_remote.py [--appends 1000] [--rounds 5] [--fsync always]

One ``python -m server serve`` process; this process is the client. Sequential
appends (one in flight: a round trip each), alternating in rounds between:

- raw: aiohttp POST of the JSON body to /api/sessions/append on a keep-alive
  connection, answer read and decoded (what a hand-written client does);
- remote: ``RemoteBackend.append(AppendRequest(...))`` (adds an event id for safe
  retries, decodes the answer into the engine's ``Result``).

Prints p50/p99 per round, medians over rounds and the median of the per-round ratio
of p50s. Goal: remote <= 1.1x raw. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import pct, serve  # noqa: E402

from eventlog.backends.remote import RemoteBackend  # noqa: E402
from eventlog.requests import AppendRequest, StartRequest  # noqa: E402


async def raw_round(url: str, sid: str, n: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http:
        for i in range(n):
            body = msgspec.json.encode({"session_id": sid, "role": "user", "content": f"raw {i}"})
            t = time.perf_counter()
            async with http.post(
                url + "/api/sessions/append",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as r:
                answer = msgspec.json.decode(await r.read())
            out.append(time.perf_counter() - t)
            assert answer["success"], answer
    return out


async def remote_round(url: str, sid: str, n: int) -> list[float]:
    out = []
    b = RemoteBackend(url)
    try:
        for i in range(n):
            req = AppendRequest(session_id=sid, role="user", content=f"remote {i}")
            t = time.perf_counter()
            await b.append(req)
            out.append(time.perf_counter() - t)
    finally:
        await b.close()
    return out


async def main(args: argparse.Namespace) -> None:
    data = tempfile.mkdtemp(prefix="bench-remote-")
    server = serve("--data", data, "--fsync", args.fsync, "--compact-interval", "0")
    try:
        url = server.url.rstrip("/")
        setup = RemoteBackend(url)
        raw_sid = (await setup.start(StartRequest(title="raw"))).session_id
        remote_sid = (await setup.start(StartRequest(title="remote"))).session_id
        await setup.close()
        await raw_round(url, raw_sid, 50)  # warm both paths up
        await remote_round(url, remote_sid, 50)
        print(
            f"load average {os.getloadavg()[0]:.2f}; fsync={args.fsync}; "
            f"{args.appends} sequential appends per side per round"
        )
        print(
            f"{'round':>5} {'raw p50':>9} {'raw p99':>9} {'remote p50':>11} {'remote p99':>11} {'ratio':>6}"
        )
        raws, remotes, ratios = [], [], []
        for r in range(args.rounds):
            raw = await raw_round(url, raw_sid, args.appends)
            rem = await remote_round(url, remote_sid, args.appends)
            ratio = pct(rem, 0.5) / pct(raw, 0.5)
            raws.append(pct(raw, 0.5))
            remotes.append(pct(rem, 0.5))
            ratios.append(ratio)
            print(
                f"{r + 1:>5} {pct(raw, 0.5) * 1e6:>7.0f}us {pct(raw, 0.99) * 1e6:>7.0f}us "
                f"{pct(rem, 0.5) * 1e6:>9.0f}us {pct(rem, 0.99) * 1e6:>9.0f}us {ratio:>6.3f}"
            )
        print(
            f"median p50: raw {statistics.median(raws) * 1e6:.0f} us, remote "
            f"{statistics.median(remotes) * 1e6:.0f} us; median ratio "
            f"{statistics.median(ratios):.3f} (goal <= 1.1)"
        )
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--appends", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--fsync", choices=("always", "interval", "never"), default="always")
    asyncio.run(main(p.parse_args()))
