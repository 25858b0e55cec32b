"""What bench/fuzz.py checks after every request or frame (``Checker``)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import struct
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fuzz_requests import Req
from bench.fuzz_values import Pool, dumps
from bench.rawsocket import RawSocket
from bench.server_process import Server

STATIC = Path(__file__).resolve().parent.parent / "server" / "static"


# -- checks ----------------------------------------------------------------------------------

_KNOWN = re.compile(
    r"^((index|ids)\.sqlite3(-wal|-shm|-journal)?"
    r"|sessions/\d{4}-\d{2}-\d{2}/[A-Za-z0-9_-]{1,64}\.(jsonl|json|jsonl\.torn"
    r"|json\.tmp-\d+-[0-9a-f]{8}|jsonl\.(import|new)-\d+-[0-9a-f]{8})"
    r"|trash/[A-Za-z0-9_-]{1,64}\.[0-9a-f]{8}\.jsonl)$"
)


def fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file but the SQLite index and id store (derived, touched
    by reads)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.startswith(("index.sqlite3", "ids.sqlite3")):
                continue
            p = os.path.join(dirpath, f)
            with contextlib.suppress(FileNotFoundError):
                st_ = os.stat(p)
                out[os.path.relpath(p, root)] = (st_.st_size, st_.st_mtime_ns)
    return out


@dataclass
class Tally:
    requests: int = 0
    http: int = 0
    ws_frames: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    conn_errors: int = 0
    examples: list[str] = field(default_factory=list)

    def klass(self, lo: int) -> int:
        return sum(n for s, n in self.statuses.items() if lo <= s < lo + 100)


class Violation(AssertionError):
    pass


class Checker:
    """Runs requests/frames against the server and checks every invariant."""

    def __init__(
        self,
        srv: Server,
        data: Path,
        sentinel: Path,
        strict: bool,
        snapshot: Callable[[Path], Any] = fingerprint,
    ) -> None:
        self.srv = srv
        self.port = int(srv.url.rstrip("/").rsplit(":", 1)[1])
        self.data = data
        self.sentinel = sentinel
        self.sentinel_before = _tree_bytes(sentinel)
        self.beside_before = sorted(os.listdir(data.parent))
        self.strict = strict
        self.snapshot = snapshot
        self.tally = Tally()
        self.pool = Pool()
        self.conn: http.client.HTTPConnection | None = None
        self.ws: RawSocket | None = None
        self._export_cache: tuple[float, list[bytes]] = (0.0, [])

    # -- bookkeeping ------------------------------------------------------------------

    def violation(self, kind: str, detail: str) -> None:
        self.tally.violations[kind] += 1
        if len(self.tally.examples) < 20:
            self.tally.examples.append(f"{kind}: {detail[:600]}")
        if self.strict:
            raise Violation(f"{kind}: {detail}")

    def check_disk(self, before: Any, refused: bool, what: str) -> None:
        after = self.snapshot(self.data)
        if refused and after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))[:4]
            self.violation("disk", f"a refused {what} changed files: {changed}")
        for rel in _files(self.data):
            if not _KNOWN.match(rel):
                self.violation("disk", f"unknown file {rel!r} after {what}")
        if _tree_bytes(self.sentinel) != self.sentinel_before:
            self.violation("disk", f"the sentinel folder beside the data changed after {what}")
        if sorted(os.listdir(self.data.parent)) != self.beside_before:
            self.violation("disk", f"a file appeared beside the data directory after {what}")

    # -- HTTP ---------------------------------------------------------------------------

    def _http(self, req: Req) -> tuple[int, dict[str, str], bytes] | None:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            c = self.conn
            try:
                c.putrequest(
                    req.method, req.path, skip_host="Host" in req.headers, skip_accept_encoding=True
                )
                for k, v in req.headers.items():
                    c.putheader(k, v)
                if req.content_type is not None:
                    c.putheader("Content-Type", req.content_type)
                c.putheader("Content-Length", str(len(req.body)))
                c.endheaders()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    c.send(req.body)  # may fail: the server answered 413 before reading it
                r = c.getresponse()
                body = r.read()
                headers = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    c.close()
                    self.conn = None
                return r.status, headers, body
            except (http.client.HTTPException, OSError):
                c.close()
                self.conn = None
                if attempt == 2:
                    return None
        return None

    def export_lines(self) -> list[bytes]:
        """An ``events`` export of one pool session (cached briefly)."""
        t, lines = self._export_cache
        if time.monotonic() - t < 2 and lines:
            return lines
        lines = []
        if self.pool.sessions:
            got = self._http(
                Req(
                    "POST",
                    "/api/sessions/export",
                    dumps({"session_id": self.pool.sessions[-1], "format": "events"}),
                    "application/json",
                )
            )
            if got is not None and got[0] == 200:
                lines = got[2].splitlines(keepends=True)
        self._export_cache = (time.monotonic(), lines)
        return lines

    def seed(self, sessions: int = 3, messages: int = 2) -> None:
        """A few sessions with messages for the fuzzer to aim at."""
        for i in range(sessions):
            self.run_http(
                Req("POST", "/api/sessions/start", dumps({"title": f"f{i}"}), "application/json")
            )
        for sid in list(self.pool.sessions):
            for j in range(messages):
                body = {
                    "session_id": sid,
                    "role": "user",
                    "content": f"hi {j}",
                    "message_id": f"m{j}",
                }
                self.run_http(Req("POST", "/api/sessions/append", dumps(body), "application/json"))

    def run_http(self, req: Req) -> None:
        before = self.snapshot(self.data)
        self.tally.requests += 1
        self.tally.http += 1
        got = self._http(req)
        if got is None:
            self.tally.conn_errors += 1
            self.violation("connection", f"no answer to {req!r}")
            return
        status, headers, body = got
        self.tally.statuses[status] += 1
        if status >= 500:
            self.violation("5xx", f"{status} {body[:300]!r} for {req!r}")
        if status >= 400 and req.method != "HEAD":
            self._check_envelope(status, headers, body, req)
        if (
            status == 200
            and req.method == "POST"
            and req.path.startswith("/api/")
            and req.path != "/api/sessions/export"
        ):
            self._learn(req, body)
        if status == 200 and req.path.startswith("/static/") and req.method == "GET":
            self._check_static(req, body)
        self.check_disk(before, status >= 400, repr(req))

    def _check_envelope(self, status: int, headers: dict[str, str], body: bytes, req: Req) -> None:
        try:
            obj = json.loads(body)
        except ValueError:
            self.violation("envelope", f"{status} not JSON: {body[:200]!r} for {req!r}")
            return
        ok = (
            isinstance(obj, dict)
            and obj.get("success") is False
            and isinstance(obj.get("error"), str)
            and obj["error"]
            and isinstance(obj.get("code"), str)
            and obj["code"]
        )
        if not ok:
            self.violation("envelope", f"{status} {obj!r} for {req!r}")
        elif "Traceback" in obj["error"] or 'File "' in obj["error"]:
            self.violation("envelope", f"a traceback in {obj!r}")
        if not headers.get("content-type", "").startswith("application/json"):
            self.violation("envelope", f"{status} with content type {headers.get('content-type')}")

    def _learn(self, req: Req, body: bytes) -> None:
        try:
            obj = json.loads(body)
        except ValueError:
            self.violation("envelope", f"200 not JSON for {req!r}")
            return
        if not (isinstance(obj, dict) and obj.get("success") is True):
            self.violation("envelope", f"200 without success: true: {body[:200]!r}")
            return
        if isinstance(obj.get("session_id"), str):
            self.pool.add_session(obj["session_id"])
        for sid in obj.get("imported") or []:
            self.pool.add_session(sid)
        if isinstance(obj.get("message_id"), str):
            self.pool.add_message(obj["message_id"])

    def _check_static(self, req: Req, body: bytes) -> None:
        name = urllib.parse.unquote(req.path.split("?")[0][len("/static/") :])
        target = (STATIC / name).resolve()
        if STATIC.resolve() not in target.parents or not target.is_file():
            self.violation("disk", f"/static served {req.path!r}, which is not a static file")
        elif target.read_bytes() != body:
            self.violation("disk", f"/static served other bytes for {req.path!r}")

    # -- WebSocket ------------------------------------------------------------------------

    def _socket(self) -> RawSocket:
        if self.ws is None:
            self.ws = RawSocket(self.port, timeout=10)
        return self.ws

    def _drop_ws(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def run_ws(self, opcode: int, payload: bytes, what: str) -> None:
        before = self.snapshot(self.data)
        self.tally.requests += 1
        self.tally.ws_frames += 1
        ws = self._socket()
        sentinel = f"sentinel-{self.tally.requests}"
        acked = False
        try:
            ws.send(opcode, payload)
            ws.send(1, dumps({"op": "ping", "req_id": sentinel}))
            for op, data in ws.frames():
                if op == 8:
                    code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                    self._drop_ws()
                    if code not in (1007, 1009):
                        self.violation("ws", f"closed with {code} {data[2:]!r} after {what}")
                    break
                if op != 1:
                    continue
                try:
                    f = json.loads(data)
                except ValueError:
                    self.violation("ws", f"a non-JSON frame {data[:200]!r} after {what}")
                    continue
                if not isinstance(f, dict) or not isinstance(f.get("op"), str):
                    self.violation("ws", f"a frame without op {f!r}")
                    continue
                if f["op"] == "error":
                    if not (
                        isinstance(f.get("code"), str)
                        and isinstance(f.get("error"), str)
                        and f["error"]
                    ):
                        self.violation("envelope", f"ws error frame {f!r} after {what}")
                    elif "Traceback" in f["error"] or f["code"] == "internal":
                        self.violation("5xx", f"ws {f!r} after {what}")
                elif f["op"] == "ack":
                    acked = True
                    if isinstance(f.get("message_id"), str):
                        self.pool.add_message(f["message_id"])
                elif f["op"] == "pong" and f.get("req_id") == sentinel:
                    break
            else:
                self._drop_ws()
                self.violation("connection", f"the socket ended without a close after {what}")
        except OSError as e:
            self._drop_ws()
            self.tally.conn_errors += 1
            self.violation("connection", f"{e!r} after {what}")
        self.check_disk(before, not acked, f"ws frame {what}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.ws is not None:
            self.ws.close()


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return out


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in _files(root)}


def make_sentinel(parent: Path) -> Path:
    """A folder beside the data directory that no request may touch."""
    s = parent / "sentinel"
    (s / "sub").mkdir(parents=True, exist_ok=True)
    (s / "passwd").write_text("root:x:0:0\n")
    (s / "sub" / "a.jsonl").write_text('{"seq": 1}\n')
    return s
