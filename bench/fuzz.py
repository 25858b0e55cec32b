"""Property-based fuzzing of every HTTP endpoint and WebSocket op of a real server.

    .venv/bin/python bench/fuzz.py [--requests 10000] [--ws-share 0.25] [--seed N]

Requests are generated with hypothesis from the engine's request Structs (so a new field
is fuzzed without touching this file): each field valid, missing, of a wrong type, at an
edge (huge numbers, NaN, unicode, lone surrogates, path-traversal-like ids), plus extra
fields, random JSON values of any shape, invalid JSON bytes, wrong or missing content
types, other methods and paths (``/static/..`` traversal), foreign Host and Origin
headers, bodies over the size limit. WebSocket frames likewise: every op with mutated
fields, unknown ops, non-object JSON, invalid JSON, binary frames.

Checked after every request or frame (``Checker``):

- no 5xx (no faults are injected here) and no dropped connection;
- every error is the envelope ``{"success": false, "error": str, "code": str}``, JSON,
  without a traceback; every WebSocket ``error`` frame has ``code`` and ``error``;
- a refused request (4xx, or a frame answered without an ``ack``) changed nothing on
  disk; every file under the data directory is a known kind (journal, snapshot, torn
  tail, index, transient temp/trash file); a sentinel folder beside the data directory
  is untouched; a ``/static`` 200 is a file that really is in server/static.

The suite (tests/test_fuzz_api.py) runs a few hundred examples with assertions; this
script runs many and prints one summary line:
``FUZZ requests=… 2xx=… 4xx=… 5xx=… envelope_violations=… disk_violations=… …``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from bench.fuzz_checks import Checker, make_sentinel  # noqa: E402
from bench.fuzz_requests import Req, http_requests, ws_frames  # noqa: E402
from bench.server_process import Server  # noqa: E402


def run(n_http: int, n_ws: int, seed: int | None, checker: Checker) -> None:
    """Drive ``n_http`` requests and ``n_ws`` frames through hypothesis (generate only)."""
    common = dict(
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=seed is not None,
    )
    if n_http:

        @settings(max_examples=n_http, **common)  # type: ignore[arg-type]
        @given(req=http_requests(checker.pool, checker.export_lines))
        def http_case(req: Req) -> None:
            checker.run_http(req)

        http_case()
    if n_ws:

        @settings(max_examples=n_ws, **common)  # type: ignore[arg-type]
        @given(frame=ws_frames(checker.pool))
        def ws_case(frame: tuple[int, bytes, str]) -> None:
            checker.run_ws(*frame)

        ws_case()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--ws-share", type=float, default=0.25, help="share of WebSocket frames")
    ap.add_argument("--seed", type=int, default=None, help="derandomize (same run each time)")
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    parent = Path(tempfile.mkdtemp(prefix="sessionlog-fuzz-"))
    data = parent / "memory"
    sentinel = make_sentinel(parent)
    srv = Server(data, fsync=args.fsync, compact_interval=0, log=parent / "server.log")
    checker = Checker(srv, data, sentinel, strict=False)
    n_ws = int(args.requests * args.ws_share)
    t0 = time.monotonic()
    try:
        checker.seed(messages=3)
        seeded = checker.tally.requests
        run(args.requests - n_ws - seeded, n_ws, args.seed, checker)
    finally:
        checker.close()
        alive = srv.alive()
        srv.kill()
    t = checker.tally
    if not alive:
        t.violations["server_died"] += 1
    log = (parent / "server.log").read_text(errors="replace")
    tracebacks = log.count("Traceback")
    print(
        f"FUZZ requests={t.requests} http={t.http} ws_frames={t.ws_frames} 2xx={t.klass(200)} "
        f"3xx={t.klass(300)} 4xx={t.klass(400)} 5xx={t.klass(500)} "
        f"envelope_violations={t.violations['envelope']} disk_violations={t.violations['disk']} "
        f"ws_violations={t.violations['ws']} connection_violations={t.violations['connection']} "
        f"server_died={t.violations['server_died']} server_log_tracebacks={tracebacks} "
        f"elapsed={time.monotonic() - t0:.0f}s",
        flush=True,
    )
    print("statuses:", dict(sorted(t.statuses.items())))
    for ex in t.examples:
        print("  ", ex)
    if args.keep:
        print("kept", parent)
    else:
        shutil.rmtree(parent, ignore_errors=True)
    return 1 if sum(t.violations.values()) or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
