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
import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bench.stress import Server  # noqa: E402
from server.api import POST_ROUTES  # noqa: E402
from server.ws import WRITE_OPS, AuthFrame, SessionFrame, SubscribeFrame  # noqa: E402

STATIC = ROOT / "server" / "static"

# -- values ----------------------------------------------------------------------------------

TRICKY_IDS = [
    "..",
    "../..",
    "../../../../etc/passwd",
    "a/b",
    "a\\b",
    "%2e%2e",
    "%2F",
    "\x00",
    "a\x00b",
    "",
    " ",
    "a" * 64,
    "a" * 65,
    "CON",
    "nul",
    ".",
    "~root",
    "\uff41\uff42\uff43",
    "abc\n",
    "-",
    "_",
    "id with space",
    "😀",
    "..%2F..%2F",
    "index.sqlite3",
    "sessions",
    "trash",
    "\ud800",
    "sessions/../../x",
    "/etc/passwd",
    "C:\\Windows",
    "x.jsonl",
    "*",
    "?",
]
EDGE_INTS = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -(10**30),
]
EDGE_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",
    "a\udfffb",
    "\u202e",
    "\ufeff",
    "😀" * 50,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '"',
    "\\",
    "NEAR(a b)",
    "a* OR b",
    '"unterminated',
    "-x",
    "x" * 10_000,
    "\n" * 100,
    "${jndi:ldap://x}",
]
EDGE_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 0.5, 1e-320]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(EDGE_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=12,
)


class Pool:
    """Ids the fuzzer has seen, so that fuzzed requests hit real sessions too."""

    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.messages: list[str] = ["m1", "m2"]

    def add_session(self, sid: str) -> None:
        if sid not in self.sessions:
            self.sessions.append(sid)
            del self.sessions[:-50]

    def add_message(self, mid: str) -> None:
        if mid not in self.messages:
            self.messages.append(mid)
            del self.messages[:-50]


def pick(draw: Any, items: list[Any], default: Any) -> Any:
    """An element of a list that changes as the fuzzer runs. The draw itself must not
    depend on it (same choices, same shape, or hypothesis calls the strategy flaky): an
    index from a fixed range, taken modulo the current length."""
    i = draw(st.integers(0, 1 << 16))
    return items[i % len(items)] if items else default


@st.composite
def from_pool(draw: Any, items: list[Any], default: Any) -> Any:
    return pick(draw, items, default)


@st.composite
def session_ids(draw: Any, pool: Pool) -> Any:
    k = draw(st.integers(0, 9))
    if k < 6:
        return pick(draw, pool.sessions, "nosuchsession")
    if k < 8:
        return draw(st.sampled_from(TRICKY_IDS))
    if k == 8:
        return draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"))
    return draw(st.text(max_size=80))


def _ids(pool: Pool) -> Any:
    return st.one_of(
        from_pool(pool.messages, "m"),
        st.from_regex(r"\A[a-z0-9]{1,8}\Z"),
        st.sampled_from(TRICKY_IDS),
    )


def _dates() -> Any:
    return st.one_of(
        st.sampled_from(
            [
                "2026-01-01",
                "2026-11-23T10:00:00Z",
                "1970-01-01",
                "9999-12-31",
                "2026-13-45",
                "yesterday",
                "",
                "2026-01-01T00:00:00.000Z",
            ]
        ),
        st.text(max_size=20),
    )


def valid_value(name: str, pool: Pool) -> Any:
    """A plausible value for a request field, by its name (the usual case)."""
    text = st.one_of(st.text(max_size=200), st.sampled_from(EDGE_STRINGS))
    small = st.one_of(st.integers(0, 50), st.sampled_from(EDGE_INTS))
    by_name: dict[str, Any] = {
        "session_id": session_ids(pool),
        "session_ids": st.lists(session_ids(pool), max_size=4),
        "message_id": _ids(pool),
        "id": _ids(pool),
        "role": st.sampled_from(["user", "assistant", "system", "tool", "robot", "", "USER"]),
        "content": text,
        "message": text,
        "title": text,
        "user_name": text,
        "query": text,
        "type": st.sampled_from(["chat", "voice", "", "x" * 100]),
        "tag": text,
        "tags": st.lists(text, max_size=5),
        "metadata": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
        "details": json_values,
        "format": st.sampled_from(["openai", "sharegpt", "events", "markdown", "csv", ""]),
        "mode": st.sampled_from(["append", "replace", "prepend", ""]),
        "since": _dates(),
        "until": _dates(),
        "timestamp": _dates(),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant"]), "content": text},
                optional={"message_id": _ids(pool), "metadata": json_values, "timestamp": _dates()},
            ),
            max_size=4,
        ),
        "token": text,
    }
    if name in by_name:
        return by_name[name]
    if name in ("limit", "offset", "expected_seq", "message_limit", "message_before", "after_seq"):
        return small
    if name in ("all", "partial", "pinned", "archived"):
        return st.one_of(st.booleans(), st.none())
    return json_values


