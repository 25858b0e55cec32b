"""Appends while another process dirties gigabytes on the same filesystem; run by hand,
it asserts nothing:

    .venv/bin/python bench/bench_dirty.py [--server-root TREE] [--gb 3] [--seconds 12]
        [--clients 32] [--dir DIR]

The server (``--fsync always``, nothing pinned) takes appends from ``--clients`` HTTP
clients, a session each, for ``--seconds``; two seconds in, ``dd`` writes ``--gb`` GB of
zeros into a file beside the data directory (buffered: the page cache fills with dirty
pages that the kernel writes back meanwhile). Printed: appends/s and latency p50, p99
and max. A flush of the whole filesystem (``syncfs``, eventlog/backends/file/fsflush.py)
would write ``dd``'s pages too, so this is where it must step aside for fdatasyncs; run
it again with ``--server-root`` on an older checkout to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import ALL_CPUS, http_load, pct, serve, start_sessions  # noqa: E402

MSG = "hello " * 20


async def main(a: argparse.Namespace) -> None:
    tree = Path(a.server_root).resolve() if a.server_root else HERE.parent
    tmp = Path(tempfile.mkdtemp(prefix="bench-dirty-", dir=a.dir))
    big = tmp / "big.bin"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    srv = serve("--data", str(tmp / "data"), "--fsync", "always", cwd=tree, env=env, cpus=ALL_CPUS)
    try:
        own = await start_sessions(srv.url, a.clients)

        async def dd() -> None:
            await asyncio.sleep(2)
            p = await asyncio.create_subprocess_exec(
                "dd", "if=/dev/zero", f"of={big}", "bs=1M", f"count={int(a.gb * 1024)}",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await p.wait()

        writer = asyncio.create_task(dd())
        rate, lat, _ = await http_load(
            f"{srv.url}api/sessions/append",
            lambda k: {"session_id": own[k], "role": "user", "content": MSG},
            a.clients,
            a.seconds,
        )
        await writer
        print(
            f"server tree {tree}: {a.clients} clients beside a {a.gb:g} GB dd: {rate:,.0f} "
            f"appends/s, p50 {pct(lat, 0.5) * 1e3:.1f} ms, p99 {pct(lat, 0.99) * 1e3:.1f} ms, "
            f"max {max(lat) * 1e3:.0f} ms; load average {os.getloadavg()[0]:.1f}"
        )
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-root", help="run the server from this source tree")
    p.add_argument("--gb", type=float, default=3.0, help="how much dd writes")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--dir", help="temporary data dir (and dd's file) under DIR")
    asyncio.run(main(p.parse_args()))
