"""SPEC §6: a localhost server that any web page in the user's browser could try to
reach. Each attack is refused with the right code, and nothing is written."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config import Limits
from server.state import CONFIG

from .conftest import Api, tree
from .test_server_ws import recv, subscribe

pytestmark = pytest.mark.asyncio
APPEND = {"role": "user", "content": "x"}


async def settle(api: Api, headers: dict[str, str] | None = None) -> dict[str, bytes]:
    """The data directory's files, once pending index work is flushed."""
    await api.ok("list", {}, headers=headers or {})
    return tree(Path(api.app[CONFIG].data))


# -- Origin (CSRF, cross-site WebSocket hijacking) -----------------------------------------


async def test_a_foreign_origin_cannot_post_and_nothing_is_written(api: Api) -> None:
    sid = await api.start()
    before = await settle(api)
    for origin in (
        "http://evil.example",
        "null",
        f"http://evil.example:{api.server.port}",
        f"https://127.0.0.1.evil.example:{api.server.port}",
        f"http://127.0.0.1:{api.server.port + 1}",
    ):
        status, out = await api.post(
            "append", {"session_id": sid, **APPEND}, headers={"Origin": origin}
        )
        assert (status, out["code"]) == (403, "forbidden"), origin
        assert "Origin" in out["error"]
    assert await settle(api) == before


async def test_the_servers_own_origin_and_configured_ones_are_allowed(make_api: Any) -> None:
    api: Api = await make_api(allow_origins=("http://localhost:3000",))
    port = api.server.port
    for origin in (
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
        "http://localhost:3000",
        "http://LOCALHOST:3000/",
    ):
        status, out = await api.post("start", {}, headers={"Origin": origin})
        assert status == 200, (origin, out)
    status, _ = await api.post("start", {}, headers={"Origin": "http://localhost:3001"})
    assert status == 403


async def test_a_foreign_origin_cannot_open_a_websocket(api: Api) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await api.ws(headers={"Origin": "http://evil.example"})
    assert e.value.status == 403
    ws = await api.ws(headers={"Origin": f"http://localhost:{api.server.port}"})
    await ws.send_json({"op": "ping"})
    assert (await recv(ws))["op"] == "pong"


# -- Host (DNS rebinding) -------------------------------------------------------------------


async def test_a_foreign_host_header_is_refused_everywhere(api: Api) -> None:
    port = api.server.port
    for host in (
        "evil.example",
        f"evil.example:{port}",
        f"127.0.0.1:{port + 1}",
        "127.0.0.1.nip.io",
        "[::2]",
    ):
        status, out = await api.post("start", {}, headers={"Host": host})
        assert (status, out["code"]) == (403, "forbidden"), host
        async with api.client.get("/", headers={"Host": host}) as r:
            assert r.status == 403, host  # the page too: a rebinding page must not load it
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await api.ws(headers={"Host": host})
        assert e.value.status == 403
    assert await settle(api) == {}
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        status, _ = await api.post("list", {}, headers={"Host": host})
        assert status == 200, host


# -- bearer token ---------------------------------------------------------------------------


async def test_with_a_token_every_api_call_needs_it(make_api: Any) -> None:
    api: Api = await make_api(token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "s3cret"},
        {"Authorization": "Basic s3cret"},
    ):
        status, out = await api.post("start", {}, headers=headers)
        assert (status, out["code"]) == (401, "unauthorized"), headers
        async with api.client.get("/api/health", headers=headers) as r:
            assert r.status == 401
    assert await settle(api, good) == {}
    status, out = await api.post("start", {}, headers=good)
    assert status == 200 and out["success"]
    # the page must load without it (it then asks for the token, or reads #token=)
    async with api.client.get("/") as r:
        assert r.status != 401
    async with api.client.get("/static/nothing.js") as r:
        assert r.status == 404


