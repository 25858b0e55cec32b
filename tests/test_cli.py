"""The ``sessionlog`` command line, run as a real child process on a real data dir."""

from __future__ import annotations

import subprocess
from pathlib import Path

from eventlog.backends.file.store import Store
from eventlog.requests import AppendRequest, StartRequest

from .conftest import PYTHON, ROOT


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [PYTHON, "-m", "server", *args], cwd=ROOT, capture_output=True, timeout=60, **kw
    )


def _fill(data_dir: Path, sessions: int, words: int) -> list[str]:
    ids = []
    with Store(data_dir) as store:
        for i in range(sessions):
            sid = store.start(StartRequest(title=f"s{i}")).session_id
            store.append(AppendRequest(session_id=sid, role="user", content="word " * words))
            ids.append(sid)
    return ids


def test_export_into_a_pipe_closed_early_ends_quietly(data_dir: Path) -> None:
    """Regression (issue 13): `sessionlog export --all --format markdown | head` ended
    with a BrokenPipeError traceback."""
    _fill(data_dir, sessions=40, words=2000)  # ~400 KB: far more than a pipe holds
    cmd = [PYTHON, "-m", "server", "export", "--all", "--format", "markdown"]
    with subprocess.Popen(
        [*cmd, "--data", str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(100)  # what `head -c 100` reads, then it exits
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert code == 141  # 128 + SIGPIPE, as a shell reports for `cat` in the same spot


def test_import_of_an_existing_session_says_what_to_do_and_changes_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    """Regression (issue 13): the message offered to "import under another id", which no
    option does."""
    (sid,) = _fill(data_dir, sessions=1, words=3)
    backup = tmp_path / "backup.jsonl"
    assert _cli("export", sid, "--data", str(data_dir), "-o", str(backup)).returncode == 0
    before = sorted(p.read_bytes() for p in data_dir.rglob("*.jsonl"))
    out = _cli("import", str(backup), "--data", str(data_dir))
    assert out.returncode == 2
    msg = out.stderr.decode()
    assert "already exists" in msg and "nothing was imported" in msg
    assert "delete" in msg and "another id" not in msg
    assert sorted(p.read_bytes() for p in data_dir.rglob("*.jsonl")) == before
