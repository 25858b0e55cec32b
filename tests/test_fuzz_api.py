"""Property-based fuzzing of every HTTP endpoint and WebSocket op of a real server.

The generators and checks live beside bench/fuzz.py (bench/fuzz_requests.py,
fuzz_values.py, fuzz_checks.py; the script runs 10,000 of them for a stress run); here
a few hundred examples run with every check an assertion: no 5xx, every error the JSON
envelope without a traceback, no change on disk from a refused request (``tree()``:
every byte of every file), every file a known kind, nothing touched beside the data
directory. Plus regression tests for what the fuzzer found.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from bench.fuzz_checks import Checker, make_sentinel
from bench.fuzz_requests import Req, http_requests, ws_frames
from bench.fuzz_values import dumps
from bench.rawsocket import RawSocket
from bench.server_process import Server
from eventlog.backends.file.maintenance import verify

from .conftest import tree

HTTP_EXAMPLES = 300
WS_EXAMPLES = 150


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    """One server for the module, seeded with sessions to aim at."""
    parent = tmp_path_factory.mktemp("fuzz")
    data = parent / "memory"
    sentinel = make_sentinel(parent)
    srv = Server(data, compact_interval=0, log=parent / "server.log")
    checker = Checker(srv, data, sentinel, strict=True, snapshot=tree)
    checker.seed(messages=2)
    yield checker
    checker.close()
    assert srv.alive(), "the server died"
    srv.kill()
    assert "Traceback" not in srv.output(), srv.output()[-3000:]
    _, problems = verify(data)
    assert not problems, problems


def test_fuzz_every_http_endpoint(target: Checker) -> None:
    @fuzz(HTTP_EXAMPLES)
    @given(req=http_requests(target.pool, target.export_lines))
    def case(req: Req) -> None:
        target.run_http(req)

    case()
    t = target.tally
    assert t.klass(200) >= 20 and t.klass(400) >= 100, dict(t.statuses)  # both paths ran


def test_fuzz_every_websocket_op(target: Checker) -> None:
    @fuzz(WS_EXAMPLES)
    @given(frame=ws_frames(target.pool))
    def case(frame: tuple[int, bytes, str]) -> None:
        target.run_ws(*frame)

    case()
    assert target.tally.ws_frames >= WS_EXAMPLES


# -- regressions for what the fuzzer found -----------------------------------------------------


def _post(port: int, path: str, body: bytes, ctype: str = "application/json") -> tuple[int, Any]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", path, body, {"Content-Type": ctype})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def _deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


def test_a_deeply_nested_body_is_a_400_not_a_500(target: Checker) -> None:
    """Regression: ``[[[[…]]]]`` 100,000 deep made the server re-decode the body to tell
    invalid JSON from an invalid request, and msgspec's RecursionError became a 500."""
    for path in ("/api/sessions/list", "/api/sessions/start", "/api/sessions/append"):
        status, out = _post(target.port, path, b"[" * 100_000 + b"]" * 100_000)
        assert status == 400 and out["code"] in ("invalid_request", "invalid_json"), out
        status, out = _post(target.port, path, b'{"metadata":' + _deep(5000) + b"}")
        assert status == 400 and out["code"] == "invalid_request", out


def test_metadata_nested_just_under_the_recursion_limit_is_refused_not_a_poison_pill(
    target: Checker,
) -> None:
    """Regression: metadata nested ~970 deep was accepted (200) and written, and then
    every load of the session failed with a 500 (the answer nests it deeper than msgspec
    can encode): one append made a session unreadable for good. Nesting is now bounded
    (64 levels) at validation, for every free-form field and for imports."""
    status, out = _post(target.port, "/api/sessions/start", b"{}")
    sid = out["session_id"]
    for depth in (63, 100, 500, 970, 990):
        body = b'{"session_id":"%s","role":"user","content":"deep","metadata":%s}' % (
            sid.encode(),
            _deep(depth),
        )
        status, out = _post(target.port, "/api/sessions/append", body)
        if depth <= 63:  # the request is level 0, its metadata level 1
            assert status == 200, out
        else:
            assert status == 400 and "nested" in out["error"], (depth, out)
    status, out = _post(target.port, "/api/sessions/load", dumps({"session_id": sid}))
    assert status == 200, out
    line = {
        "session_id": "deepimport1",
        "seq": 1,
        "id": "e1",
        "type": "session.started",
        "ts": "2026-01-01T00:00:00.000Z",
        "data": {"user_name": "U", "title": "", "metadata": {}},
    }
    raw = dumps(line).replace(b'"metadata": {}', b'"metadata": ' + _deep(900))
    status, out = _post(target.port, "/api/sessions/import", raw, "application/jsonl")
    assert status == 400 and "nested" in out["error"], out


