"""A ``sessionlog serve`` child process that a test or a benchmark starts, kills -9 and
restarts on one data directory (bench/stress.py, the fault and fuzz tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the server runs from this tree
PYTHON = sys.executable
_URL_RE = re.compile(rb"serving (http://\S+/)")


# -- a server subprocess ------------------------------------------------------------------


class Server:
    """``python -m server serve`` in a child process, its output in a log file."""

    def __init__(
        self,
        data: Path | str,
        *,
        fsync: str = "always",
        compact_interval: float = 5.0,
        env: dict[str, str] | None = None,
        log: Path | str | None = None,
        args: tuple[str, ...] = (),
        timeout: float = 30.0,
    ) -> None:
        self.data = Path(data)
        self.log_path = Path(log) if log else self.data.parent / f"{self.data.name}.server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill()/stop()
        self._start = self._log.tell()
        cmd = [
            PYTHON,
            "-m",
            "server",
            "serve",
            "--port",
            "0",
            "--data",
            str(self.data),
            "--fsync",
            fsync,
            "--compact-interval",
            str(compact_interval),
            *args,
        ]
        base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONLOG_")}
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**base, **(env or {})},
        )
        self.pid = self.proc.pid
        try:
            self.url = self._wait_ready(timeout)
        except BaseException:  # incl. SystemExit from a signal: leave no server behind
            self.kill()
            raise
        self.ws_url = self.url.replace("http://", "ws://", 1) + "api/sessions/ws"

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(self._start)
                m = _URL_RE.search(f.read())
            if m:
                return m.group(1).decode()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.output()[-2000:]}")
            time.sleep(0.005)

    def output(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self._start)
            return f.read().decode(errors="replace")

    def rss_kb(self) -> int:
        """Resident set size of the server process (VmRSS, in kB)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        """SIGKILL (no shutdown, no final compaction) and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM: graceful shutdown; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def alive(self) -> bool:
        return self.proc.poll() is None
