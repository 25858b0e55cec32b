"""The HTTP API of SPEC §4 against a real server: every endpoint, every error code, and
the rule that a refused request writes nothing."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog.backends.file import syscalls
from eventlog.events import decoder
from server.config import Config, Limits

from .conftest import Api, ServerProcess, both_backends, tree

pytestmark = pytest.mark.asyncio


def journal_seqs(data_dir: Path, sid: str) -> list[int]:
    [path] = data_dir.glob(f"sessions/*/{sid}.jsonl")
    return [decoder.decode(line).seq for line in path.read_bytes().splitlines()]


# -- the seed's curl commands -----------------------------------------------------------


def curl(url: str, body: str, *extra: str) -> tuple[int, dict[str, Any]]:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            url,
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            *extra,
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    text, _, status = out.rpartition("\n")
    return int(status), json.loads(text)


async def test_seed_curl_commands_work_against_a_real_server_process(
    server_process: Any, data_dir: Path
) -> None:
    """The seed's README tests the API with three curl commands; they must still work
    verbatim (with http://localhost:PORT) against `python -m server serve`."""
    srv: ServerProcess = server_process()
    base = f"http://localhost:{srv.port}/api/sessions"
    status, started = curl(f"{base}/start", '{"user_name": "Test User"}')
    assert status == 200 and started["success"] is True
    sid = started["session_id"]
    assert len(sid) == 12 and started["session"]["user_name"] == "Test User"

    status, listed = curl(f"{base}/list", '{"limit": 10, "offset": 0}')
    assert status == 200 and listed["success"] is True
    assert [s["session_id"] for s in listed["sessions"]] == [sid]
    for key in (
        "total_sessions",
        "sessions_today",
        "sessions_this_week",
        "total_messages",
        "limit",
        "offset",
        "has_more",
    ):
        assert key in listed
    assert listed["limit"] == 10 and listed["offset"] == 0

    status, deleted = curl(f"{base}/delete", '{"session_id": "abc123"}')
    assert status == 404
    assert deleted == {"success": False, "code": "not_found", "error": deleted["error"]}
    assert "abc123" in deleted["error"]

    status, deleted = curl(f"{base}/delete", json.dumps({"session_id": sid}))
    assert status == 200 and deleted == {"success": True, "session_id": sid}
    assert srv.stop() == 0


# -- every endpoint -----------------------------------------------------------------------


@both_backends
async def test_start_uses_the_seed_defaults_and_accepts_a_title(api: Api) -> None:
    out = await api.ok("start", {})
    s = out["session"]
    assert out["session_id"] == s["session_id"]
    assert s["user_name"] == "User" and s["metadata"] == {"type": "chat"}
    assert s["messages"] == [] and s["seq"] == 1
    assert s["stats"] == {
        "total_messages": 0,
        "user_messages": 0,
        "assistant_messages": 0,
        "errors": 0,
    }
    titled = await api.ok(
        "start", {"user_name": "Ann", "metadata": {"type": "voice"}, "title": "Call"}
    )
    assert titled["session"]["title"] == "Call"
    assert titled["session"]["metadata"] == {"type": "voice"}


@both_backends
async def test_append_answers_seq_message_and_deduplicates_retries(api: Api) -> None:
    sid = await api.start()
    out = await api.ok(
        "append",
        {"session_id": sid, "role": "user", "content": "Hello", "id": "ev-1", "metadata": {"k": 1}},
    )
    assert out["seq"] == 2 and out["duplicate"] is False
    assert out["message"]["content"] == "Hello" and out["message"]["metadata"] == {"k": 1}
    assert out["message_id"] == out["message"]["message_id"]
    again = await api.ok(
        "append", {"session_id": sid, "role": "user", "content": "Hello", "id": "ev-1"}
    )
    assert again["seq"] == 2 and again["duplicate"] is True
    by_mid = await api.ok(
        "append", {"session_id": sid, "role": "assistant", "content": "Hi", "message_id": "m-1"}
    )
    dup = await api.ok(
        "append", {"session_id": sid, "role": "assistant", "content": "Hi", "message_id": "m-1"}
    )
    assert (dup["seq"], dup["duplicate"]) == (by_mid["seq"], True)


@both_backends
async def test_append_with_a_stale_expected_seq_is_a_409_naming_the_current_seq(
    api: Api,
) -> None:
    sid = await api.start()
    await api.ok("append", {"session_id": sid, "role": "user", "content": "a"})
    status, out = await api.post(
        "append", {"session_id": sid, "role": "user", "content": "b", "expected_seq": 1}
    )
    assert status == 409 and out["code"] == "conflict" and out["current_seq"] == 2
    ok = await api.ok(
        "append", {"session_id": sid, "role": "user", "content": "b", "expected_seq": 2}
    )
    assert ok["seq"] == 3


@both_backends
async def test_load_returns_the_current_session_and_a_slice_with_its_start(api: Api) -> None:
    sid = await api.start()
    for i in range(5):
        await api.ok("append", {"session_id": sid, "role": "user", "content": f"m{i}"})
    full = await api.ok("load", {"session_id": sid})
    assert [m["content"] for m in full["session"]["messages"]] == [f"m{i}" for i in range(5)]
    assert "message_start" not in full and full["session"]["seq"] == 6
    last2 = await api.ok("load", {"session_id": sid, "message_limit": 2})
    assert [m["content"] for m in last2["session"]["messages"]] == ["m3", "m4"]
    assert last2["message_start"] == 3
    before = await api.ok("load", {"session_id": sid, "message_limit": 2, "message_before": 3})
    assert [m["content"] for m in before["session"]["messages"]] == ["m1", "m2"]
    assert before["message_start"] == 1


@both_backends
async def test_list_flattens_the_page_and_aggregates_next_to_success(api: Api) -> None:
    a = await api.start(title="alpha")
    b = await api.start(title="beta")
    await api.ok("append", {"session_id": a, "role": "user", "content": "the zebra question"})
    await api.ok("update", {"session_id": b, "pinned": True})
    out = await api.ok("list", {})
    assert [s["session_id"] for s in out["sessions"]] == [b, a]  # pinned first
    row = out["sessions"][1]
    assert row["preview"] == "the zebra question" and row["message_count"] == 1
    assert out["total_sessions"] == 2 and out["total_messages"] == 1
    assert out["has_more"] is False and out["limit"] == 100
    found = await api.ok("list", {"query": "zebra"})
    assert [s["session_id"] for s in found["sessions"]] == [a]
    page = await api.ok("list", {"limit": 1, "offset": 0})
    assert len(page["sessions"]) == 1 and page["has_more"] is True


@both_backends
async def test_update_answers_seq_and_the_list_summary(api: Api) -> None:
    sid = await api.start()
    out = await api.ok(
        "update", {"session_id": sid, "title": "Renamed", "tags": ["x", "y"], "archived": True}
    )
    assert out["seq"] == 2
    assert out["session"]["title"] == "Renamed" and out["session"]["tags"] == ["x", "y"]
    assert out["session"]["archived"] is True and out["session"]["session_id"] == sid
    listed = await api.ok("list", {})
    assert listed["sessions"] == []  # archived sessions are left out by default


@both_backends
async def test_save_appends_new_messages_and_records_changed_ones_as_edits(api: Api) -> None:
    sid = await api.start()
    msgs = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
    first = await api.ok("save", {"session_id": sid, "messages": msgs})
    assert (first["appended"], first["edited"], first["seq"]) == (2, 0, 3)
    msgs[1]["content"] = "TWO"
    msgs.append({"role": "user", "content": "three"})
    second = await api.ok("save", {"session_id": sid, "messages": msgs, "expected_seq": 3})
    assert (second["appended"], second["edited"]) == (1, 1)
    status, stale = await api.post("save", {"session_id": sid, "messages": msgs, "expected_seq": 3})
    assert status == 409 and stale["current_seq"] == second["seq"]
    loaded = await api.ok("load", {"session_id": sid})
    assert [m["content"] for m in loaded["session"]["messages"]] == ["one", "TWO", "three"]


@both_backends
async def test_streaming_twins_delta_complete_and_edit_over_http(api: Api) -> None:
    sid = await api.start()
    started = await api.ok(
        "append",
        {
            "session_id": sid,
            "role": "assistant",
            "content": "",
            "message_id": "s-1",
            "partial": True,
        },
    )
    assert started["message"]["status"] == "partial"
    await api.ok("delta", {"session_id": sid, "message_id": "s-1", "content": "Hel"})
    await api.ok("delta", {"session_id": sid, "message_id": "s-1", "content": "lo"})
    done = await api.ok("complete", {"session_id": sid, "message_id": "s-1"})
    assert done["seq"] == 5
    await api.ok("edit", {"session_id": sid, "message_id": "s-1", "content": "Hello!"})
    await api.ok("error", {"session_id": sid, "message": "tts failed"})
    s = (await api.ok("load", {"session_id": sid}))["session"]
    assert [(m["content"], m["status"]) for m in s["messages"]] == [("Hello!", "complete")]
    assert s["stats"]["errors"] == 1


@both_backends
async def test_delete_removes_the_session_and_a_second_delete_is_404(api: Api) -> None:
    sid = await api.start()
    assert await api.ok("delete", {"session_id": sid}) == {"success": True, "session_id": sid}
    for path in ("load", "delete", "append"):
        status, out = await api.post(path, {"session_id": sid, "role": "user", "content": "x"})
        assert (status, out["code"]) == (404, "not_found")


@both_backends
async def test_export_streams_each_format_as_an_attachment(api: Api) -> None:
    sid = await api.start()
    await api.ok("append", {"session_id": sid, "role": "user", "content": "Hi"})
    await api.ok("append", {"session_id": sid, "role": "assistant", "content": "Hello"})
    expected = {
        "openai": ("application/jsonl", b'{"messages":[{"role":"user","content":"Hi"}'),
        "sharegpt": ("application/jsonl", b'"conversations":[{"from":"human","value":"Hi"}'),
        "events": ("application/jsonl", b'"type":"session.started"'),
        "markdown": ("text/markdown", b"Hello"),
    }
    for fmt, (ctype, needle) in expected.items():
        async with api.client.post(
            "/api/sessions/export", json={"session_id": sid, "format": fmt}
        ) as r:
            body = await r.read()
            assert r.status == 200, body
            assert r.headers["Content-Type"].startswith(ctype)
            disposition = r.headers["Content-Disposition"]
            assert disposition.startswith("attachment; filename=") and sid in disposition
            assert needle in body, (fmt, body)
    async with api.client.post("/api/sessions/export", json={"all": True, "format": "openai"}) as r:
        assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
        assert "sessionlog-all-openai.jsonl" in r.headers["Content-Disposition"]


@both_backends
async def test_export_of_a_missing_session_is_a_json_404_not_a_broken_download(
    api: Api,
) -> None:
    """Validation must happen before the status line: once streaming has started the
    server could no longer report an error."""
    sid = await api.start()
    status, out = await api.post("export", {"session_ids": [sid, "nope"], "format": "events"})
    assert status == 404 and out["code"] == "not_found"
    status, out = await api.post("export", {"format": "events"})
    assert status == 400 and out["field"] == "session_id"


async def test_export_delete_import_round_trips_sessions_exactly(api: Api, data_dir: Path) -> None:
    sids = [await api.start(title=f"t{i}") for i in range(3)]
    for sid in sids:
        await api.ok("append", {"session_id": sid, "role": "user", "content": f"in {sid}"})
    before = {sid: (await api.ok("load", {"session_id": sid}))["session"] for sid in sids}
    async with api.client.post("/api/sessions/export", json={"all": True, "format": "events"}) as r:
        backup = await r.read()
    for sid in sids:
        await api.ok("delete", {"session_id": sid})
    for ctype in ("application/x-ndjson",):
        async with api.client.post(
            "/api/sessions/import", data=backup, headers={"Content-Type": ctype}
        ) as r:
            out = await r.json()
        assert r.status == 200 and sorted(out["imported"]) == sorted(sids)
    after = {sid: (await api.ok("load", {"session_id": sid}))["session"] for sid in sids}
    assert after == before
    # importing again meets sessions that exist: each is skipped and reported (SPEC §11),
    # nothing is written
    snapshot = tree(data_dir)
    async with api.client.post(
        "/api/sessions/import", data=backup, headers={"Content-Type": "application/jsonl"}
    ) as r:
        out = await r.json()
    assert r.status == 200 and out["imported"] == [] and sorted(out["skipped"]) == sorted(sids)
    assert tree(data_dir) == snapshot


@both_backends
async def test_health_reports_status_version_and_counts(api: Api) -> None:
    await api.start()
    async with api.client.get("/api/health") as r:
        out = await r.json()
    assert r.status == 200 and out["success"] is True and out["status"] == "ok"
    assert out["version"] and out["sessions"] == 1 and out["websockets"] == 0


@both_backends
async def test_openapi_document_is_3_1_and_generated_from_the_request_structs(
    api: Api,
) -> None:
    async with api.client.get("/api/openapi.json") as r:
        doc = await r.json()
    assert r.status == 200 and doc["openapi"].startswith("3.1")
    for name in (
        "start",
        "load",
        "list",
        "save",
        "delete",
        "export",
        "append",
        "update",
        "import",
        "delta",
        "complete",
        "edit",
    ):
        assert f"/api/sessions/{name}" in doc["paths"], name
    schemas = doc["components"]["schemas"]
    append = schemas["AppendRequest"]
    assert set(append["required"]) == {"session_id", "role", "content"}
    assert set(append["properties"]["role"]["enum"]) == {"user", "assistant", "system", "tool"}
    assert "ListResult" in schemas and "ErrorResponse" in schemas
    # every $ref resolves
    refs = {m for m in _walk(doc) if isinstance(m, str) and m.startswith("#/components/")}
    for ref in refs:
        assert ref.rsplit("/", 1)[1] in schemas, ref


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


@both_backends
async def test_the_page_and_its_static_files_are_served_with_security_headers(
    api: Api,
) -> None:
    async with api.client.get("/") as r:
        await r.read()
        assert r.status in (200, 404)  # the page is another module's; its route is ours
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and f"ws://127.0.0.1:{api.server.port}" in csp
        assert "Access-Control-Allow-Origin" not in r.headers


# -- every error code ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        (
            "load",
            {"data": b'{"session_id": ', "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_json",
        ),
        ("load", {"json": {"session_id": 5}}, 400, "invalid_request"),
        (
            "append",
            {"json": {"session_id": "abc", "role": "robot", "content": "x"}},
            400,
            "invalid_request",
        ),
        ("list", {"json": {"limit": 0}}, 400, "invalid_request"),
        ("load", {"json": {"session_id": "nope"}}, 404, "not_found"),
        ("nothing-here", {"json": {}}, 404, "not_found"),
        (
            "load",
            {"data": b"{}", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("load", {"data": b"{}"}, 415, "unsupported_media_type"),
        (
            "append",
            {"json": {"session_id": "abc", "role": "user", "content": "x" * 1_000_001}},
            413,
            "payload_too_large",
        ),
    ],
)
@both_backends
async def test_errors_use_the_envelope_with_the_right_status_and_code(
    api: Api, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    got, out = await api.post(path, **kwargs)
    assert (got, out["code"], out["success"]) == (status, code, False), out
    assert isinstance(out["error"], str) and out["error"]
    assert "Traceback" not in out["error"]


@both_backends
async def test_invalid_request_names_the_field(api: Api) -> None:
    sid = await api.start()
    status, out = await api.post("append", {"session_id": sid, "role": "user", "content": 7})
    assert status == 400 and out["field"] == "content" and "content" in out["error"]


@both_backends
async def test_wrong_method_is_405_in_the_envelope(api: Api) -> None:
    async with api.client.get("/api/sessions/start") as r:
        out = await r.json()
    assert r.status == 405 and out["code"] == "method_not_allowed"
    assert r.headers["Allow"] == "POST"


async def test_a_body_over_the_limit_is_413_json_not_an_html_page(make_api: Any) -> None:
    api: Api = await make_api(limits=Limits(body_bytes=1024))
    status, out = await api.post("start", {"title": "x" * 2000})
    assert (status, out["code"]) == (413, "payload_too_large")


@pytest.mark.parametrize(("err", "status"), [(errno.ENOSPC, 507), (errno.EIO, 503)])
async def test_a_failed_fsync_is_a_clear_5xx_and_never_acknowledged(
    api: Api, monkeypatch: pytest.MonkeyPatch, data_dir: Path, err: int, status: int
) -> None:
    sid = await api.start()

    def broken(fd: int) -> None:
        raise OSError(err, "injected")

    monkeypatch.setattr(syscalls, "fdatasync", broken)
    got, out = await api.post("append", {"session_id": sid, "role": "user", "content": "x"})
    assert (got, out["code"]) == (status, "storage_error")
    assert "fsync" in out["error"] and "Traceback" not in out["error"]


@both_backends
async def test_an_unexpected_exception_is_a_generic_500_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.state import BACKEND

    async def boom(req: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(api.app[BACKEND], "list", boom)
    status, out = await api.post("list", {})
    assert (status, out["code"]) == (500, "internal")
    assert "secret" not in out["error"]


# -- a refused request writes nothing ------------------------------------------------------


async def test_refused_requests_change_nothing_on_disk(api: Api, data_dir: Path) -> None:
    sid = await api.start()
    await api.ok("append", {"session_id": sid, "role": "user", "content": "keep", "id": "e1"})
    await api.ok("list", {})  # flush the index so background work has nothing left to do
    before = tree(data_dir)
    refused: list[tuple[str, dict[str, Any]]] = [
        (
            "append",
            {"json": {"session_id": sid, "role": "user", "content": "x", "expected_seq": 1}},
        ),
        ("append", {"json": {"session_id": sid, "role": "nobody", "content": "x"}}),
        (
            "append",
            {
                "data": b'{"session_id": "' + sid.encode() + b'", "role": "user"',
                "headers": {"Content-Type": "application/json"},
            },
        ),
        (
            "append",
            {
                "data": json.dumps({"session_id": sid, "role": "user", "content": "x"}),
                "headers": {"Content-Type": "text/plain"},
            },
        ),
        ("append", {"json": {"session_id": "../" + sid, "role": "user", "content": "x"}}),
        (
            "save",
            {
                "json": {
                    "session_id": sid,
                    "messages": [{"role": "user", "content": "x"}],
                    "expected_seq": 0,
                }
            },
        ),
        ("update", {"json": {"session_id": sid, "tags": [""]}}),
        ("delete", {"json": {"session_id": "missing"}}),
        ("start", {"json": {"user_name": ""}}),
        ("delta", {"json": {"session_id": sid, "message_id": "not-partial", "content": "x"}}),
        ("complete", {"json": {"session_id": sid, "message_id": "unknown"}}),
        (
            "import",
            {"data": b'{"not": "an event"}\n', "headers": {"Content-Type": "application/jsonl"}},
        ),
        ("import", {"data": b"{}", "headers": {"Content-Type": "text/csv"}}),
    ]
    for path, kwargs in refused:
        status, out = await api.post(path, **kwargs)
        assert status >= 400 and out["success"] is False, (path, status, out)
    await api.ok("list", {})
    assert tree(data_dir) == before
    assert journal_seqs(data_dir, sid) == [1, 2]


async def test_request_structs_and_config_defaults_match_the_spec() -> None:
    """The defaults users rely on: loopback only, port 5174, fsync always, 5 s compaction."""
    c = Config()
    assert (c.host, c.port, c.data, c.fsync, c.compact_interval) == (
        "127.0.0.1",
        5174,
        "memory",
        "always",
        5.0,
    )
    assert msgspec.json.encode(c.allow_origins) == b"[]"