def wrong_value(name: str) -> Any:
    """A value of the wrong type or out of range for the field."""
    return st.one_of(
        json_values,
        st.sampled_from(EDGE_INTS),
        st.sampled_from(EDGE_FLOATS),
        st.sampled_from(TRICKY_IDS),
        st.lists(st.integers(), max_size=3),
    )


@st.composite
def struct_body(draw: Any, kind: type | None, pool: Pool, extra_fields: dict[str, Any]) -> Any:
    """A JSON object for ``kind``'s fields, each valid, missing, wrong or at an edge."""
    obj: dict[str, Any] = dict(extra_fields)
    names = [f.name for f in msgspec.structs.fields(kind)] if kind is not None else []
    for name in names:
        mode = draw(st.sampled_from(["valid"] * 5 + ["omit", "omit", "wrong"]))
        if mode == "valid":
            obj[name] = draw(valid_value(name, pool))
        elif mode == "wrong":
            obj[name] = draw(wrong_value(name))
    if draw(st.integers(0, 9)) == 0:
        obj.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3)))
    return obj


def dumps(value: Any) -> bytes:
    """JSON as a careless client would send it (NaN/Infinity and lone surrogates pass)."""
    try:
        return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return b'{"unserialisable": true}'


# -- HTTP requests ---------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    body: bytes
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        body = self.body[:300]
        return (
            f"Req({self.method} {self.path} ct={self.content_type!r} h={self.headers} "
            f"body={body!r}{'…' if len(self.body) > 300 else ''})"
        )


JSON_TYPES = ["application/json"] * 6 + ["application/json; charset=utf-8", "APPLICATION/JSON"]
OTHER_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonl",
    "",
    "application/xml",
    "application/json-patch+json",
    "*/*",
]
BIG_BODY = b'{"title": "' + b"x" * (9 * 1024 * 1024) + b'"}'  # over the 8 MiB body limit
OTHER_PATHS = [
    "/",
    "/api/health",
    "/api/openapi.json",
    "/api/sessions/ws",
    "/api/nope",
    "/static/app.js",
    "/static/../../pyproject.toml",
    "/static/%2e%2e/api.py",
    "/static/..%2f..%2fpyproject.toml",
    "/static/",
    "/static/nope.js",
    "/api/sessions/../../etc/passwd",
    "/api/sessions/%2e%2e/start",
    "//etc/passwd",
    "/api/sessions/start/",
    "/API/SESSIONS/START",
]


@st.composite
def import_body(draw: Any, pool: Pool, export_lines: Callable[[], list[bytes]]) -> bytes:
    # every draw comes first, in a fixed shape: the export's lines (external state)
    # only decide how the drawn values are applied
    k = draw(st.integers(0, 5))
    junk = draw(st.binary(max_size=300))
    new_id = draw(st.one_of(st.from_regex(r"\A[a-z0-9]{12}\Z"), st.sampled_from(TRICKY_IDS)))
    which = draw(st.integers(0, 1 << 16))
    seq = draw(st.sampled_from(EDGE_INTS))
    value = draw(json_values)
    cut = draw(st.integers(0, 1 << 16))
    lines = list(export_lines())
    if k == 0 or not lines:
        return junk
    if k == 1:  # the real export again: refused, the sessions exist
        return b"".join(lines)
    out = []
    for n, line in enumerate(lines):
        obj = json.loads(line)
        obj["session_id"] = new_id
        if k == 3 and n == which % len(lines):
            obj["seq"] = seq
        if k == 4 and n == which % len(lines):
            keys = sorted(obj)
            obj[keys[which % len(keys)]] = value
        out.append(dumps(obj) + b"\n")
    if k == 5:
        out[-1] = out[-1][: cut % (len(out[-1]) + 1)]  # a torn last line
    return b"".join(out)


