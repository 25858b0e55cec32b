"""Imports (SPEC §11) as files and requests: zips with split files, a 5 MB export,
malformed files that write nothing, re-imports and --replace, duplicates, the HTTP
endpoint with progress, the command line."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from eventlog.backend import Backend
from eventlog.backends.file.backend import FileBackend
from eventlog.imports import ImportFailed
from eventlog.requests import AppendRequest, ExportRequest, ListRequest, LoadRequest
from tests import import_fixtures as fx
from tests.conftest import PYTHON, ROOT, Api, tree
from tests.import_helpers import kept, run_import, sessions_by_source, write


async def test_zip_exports_with_split_chatgpt_files_and_claude(
    backend: Backend, tmp_path: Path
) -> None:
    bulk = fx.chatgpt_bulk(30)
    gpt_zip = fx.zip_export(
        {
            "conversations-000.json": bulk[:20],
            "conversations-001.json": bulk[20:],
            "chat.html": b"<html></html>",
            "user.json": {"id": "user-1"},
        }
    )
    claude_zip = fx.zip_export(
        {"conversations.json": fx.claude_messy(), "users.json": [], "projects.json": []}
    )
    report = await run_import(
        backend, write(tmp_path / "gpt.zip", gpt_zip), write(tmp_path / "claude.zip", claude_zip)
    )
    assert len(report.imported) == 32 and report.conversations == 33
    s = (await sessions_by_source(backend))[bulk[3]["conversation_id"]]
    assert len(s.messages) == kept(bulk[3]) and not any(
        m.content.startswith("alt ") for m in s.messages
    )


async def test_a_five_megabyte_export(backend: Backend, tmp_path: Path) -> None:
    data = fx.chatgpt_export_of_size(5 * 1024 * 1024, seed=5)
    assert len(data) >= 5 * 1024 * 1024
    report = await run_import(backend, write(tmp_path / "conversations.json", data))
    n = len(json.loads(data))
    assert len(report.imported) == report.conversations == n
    total = (await backend.list(ListRequest(limit=1))).total_sessions
    assert total == n


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (
            b'[{"mapping": {}, "id": "ok"}, {"chat_messages": [',
            "conversation 2: the JSON is malformed",
        ),
        (b"[1, 2]", "conversation 1: expected a conversation object"),
        # a lone low surrogate: yajl raised UnicodeDecodeError, which escaped as a crash
        (
            b'[{"mapping": {}, "id": "ok"}, {"title": "\\udc00"}]',
            "conversation 2: the JSON is malformed",
        ),
        (b'[{"title": "x"}]', "conversation 1: not a ChatGPT"),
        (b'[{"mapping": [1], "id": "c9"}]', "conversation 1 (id c9): `mapping` is not an object"),
        (b"hello", "the first byte: expected JSON"),
        (b"", "the start: the file is empty"),
        (b"PK\x03\x04garbage", "the zip archive: it cannot be read"),
    ],
)
async def test_a_malformed_file_names_the_file_and_place_and_writes_nothing(
    backend: Backend, tmp_path: Path, content: bytes, where: str
) -> None:
    good = write(tmp_path / "good.json", fx.chatgpt_bulk(3))
    bad = write(tmp_path / "bad.json", content)
    with pytest.raises(ImportFailed) as e:
        await run_import(backend, good, bad)
    assert e.value.message.startswith(f"cannot import {bad.name}: {where}"), e.value.message
    assert "Nothing was imported" in e.value.message
    assert (await backend.list(ListRequest())).total_sessions == 0


async def test_the_index_holds_the_exact_size_of_each_imported_journal(tmp_path: Path) -> None:
    """The import gives the index each journal's size from the bytes it wrote (no stat);
    a wrong size would make every start re-read and re-index the journal."""
    b = FileBackend(tmp_path / "data")
    try:
        report = await run_import(b, write(tmp_path / "c.json", fx.chatgpt_bulk(12)))
        stored = b.store.index.stored()
        assert sorted(stored) == sorted(report.imported)
        for sid, (_, size) in stored.items():
            assert size == Path(b.store.path_of(sid)).stat().st_size
    finally:
        await b.close()


async def test_a_zip_without_conversations_is_refused(backend: Backend, tmp_path: Path) -> None:
    z = write(tmp_path / "photos.zip", fx.zip_export({"a.txt": b"x"}))
    with pytest.raises(ImportFailed, match=r"holds no conversations\.json"):
        await run_import(backend, z)


async def test_replace_rewrites_a_session_changed_since_its_import(
    backend: Backend, tmp_path: Path
) -> None:
    convs = fx.chatgpt_bulk(2)
    f = write(tmp_path / "c.json", convs)
    sid = (await run_import(backend, f)).imported[0]
    await backend.append(AppendRequest(session_id=sid, role="user", content="added later"))
    again = await run_import(backend, f)
    assert len(again.skipped) == 2 and sid in again.skipped and again.imported == []
    replaced = await run_import(backend, f, replace=True)
    assert sorted(replaced.replaced) == sorted(replaced.imported) and sid in replaced.replaced
    s = (await backend.load(LoadRequest(session_id=sid))).session
    assert len(s.messages) == kept(convs[0]) and s.messages[-1].content != "added later"


async def test_the_same_conversation_twice_in_one_import_is_written_once(
    backend: Backend, tmp_path: Path
) -> None:
    f = write(tmp_path / "a.json", fx.chatgpt_bulk(2))
    g = write(tmp_path / "b.json", fx.chatgpt_bulk(3))
    report = await run_import(backend, f, g)
    assert len(report.imported) == 3 and report.duplicates == 2


# -- the server, the command line ------------------------------------------------------


async def test_http_import_of_a_zip_then_again_then_replace(api: Api) -> None:
    body = fx.zip_export({"conversations.json": fx.chatgpt_messy()})
    headers = {"Content-Type": "application/zip"}
    status, out = await api.post("import", data=body, headers=headers)
    assert status == 200 and len(out["imported"]) == 4 and out["empty"] == 1
    status, out = await api.post("import", data=body, headers=headers)
    assert status == 200 and out["imported"] == [] and len(out["skipped"]) == 4
    status, out = await api.post("/api/sessions/import?replace=true", data=body, headers=headers)
    assert status == 200 and len(out["replaced"]) == 4


async def test_http_import_streams_progress_lines_then_the_result(api: Api) -> None:
    body = io.BytesIO(json.dumps(fx.chatgpt_bulk(40)).encode())
    async with api.client.post(
        "/api/sessions/import?progress=true",
        data=body,
        headers={"Content-Type": "application/json"},
    ) as r:
        lines = [json.loads(line) for line in (await r.read()).splitlines()]
    assert r.status == 200 and lines[-1]["success"] is True and len(lines[-1]["imported"]) == 40
    assert lines[-2] == {"phase": "writing", "done": 40, "total": 40}
    assert all(set(p) == {"phase", "done", "total"} for p in lines[:-1])


async def test_http_import_of_a_malformed_file_is_a_400_naming_it(api: Api, data_dir: Path) -> None:
    before = tree(data_dir)
    status, out = await api.post(
        "/api/sessions/import?filename=conversations.json",
        data=b'[{"mapping": {}}, {"mapping": 5}]',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and out["code"] == "invalid_request"
    assert out["error"].startswith("cannot import conversations.json: conversation 2")
    assert tree(data_dir) == before
    async with api.client.post(
        "/api/sessions/import?progress=1", data=b"[{", headers={"Content-Type": "application/json"}
    ) as r:
        last = json.loads((await r.read()).splitlines()[-1])
    assert last["success"] is False and last["code"] == "invalid_request" and last["status"] == 400


def test_cli_imports_several_files_and_reports_skips(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a = write(tmp_path / "conversations.json", fx.chatgpt_messy())
    b = write(tmp_path / "claude.zip", fx.zip_export({"conversations.json": fx.claude_messy()}))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "server", "import", "--data", str(data), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = run(str(a), str(b))
    assert out.returncode == 0 and len(out.stdout.split()) == 6, out.stderr
    assert "imported 6 session(s)" in out.stderr and "left out 2 empty" in out.stderr
    again = run(str(a), str(b))
    assert (
        again.returncode == 0
        and again.stdout == ""
        and "skipped 6 that already exist" in again.stderr
    )
    replaced = run("--replace", str(a))
    assert replaced.returncode == 0 and "replaced 4" in replaced.stderr
    bad = write(tmp_path / "broken.json", b'[{"mapping": {}}, ')
    before = tree(data)
    out = run(str(bad))
    assert out.returncode == 2 and "cannot import " + str(bad) + ": conversation 2" in out.stderr
    assert "Traceback" not in out.stderr and tree(data) == before


def test_cli_imports_standard_input(tmp_path: Path) -> None:
    f = write(tmp_path / "c.json", fx.chatgpt_bulk(2))
    with f.open("rb") as stdin:
        out = subprocess.run(
            [PYTHON, "-m", "server", "import", "--data", str(tmp_path / "d"), "-"],
            cwd=ROOT,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0 and len(out.stdout.split()) == 2, out.stderr


async def test_imported_sessions_are_ordinary_sessions(tmp_path: Path) -> None:
    """Listed, searchable, exportable as an events backup that round-trips."""
    b = FileBackend(tmp_path / "d")
    try:
        await run_import(b, write(tmp_path / "c.json", fx.chatgpt_messy()))
        found = await b.list(ListRequest(query="sicher", archived=None))
        assert [r.title for r in found.sessions] == ["Bild: Katze 🐱"]
        sid = found.sessions[0].session_id
        before = (await b.load(LoadRequest(session_id=sid))).session
        dump = b"".join(
            [c async for c in await b.export(ExportRequest(session_id=sid, format="events"))]
        )
        await b.delete(sid)
        await b.import_events(dump)
        assert (await b.load(LoadRequest(session_id=sid))).session == before
    finally:
        await b.close()


async def test_a_bad_events_backup_among_good_files_writes_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    """Backups were checked only when written: a good one before a bad one got in."""
    good = write(tmp_path / "c.json", fx.chatgpt_bulk(2))
    line = {
        "session_id": "s1",
        "type": "session.started",
        "seq": 1,
        "id": "e",
        "ts": "2026-01-01T00:00:00.000Z",
        "data": {"user_name": "U", "metadata": {}},
    }
    ok = write(tmp_path / "ok.jsonl", (json.dumps(line) + "\n").encode())
    bad = write(
        tmp_path / "bad.jsonl",
        (json.dumps(line) + "\n" + json.dumps({**line, "seq": 3}) + "\n").encode(),
    )
    with pytest.raises(
        ImportFailed, match=r"^cannot import bad\.jsonl: the events export: invalid import: line 2"
    ):
        await run_import(backend, good, ok, bad)
    assert (await backend.list(ListRequest())).total_sessions == 0
    report = await run_import(backend, good, ok)
    assert len(report.imported) == 3 and "s1" in report.imported
    again = await run_import(backend, ok)  # a backup meeting its sessions skips them too
    assert (again.imported, again.skipped) == ([], ["s1"])
