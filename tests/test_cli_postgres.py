"""The command line on a database (``--database URL``, or ``$SESSIONLOG_DATABASE_URL``):
moving a store from a data directory into PostgreSQL and back with ``export``/``import``
gives identical sessions; ``migrate``, ``verify``, ``reindex``, ``compact`` and ``tail``
work there too. Real processes, a real database."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest

from eventlog.backends.file.store import Store
from eventlog.requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    LoadRequest,
    StartRequest,
    UpdateRequest,
)
from tests import pg

from .conftest import PYTHON, ROOT


def cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    r = subprocess.run(
        [PYTHON, "-m", "server", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout.decode() + r.stderr.decode()


def by_session(export: bytes) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for line in export.splitlines():
        out[json.loads(line)["session_id"]].append(line)
    return dict(out)


def fill(data: Path) -> list[str]:
    with Store(data) as s:
        ids = []
        for k in range(5):
            sid = s.start(StartRequest(title=f"session {k}", metadata={"type": "voice"})).session_id
            s.append(AppendRequest(session_id=sid, role="user", content=f"hello {k} ünïcødé"))
            s.append(
                AppendRequest(
                    session_id=sid, role="assistant", content="", partial=True, message_id="a"
                )
            )
            s.delta(DeltaRequest(session_id=sid, message_id="a", content="interim", mode="replace"))
            s.complete(CompleteRequest(session_id=sid, message_id="a", content="final"))
            s.update(UpdateRequest(session_id=sid, tags=["t"], pinned=k == 0))
            ids.append(sid)
    return ids


def test_a_data_dir_moved_into_postgres_and_back_gives_identical_sessions(
    tmp_path: Path,
) -> None:
    with pg.database_sync() as url:
        src, back = tmp_path / "src", tmp_path / "back"
        ids = fill(src)
        first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
        cli("export", "--all", "--format", "events", "--data", str(src), "-o", str(first))
        assert "schema version 0 -> 2 (applied 1, 2)" in cli("migrate", "--database", url)
        assert "nothing to do" in cli("migrate", env={"SESSIONLOG_DATABASE_URL": url})
        out = cli("import", str(first), "--database", url)
        assert sorted(out.split()[: len(ids)]) == sorted(ids)
        cli("export", "--all", "--format", "events", "--database", url, "-o", str(second))
        assert by_session(second.read_bytes()) == by_session(first.read_bytes())
        cli("import", str(second), "--data", str(back))
        with Store(src) as a, Store(back) as b:
            for sid in ids:
                assert a.load(LoadRequest(session_id=sid)).session == (
                    b.load(LoadRequest(session_id=sid)).session
                )
        # the maintenance commands on the database
        assert "0 problem(s)" in cli("verify", "--database", url)
        assert "indexed 5 session(s)" in cli("reindex", "--database", url)
        cli("compact", "--database", url)
        md = subprocess.run(
            [PYTHON, "-m", "server", "export", *ids[:1], "--format", "markdown", "--database", url],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert "final" in md and "session 0" in md


def test_verify_on_a_database_reports_a_gap(tmp_path: Path) -> None:
    with pg.database_sync() as url:
        fill(tmp_path / "d")
        dump = tmp_path / "e.jsonl"
        cli("export", "--all", "--format", "events", "--data", str(tmp_path / "d"), "-o", str(dump))
        cli("import", str(dump), "--database", url)
        import asyncio

        async def punch() -> str:
            conn = await asyncpg.connect(url)
            try:
                return str(
                    await conn.fetchval("DELETE FROM events WHERE seq = 2 RETURNING session_id")
                )
            finally:
                await conn.close()

        sid = asyncio.run(punch())
        r = subprocess.run(
            [PYTHON, "-m", "server", "verify", "--database", url],
            cwd=ROOT,
            capture_output=True,
        )
        assert r.returncode == 1
        assert f"{sid}: seq 3 where 2 was expected" in r.stdout.decode()


def test_tail_on_a_database_prints_what_any_instance_appends(tmp_path: Path) -> None:
    import asyncio

    from eventlog.backends.postgres.backend import PostgresBackend

    with pg.database_sync() as url:

        async def start() -> str:
            b = PostgresBackend(url, pool_size=2)
            try:
                return (await b.start(StartRequest(title="tailed"))).session_id
            finally:
                await b.close()

        sid = asyncio.run(start())
        proc = subprocess.Popen(
            [PYTHON, "-m", "server", "tail", sid, "--database", url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            seen = b""
            deadline = time.monotonic() + 60
            while b"started by" not in seen and time.monotonic() < deadline:
                if select.select([proc.stdout], [], [], 1)[0]:
                    seen += os.read(proc.stdout.fileno(), 4096)  # type: ignore[union-attr]

            async def append() -> None:
                b = PostgresBackend(url, pool_size=2)
                try:
                    await b.append(AppendRequest(session_id=sid, role="user", content="live line"))
                finally:
                    await b.close()

            asyncio.run(append())
            while b"live line" not in seen and time.monotonic() < deadline:
                if select.select([proc.stdout], [], [], 1)[0]:
                    seen += os.read(proc.stdout.fileno(), 4096)  # type: ignore[union-attr]
            assert b"] user: live line" in seen, seen
        finally:
            proc.kill()
            proc.wait()
            for f in (proc.stdout, proc.stderr):
                if f:
                    f.close()


@pytest.mark.parametrize("command", ["compact", "verify", "export", "tail"])
def test_an_unreachable_database_is_one_clear_line_not_a_traceback(command: str) -> None:
    args = {"export": ["--all"], "tail": ["abc"]}.get(command, [])
    r = subprocess.run(
        [
            PYTHON,
            "-m",
            "server",
            command,
            *args,
            "--database",
            "postgresql://nobody@127.0.0.1:1/none",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err, err
    assert "database is unavailable" in err and "127.0.0.1:1" in err
