"""Helpers for the browser tests (tests/test_browser.py): a real ``python -m server serve``
in a child process, a tiny JSON client for its HTTP API, and Chromium set-up.

Nothing here imports Playwright at module level, so the suite still collects (and the
browser tests skip cleanly) on a machine without it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_ENV = "SESSIONLOG_REQUIRE_BROWSER"
_SERVING = re.compile(rb"sessionlog serving http://[^:/]+:(\d+)/")


class Server:
    """``python -m server serve`` on a loopback port, output to a log file (no pipes that
    could fill up). ``stop()`` and ``start()`` again reuse the same port and data dir."""

    def __init__(self, data: Path, log_dir: Path, args: tuple[str, ...] = ()) -> None:
        self.data = data
        self.args = args  # extra `serve` options, e.g. ("--allow-origin", "http://…")
        self.log_dir = log_dir
        self.port = 0  # the first start picks a free one; restarts keep it
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Server:
        assert self.proc is None, "already running"
        self.starts += 1
        self.log_path = self.log_dir / f"server-{self.starts}.log"
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "server",
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.port),
                        "--data",
                        str(self.data),
                        *self.args,
                    ],
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            port = self._wait_listening(deadline)
            if port is not None:
                self.port = port
                break
            # Exited at once: the port may still be held by the previous run; retry.
            code = self.proc.wait()
            self.proc = None
            if time.monotonic() > deadline:
                raise RuntimeError(f"server exited with {code}: {self.log()}")
            time.sleep(0.1)
        self._wait_healthy(deadline)
        return self

    def _wait_listening(self, deadline: float) -> int | None:
        assert self.proc is not None and self.log_path is not None
        while time.monotonic() < deadline:
            m = _SERVING.search(self.log_path.read_bytes())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                return None
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"server did not start in time: {self.log()}")

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as r:
                    if r.status == 200 and json.loads(r.read()).get("status") == "ok":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"/api/health never answered: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server and wait for it to exit; returns the exit code."""
        assert self.proc is not None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def kill(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    # -- the HTTP API (no Origin header: a script, not a page) -------------------------

    def call(self, op: str, **body: Any) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.url}/api/sessions/{op}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                out: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as e:
            with e:
                raise AssertionError(f"{op} failed: {e.code} {e.read().decode()}") from None
        assert out.get("success") is True, out
        return out

    def start_session(self, title: str = "", *, type: str = "chat", user: str = "User") -> str:
        body: dict[str, Any] = {"user_name": user, "metadata": {"type": type}}
        if title:
            body["title"] = title
        return str(self.call("start", **body)["session_id"])

    def append(self, session_id: str, role: str, content: str) -> dict[str, Any]:
        return self.call("append", session_id=session_id, role=role, content=content)

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.call("load", session_id=session_id)["session"]["messages"])


# Runs in the page: records, with Date.now() (one clock for every page on this machine),
# when a message with exactly `text` first shows status `complete`.
WATCH_COMPLETE_JS = """
(text) => {
  window.__qa = window.__qa || {};
  const key = 'complete:' + text;
  const check = () => {
    if (window.__qa[key]) return;
    for (const el of document.querySelectorAll('[data-testid="message"]')) {
      const body = el.querySelector('.msg-body');
      if (el.dataset.status === 'complete' && body && body.textContent === text) {
        window.__qa[key] = Date.now();
        observer.disconnect();
        return;
      }
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ['data-status'],
  });
  check();
}
"""

# Runs in the page: every `ms` milliseconds, record each distinct (status, text) of every
# message on screen (the DOM as a person would see it, not the manager's model).
SAMPLE_MESSAGES_JS = """
(ms) => {
  window.__qaSamples = [];
  const seen = new Set();
  window.__qaSampler = setInterval(() => {
    for (const el of document.querySelectorAll('[data-testid="message"]')) {
      const text = el.querySelector('.msg-body')?.textContent ?? '';
      const key = `${el.dataset.messageId}|${el.dataset.status}|${text}`;
      if (!seen.has(key)) {
        seen.add(key);
        window.__qaSamples.push({id: el.dataset.messageId, status: el.dataset.status, text});
      }
    }
  }, ms);
}
"""


def message_rows(page: Any) -> list[dict[str, str]]:
    """The messages on screen, in order: id, role, status and text of each."""
    rows: list[dict[str, str]] = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="message"]')].map((el) => ({
            id: el.dataset.messageId, role: el.dataset.role, status: el.dataset.status,
            text: el.querySelector('.msg-body')?.textContent ?? ''}))"""
    )
    return rows


def wait_until(
    predicate: Any, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``predicate()`` until it is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "REQUIRE_ENV",
    "ROOT",
    "SAMPLE_MESSAGES_JS",
    "WATCH_COMPLETE_JS",
    "Server",
    "message_rows",
    "wait_until",
]