def test_a_deeply_nested_websocket_frame_gets_an_error_and_the_socket_stays_open(
    target: Checker,
) -> None:
    """Regression: a frame nested 5,000 deep raised RecursionError out of the reader
    loop: the socket died, and an HTTP 500 response was written into the WebSocket
    stream. A ``req_id`` nested ~990 deep decoded but could not be echoed back."""
    ws = RawSocket(target.port, timeout=10)
    try:
        for frame in (
            b'{"op":"ping","req_id":' + b"[" * 5000 + b"]" * 5000 + b"}",
            b'{"op":"ping","req_id":' + b"[" * 990 + b"]" * 990 + b"}",
            b'{"op":"append","session_id":"x","role":"user","content":"c",'
            b'"metadata":' + _deep(3000) + b"}",
        ):
            ws.send(1, frame)
            op, data = next(ws.frames())
            assert op == 1, (op, data[:200])
            got = json.loads(data)
            assert got["op"] == "error" and "nested" in got["error"], got
        ws.send_json({"op": "ping", "req_id": "still open"})
        op, data = next(ws.frames())
        assert json.loads(data) == {"op": "pong", "req_id": "still open"}
    finally:
        ws.close()


@pytest.mark.parametrize("until", ["2026-13-45", "2026-02-31", "0000-00-00"])
def test_list_until_an_impossible_date_is_a_400_naming_until(target: Checker, until: str) -> None:
    """Regression: ``until`` passes the YYYY-MM-DD pattern but ``2026-13-45`` is no date:
    the index's strptime raised ValueError, a 500."""
    status, out = _post(target.port, "/api/sessions/list", dumps({"until": until}))
    assert (status, out["code"], out.get("field")) == (400, "invalid_request", "until"), out


def test_list_until_the_last_representable_day_works(target: Checker) -> None:
    """Regression: ``until: 9999-12-31`` overflowed the day after (OverflowError, 500)."""
    status, out = _post(target.port, "/api/sessions/list", dumps({"until": "9999-12-31"}))
    assert status == 200 and out["total_sessions"] >= 3, out


def test_fuzzed_sessions_still_load_export_and_verify(target: Checker, tmp_path: Path) -> None:
    """After all of the above, every session the fuzzer created loads and exports."""
    for sid in target.pool.sessions:
        status, out = _post(target.port, "/api/sessions/load", dumps({"session_id": sid}))
        assert status in (200, 404), out  # 404: the fuzzer deleted it
    c = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
    c.request(
        "POST",
        "/api/sessions/export",
        dumps({"all": True, "format": "events"}),
        {"Content-Type": "application/json"},
    )
    r = c.getresponse()
    assert r.status == 200
    r.read()
    c.close()


def test_a_missing_static_file_is_a_json_404(target: Checker) -> None:
    """Regression (bench/fuzz.py): aiohttp's static route answered a missing file with an
    empty application/octet-stream 404 that never reached the error middleware."""
    c = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    try:
        c.request("GET", "/static/nope.js")
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    assert r.status == 404
    assert json.loads(body)["code"] == "not_found"


def test_list_with_an_offset_beyond_sqlite_integers_is_a_400_naming_offset(
    target: Checker,
) -> None:
    """Regression (bench/fuzz.py, 10,000 requests): ``offset: 2**63`` passed validation
    (``ge=0`` only) and SQLite raised OverflowError binding it: a 500."""
    status, out = _post(target.port, "/api/sessions/list", dumps({"offset": 2**63}))
    assert (status, out["code"], out.get("field")) == (400, "invalid_request", "offset"), out
    status, out = _post(target.port, "/api/sessions/list", dumps({"offset": 2**63 - 1}))
    assert status == 200 and out["sessions"] == [], out