async def test_with_a_token_websockets_need_it_in_the_query_or_a_first_frame(
    make_api: Any,
) -> None:
    api: Api = await make_api(token="s3cret", limits=Limits(auth_timeout=1))
    sid = (await api.ok("start", {}, headers={"Authorization": "Bearer s3cret"}))["session_id"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await api.client.ws_connect("/api/sessions/ws?token=wrong")
    assert e.value.status == 401
    # ?token= (what the page does)
    ws = await api.client.ws_connect("/api/sessions/ws?token=s3cret")
    assert await subscribe(ws, sid) == 1
    await ws.close()
    # first frame auth
    ws = await api.ws()
    await ws.send_json({"op": "auth", "token": "s3cret"})
    assert (await recv(ws))["op"] == "authed"
    assert await subscribe(ws, sid) == 1
    await ws.close()
    # a wrong first frame, or anything else first, closes with 4001 before any op runs
    for first in ({"op": "auth", "token": "nope"}, {"op": "append", "session_id": sid, **APPEND}):
        ws = await api.ws()
        await ws.send_json(first)
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4001, msg
    # silence closes too, after the auth timeout
    ws = await api.ws()
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4001
    loaded = await api.ok("load", {"session_id": sid}, headers={"Authorization": "Bearer s3cret"})
    assert loaded["session"]["seq"] == 1  # the unauthenticated append never ran


# -- media type and sizes --------------------------------------------------------------------


async def test_a_non_json_post_is_415_and_writes_nothing(api: Api) -> None:
    """A cross-site HTML form can only send text/plain, urlencoded or multipart: refusing
    them is what makes a "simple" cross-site POST harmless even without an Origin."""
    sid = await api.start()
    before = await settle(api)
    body = f'{{"session_id": "{sid}", "role": "user", "content": "x"}}'
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        headers = {"Content-Type": ctype} if ctype else {}
        async with api.client.post(
            "/api/sessions/append", data=body.encode(), headers=headers
        ) as r:
            out = await r.json()
        assert (r.status, out["code"]) == (415, "unsupported_media_type"), ctype
    assert await settle(api) == before


async def test_an_oversize_body_is_413_json_and_writes_nothing(api: Api) -> None:
    sid = await api.start()
    before = await settle(api)
    big = (
        b'{"session_id": "'
        + sid.encode()
        + b'", "role": "user", "content": "'
        + (b"x" * (9 * 1024 * 1024))
        + b'"}'
    )
    async with api.client.post(
        "/api/sessions/append", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    ) as r:
        out = await r.json()
    assert (r.status, out["code"]) == (413, "payload_too_large")

    async def chunked() -> Any:  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    async with api.client.post(
        "/api/sessions/append", data=chunked(), headers={"Content-Type": "application/json"}
    ) as r:
        out = await r.json()
    assert (r.status, out["code"]) == (413, "payload_too_large")
    assert await settle(api) == before


async def test_an_oversize_import_is_413(make_api: Any) -> None:
    api: Api = await make_api(limits=Limits(import_bytes=1024))
    async with api.client.post(
        "/api/sessions/import", data=b"x" * 4096, headers={"Content-Type": "application/jsonl"}
    ) as r:
        out = await r.json()
    assert (r.status, out["code"]) == (413, "payload_too_large")


async def test_an_oversize_websocket_frame_closes_with_1009_and_writes_nothing(
    make_api: Any,
) -> None:
    api: Api = await make_api(limits=Limits(frame_bytes=64 * 1024))
    sid = await api.start()
    before = await settle(api)
    ws = await api.ws()
    await ws.send_json(
        {"op": "append", "req_id": 1, "session_id": sid, "role": "user", "content": "x" * 100_000}
    )
    msg = await ws.receive(timeout=5)
    while msg.type is aiohttp.WSMsgType.TEXT:
        msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    assert await settle(api) == before


# -- ids and paths -----------------------------------------------------------------------------


BAD_IDS = [
    "../x",
    "a/b",
    "%2e%2e",
    "..",
    ".",
    "",
    "a" * 65,
    "x\x00y",
    "/etc/passwd",
    "..\\x",
    "a b",
    "é",
]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_traversal_session_ids_are_refused_before_any_path_is_built(
    api: Api, bad: str
) -> None:
    await api.start()
    before = await settle(api)
    for path, body in (
        ("load", {}),
        ("append", APPEND),
        ("delete", {}),
        ("update", {}),
        ("save", {"messages": []}),
        ("export", {"format": "events"}),
    ):
        status, out = await api.post(path, {"session_id": bad, **body})
        assert (status, out["code"]) == (400, "invalid_request"), (path, bad, out)
        assert "session_id" in out["error"]
    ws = await api.ws()
    await ws.send_json({"op": "subscribe", "session_id": bad})
    assert (await recv(ws))["code"] == "invalid_request"
    await ws.send_json({"op": "append", "session_id": bad, **APPEND})
    assert (await recv(ws))["code"] == "invalid_request"
    assert await settle(api) == before


async def test_static_files_cannot_escape_their_folder(api: Api) -> None:
    for path in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/%2e%2e/eventlog/store.py",
    ):
        async with api.client.get(path) as r:
            body = await r.read()
        assert r.status in (403, 404), path
        assert b"def make_app" not in body and b"class Store" not in body


