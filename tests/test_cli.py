"""The ``sessionlog`` command line, run as a real child process on a real data dir."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from eventlog.backends.file.store import Store
from eventlog.requests import AppendRequest, StartRequest

from .conftest import PYTHON, ROOT, Api


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
    option does. (An existing session is now skipped and reported, SPEC §11's one rule
    for every import; the message names the option that replaces it.)"""
    (sid,) = _fill(data_dir, sessions=1, words=3)
    backup = tmp_path / "backup.jsonl"
    assert _cli("export", sid, "--data", str(data_dir), "-o", str(backup)).returncode == 0
    before = sorted(p.read_bytes() for p in data_dir.rglob("*.jsonl"))
    out = _cli("import", str(backup), "--data", str(data_dir))
    assert out.returncode == 0
    msg = out.stderr.decode()
    assert f"skipped: {sid}" in msg and "use --replace" in msg and "another id" not in msg
    assert sorted(p.read_bytes() for p in data_dir.rglob("*.jsonl")) == before


# -- progress bars ------------------------------------------------------------------------


def _run_on_a_terminal(args: list[str]) -> tuple[int, bytes, bytes]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); returns (code, out, tty)."""
    import os
    import pty

    master, slave = pty.openpty()
    try:
        with subprocess.Popen(
            [PYTHON, "-m", "server", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=slave
        ) as proc:
            os.close(slave)
            tty = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                tty += chunk
            out = proc.stdout.read() if proc.stdout else b""
            code = proc.wait(60)
    finally:
        os.close(master)
    return code, out, tty


def test_long_commands_show_a_progress_bar_on_a_terminal_only(
    data_dir: Path, tmp_path: Path
) -> None:
    _fill(data_dir, sessions=30, words=5)
    backup = tmp_path / "all.jsonl"
    for args in (["verify"], ["compact"], ["reindex"], ["export", "--all", "-o", str(backup)]):
        code, _, tty = _run_on_a_terminal([*args, "--data", str(data_dir)])
        assert code == 0, (args, tty)
        assert b"30/30" in tty and b"100%" in tty, (args, tty)
        piped = _cli(*args, "--data", str(data_dir))
        assert piped.returncode == 0
        assert b"\r" not in piped.stderr and b"%|" not in piped.stderr, (args, piped.stderr)
    other = tmp_path / "other"
    code, out, tty = _run_on_a_terminal(["import", str(backup), "--data", str(other)])
    assert code == 0 and len(out.split()) == 30
    assert b"reading" in tty and b"100%" in tty  # a backup is then restored in one step


# -- tail ---------------------------------------------------------------------------------


class _Tail:
    """``sessionlog tail`` in the background, its stdout read line by line."""

    def __init__(self, *args: str, tty: bool = False) -> None:
        import os
        import pty
        import threading

        self.lines: list[str] = []
        self.raw = b""
        self.done = threading.Event()
        if tty:
            master, slave = pty.openpty()
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "server", "tail", *args],
                cwd=ROOT,
                stdout=slave,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "COLUMNS": "200"},
            )
            os.close(slave)
            self.fd = master
        else:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "server", "tail", *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert self.proc.stdout is not None
            self.fd = self.proc.stdout.fileno()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        import os

        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.raw += chunk
            self.lines = self.raw.decode(errors="replace").splitlines()
        self.done.set()

    def wait_for(self, text: str) -> None:
        from .browser_helpers import wait_until

        wait_until(lambda: text in self.raw.decode(errors="replace"), what=repr(text))

    def stop(self) -> int:
        import os
        import signal

        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(20)
        self.done.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        else:
            os.close(self.fd)
        return code


def test_tail_prints_a_transcript_and_follows_it(data_dir: Path) -> None:
    from eventlog.requests import CompleteRequest, DeltaRequest

    (sid,) = _fill(data_dir, sessions=1, words=2)
    with Store(data_dir) as store:
        store.append(AppendRequest(session_id=sid, role="assistant", content="Hi **there**"))
    tail = _Tail(sid, "--data", str(data_dir))
    try:
        tail.wait_for("assistant: Hi **there**")
        assert any(line.endswith("user: word word ") for line in tail.lines), tail.lines
        with Store(data_dir) as store:
            store.append(
                AppendRequest(
                    session_id=sid, role="user", content="", partial=True, message_id="live"
                )
            )
            for word in ("what", "what is", "what is up"):
                store.delta(
                    DeltaRequest(session_id=sid, message_id="live", content=word, mode="replace")
                )
            store.complete(CompleteRequest(session_id=sid, message_id="live", content="What's up?"))
        tail.wait_for("user: What's up?")
    finally:
        assert tail.stop() == 0
    # piped: each message once, in its final form; no escape codes, no raw JSON
    assert "what is" not in tail.raw.decode() and "\x1b" not in tail.raw.decode()
    assert not any(line.startswith("{") for line in tail.lines)
    assert re.match(r"\[\d\d:\d\d\] user: What's up\?$", tail.lines[-1]), tail.lines


def test_tail_updates_a_streaming_message_in_place_on_a_terminal(data_dir: Path) -> None:
    from eventlog.requests import CompleteRequest, DeltaRequest

    (sid,) = _fill(data_dir, sessions=1, words=1)
    tail = _Tail(sid, "--data", str(data_dir), tty=True)
    try:
        tail.wait_for("user: word")
        with Store(data_dir) as store:
            store.append(
                AppendRequest(
                    session_id=sid, role="assistant", content="Tok", partial=True, message_id="r"
                )
            )
            tail.wait_for("assistant (streaming…): Tok")
            store.delta(DeltaRequest(session_id=sid, message_id="r", content="ens"))
            tail.wait_for("assistant (streaming…): Tokens")
            store.complete(CompleteRequest(session_id=sid, message_id="r"))
        tail.wait_for("assistant: Tokens")
    finally:
        tail.stop()
    out = tail.raw.decode()
    # each redraw moves up over the message (CPL) and clears to the end of the screen
    assert out.count("\x1b[1F\x1b[J") >= 2, repr(out)


def test_tail_events_prints_raw_events(data_dir: Path) -> None:
    import json

    (sid,) = _fill(data_dir, sessions=1, words=1)
    tail = _Tail(sid, "--data", str(data_dir), "--events")
    try:
        tail.wait_for('"message.appended"')
    finally:
        tail.stop()
    types = [json.loads(line)["type"] for line in tail.lines if line.strip()]
    assert types == ["session.started", "message.appended"]


# -- demo -----------------------------------------------------------------------------------


def test_demo_voice_help_documents_its_own_options() -> None:
    out = _cli("demo", "voice", "--help")
    assert out.returncode == 0
    text = out.stdout.decode()
    for option in ("--url", "--session", "--delay", "--start-after", "--token"):
        assert option in text, option
    assert "interim transcripts" in text


async def test_demo_waits_for_a_subscriber_before_it_streams(make_api: Any) -> None:
    """Regression (issue 13): the demo streamed into a new session before anyone could
    open it. It now waits until the session has a subscriber."""
    import asyncio

    from server.demo import FINAL, REPLY

    api: Api = await make_api()
    sid = await api.start()
    url = f"http://127.0.0.1:{api.server.port}"
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "server", "demo", "voice", "--url", url, "--session", sid,
        "--delay", "0.01", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while b"waiting for the session to be opened" not in await proc.stdout.readline():
            pass
        loaded = await api.ok("load", {"session_id": sid})
        assert loaded["session"]["messages"] == []  # nothing streamed to nobody
        ws = await api.ws()
        await ws.send_json({"op": "subscribe", "session_id": sid})
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await ws.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    loaded = await api.ok("load", {"session_id": sid})
    assert [m["content"] for m in loaded["session"]["messages"]] == [FINAL, REPLY]


def test_demo_start_after_does_not_wait_for_a_subscriber(tmp_path: Path) -> None:
    from .conftest import ServerProcess

    srv = ServerProcess(tmp_path / "data")
    try:
        out = _cli("demo", "voice", "--url", srv.url, "--delay", "0.01", "--start-after", "0")
        assert out.returncode == 0, out.stderr
        assert b"reply:" in out.stdout
    finally:
        srv.stop()


def test_every_data_command_reads_sessionlog_data_when_no_data_is_given(data_dir: Path) -> None:
    """``serve`` honoured $SESSIONLOG_DATA and the other commands did not (they fell back
    to ./memory): one environment for the server and its maintenance commands."""
    (sid,) = _fill(data_dir, sessions=1, words=3)
    env = {**os.environ, "SESSIONLOG_DATA": str(data_dir)}
    env.pop("SESSIONLOG_DATABASE_URL", None)
    out = _cli("export", sid, "--format", "events", env=env)
    assert out.returncode == 0, out.stderr
    assert sid.encode() in out.stdout
