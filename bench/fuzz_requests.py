"""Requests for bench/fuzz.py: HTTP requests (every endpoint, method, header and body
shape) and WebSocket frames, drawn with hypothesis."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from bench.fuzz_values import (
    EDGE_INTS,
    TRICKY_IDS,
    Pool,
    dumps,
    json_values,
    struct_body,
)
from server.api import POST_ROUTES
from server.ws import WRITE_OPS, AuthFrame, SessionFrame, SubscribeFrame

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