@st.composite
def http_requests(draw: Any, pool: Pool, export_lines: Callable[[], list[bytes]]) -> Req:
    headers: dict[str, str] = {}
    if draw(st.integers(0, 19)) == 0:
        headers[draw(st.sampled_from(["Host", "Origin", "Authorization"]))] = draw(
            st.sampled_from(
                [
                    "evil.example",
                    "http://evil.example",
                    "null",
                    "localhost:1",
                    "Bearer x",
                    "127.0.0.1",
                    "http://127.0.0.1",
                    "[::1]",
                ]
            )
        )
    k = draw(st.integers(0, 99))
    if k < 8:  # other methods and paths
        method = draw(st.sampled_from(["GET", "GET", "PUT", "DELETE", "PATCH", "POST", "HEAD"]))
        path = draw(
            st.one_of(
                st.sampled_from(OTHER_PATHS + list(POST_ROUTES)),
                st.text(alphabet="/.%2eafz", max_size=30).map(lambda p: "/" + p),
            )
        )
        return Req(method, path, b"", None, headers)
    path = draw(st.sampled_from(list(POST_ROUTES)))
    ctype: str | None = draw(st.sampled_from(JSON_TYPES))
    if draw(st.integers(0, 9)) == 0:
        ctype = draw(st.sampled_from(OTHER_TYPES))
    kind = POST_ROUTES[path][1]
    if k < 70:
        body = dumps(draw(struct_body(kind, pool, {})))
    elif k < 80:
        body = dumps(draw(json_values))
    elif k < 88:
        body = draw(
            st.one_of(
                st.binary(max_size=200),
                st.sampled_from(
                    [
                        b"{",
                        b"[1,",
                        b'{"a":}',
                        b"\xff\xfe",
                        b"nul",
                        b'{"session_id": "\\ud800"}',
                        b"{}" * 10,
                        b'{"a": 1e999999}',
                        b"\x00" * 10,
                    ]
                ),
            )
        )
    elif k < 96 or path == "/api/sessions/import":
        body = draw(import_body(pool, export_lines))
        if path == "/api/sessions/import" and draw(st.booleans()):
            ctype = draw(
                st.sampled_from(["application/jsonl", "application/x-ndjson", "application/json"])
            )
    elif k < 99:  # deep nesting, around msgspec's recursion limit and far beyond
        n = draw(st.sampled_from([63, 64, 900, 980, 100_000]))
        deep = b"[" * n + b"]" * n
        body = draw(
            st.sampled_from(
                [
                    deep,
                    b'{"metadata":%s}' % deep,
                    b'{"session_id":"x","role":"user","content":"c","metadata":{"a":%s}}' % deep,
                ]
            )
        )
    else:
        body = BIG_BODY
    return Req("POST", path, body, ctype, headers)


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


WS_OPS: dict[str, type | None] = {
    "subscribe": SubscribeFrame,
    "unsubscribe": SessionFrame,
    "subscribe_list": None,
    "unsubscribe_list": None,
    "ping": None,
    "auth": AuthFrame,
    **{op: kind for op, (kind, _) in WRITE_OPS.items()},
}


@st.composite
def ws_frames(draw: Any, pool: Pool) -> tuple[int, bytes, str]:
    k = draw(st.integers(0, 99))
    if k < 75:
        op = draw(st.one_of(st.sampled_from(sorted(WS_OPS)), st.text(max_size=10), json_values))
        kind = WS_OPS.get(op) if isinstance(op, str) else None
        head: dict[str, Any] = {"op": op}
        if draw(st.booleans()):
            head["req_id"] = draw(json_values)
        if draw(st.integers(0, 9)) == 0:
            del head["op"]
        obj = draw(struct_body(kind, pool, head))
        return 1, dumps(obj), f"{op!r} frame"
    if k < 85:
        return 1, dumps(draw(json_values)), "a JSON value frame"
    if k < 93:
        return (
            1,
            draw(
                st.sampled_from(
                    [
                        b"{",
                        b"nope",
                        b"",
                        b'{"op":',
                        b"[]",
                        b"null",
                        b'{"op":"subscribe","session_id":"\\ud800"}',
                    ]
                )
            ),
            "invalid JSON",
        )
    if k < 96:
        return 2, draw(st.binary(max_size=100)), "a binary frame"
    if k < 98:
        n = draw(st.sampled_from([60, 70, 900, 990, 5000]))
        where = draw(
            st.sampled_from(
                [
                    b'{"op":"ping","req_id":%s}',
                    b'{"op":"append","session_id":"x","role":"user",'
                    b'"content":"c","metadata":{"a":%s}}',
                ]
            )
        )
        return 1, where % (b"[" * n + b"]" * n), f"nested {n} deep"
    return 1, b"\xff\xfe invalid utf-8", "invalid UTF-8"  # close 1007 is the right answer


# -- a bare WebSocket client (also used by tests/test_churn.py) ------------------------------


class RawSocket:
    """A WebSocket client on a bare TCP socket: stop reading at will, send anything."""

    def __init__(
        self,
        port: int,
        rcvbuf: int | None = None,
        timeout: float | None = None,
        path: str = "/api/sessions/ws",
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"no upgrade: {head[:200]!r}")

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            length = bytes([0x80 | n])
        elif n < 65536:
            length = b"\xfe" + struct.pack(">H", n)
        else:
            length = b"\xff" + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode]) + length + mask + masked)

    def send_json(self, obj: Any) -> None:
        self.send(1, json.dumps(obj).encode())

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                return False  # cut off without a close frame
            if not chunk:
                return False
            self.buf += chunk
        return True

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(opcode, payload) until a close frame or the end (server frames are unmasked)."""
        while True:
            if not self._need(2):
                return
            op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            at = 2
            if n == 126:
                if not self._need(4):
                    return
                n, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if not self._need(10):
                    return
                n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            if not self._need(at + n):
                return
            payload, self.buf = self.buf[at : at + n], self.buf[at + n :]
            yield op, payload
            if op == 8:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- helpers -------------------------------------------------------------------------------------


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