async def test_no_cors_headers_and_preflights_are_not_granted(api: Api) -> None:
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    async with api.client.options("/api/sessions/start", headers=headers) as r:
        assert r.status in (403, 405)
        assert not any(h.lower().startswith("access-control-") for h in r.headers)
    async with api.client.post("/api/sessions/list", json={}) as r:
        assert not any(h.lower().startswith("access-control-") for h in r.headers)


ALLOWED = "http://127.0.0.1:5199"


def _cors_headers(r: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


async def test_a_configured_origin_gets_real_cors_on_preflights_api_and_static(
    make_api: Any,
) -> None:
    """Regression (issue 13): with --allow-origin the preflight got 405 and no
    Access-Control-Allow-Origin was sent, so the README's front-end example could not work
    from that origin."""
    api: Api = await make_api(allow_origins=(ALLOWED,), token="t0k")
    for path in ("/api/sessions/append", "/api/sessions/list", "/static/sessionManager.js"):
        headers = {
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        async with api.client.options(path, headers=headers) as r:
            assert r.status == 204, path
            cors = _cors_headers(r)
        assert cors["access-control-allow-origin"] == ALLOWED
        assert "POST" in cors["access-control-allow-methods"]
        assert {"authorization", "content-type"} <= {
            h.strip().lower() for h in cors["access-control-allow-headers"].split(",")
        }
    auth = {"Origin": ALLOWED, "Authorization": "Bearer t0k"}
    async with api.client.post("/api/sessions/start", json={}, headers=auth) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "Origin" in r.headers.getall("Vary")
    # a refusal is readable by that page too (it explains what is wrong)
    async with api.client.post("/api/sessions/start", json={}, headers={"Origin": ALLOWED}) as r:
        assert r.status == 401
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    async with api.client.get("/static/sessionManager.js", headers={"Origin": ALLOWED}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_other_origins_get_no_cors_even_when_one_is_configured(make_api: Any) -> None:
    api: Api = await make_api(allow_origins=(ALLOWED,))
    for origin in ("http://127.0.0.1:5200", "http://evil.example", "null"):
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        async with api.client.options("/api/sessions/start", headers=headers) as r:
            assert r.status == 403, origin
            assert not _cors_headers(r), origin
        async with api.client.get("/static/sessionManager.js", headers={"Origin": origin}) as r:
            assert r.status == 200
            assert not _cors_headers(r), origin
            assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"


async def test_a_preflight_for_headers_the_api_does_not_take_is_refused(make_api: Any) -> None:
    api: Api = await make_api(allow_origins=(ALLOWED,))
    for method, extra in (("POST", "x-evil"), ("DELETE", "")):
        headers = {"Origin": ALLOWED, "Access-Control-Request-Method": method}
        if extra:
            headers["Access-Control-Request-Headers"] = f"content-type, {extra}"
        async with api.client.options("/api/sessions/start", headers=headers) as r:
            assert r.status == 403, (method, extra)
            body = await r.json()
        assert (extra or method) in body["error"]
