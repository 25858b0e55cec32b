"""``sessionlog demo voice``: stream a voice transcript into a running server.

It behaves like a voice pipeline: a user message is appended as ``partial``, interim
transcripts revise it with ``replace`` deltas, and ``complete`` fixes the final text;
then an assistant reply streams token by token (``append`` deltas). Open the page on
the same session to watch it live. It uses only the HTTP API (urllib), so it works
against any server, with ``--token`` if one is configured.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

TRANSCRIPT = [
    "what",
    "what's the",
    "what's the whether",
    "what's the weather like",
    "what's the weather like in Lisbon",
    "what's the weather like in Lisbon tomorrow",
]
FINAL = "What's the weather like in Lisbon tomorrow?"
REPLY = "Tomorrow in Lisbon: sunny, 21 °C, with a light breeze from the north-west."


class Client:
    """Just enough of the HTTP API for the demo."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, op: str, **body: Any) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.url}/api/sessions/{op}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                out: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"demo: {op} failed: {e.code} {e.read().decode()}") from None
        except urllib.error.URLError as e:
            raise SystemExit(
                f"demo: cannot reach {self.url} ({e.reason}); is `make run` up?"
            ) from None
        return out


def run_voice(client: Client, session_id: str | None, delay: float) -> str:
    if session_id is None:
        started = client.call(
            "start", user_name="Voice demo", metadata={"type": "voice"}, title="Voice demo"
        )
        session_id = str(started["session_id"])
        print(f"session {session_id}: open {client.url}/#session={session_id} to watch")
        time.sleep(max(delay * 4, 0.5))
    mid = f"voice-{os.urandom(4).hex()}"
    client.call(
        "append",
        session_id=session_id,
        role="user",
        content="",
        partial=True,
        message_id=mid,
        metadata={"source": "microphone"},
    )
    for interim in TRANSCRIPT:
        client.call("delta", session_id=session_id, message_id=mid, content=interim, mode="replace")
        print(f"  interim: {interim}")
        time.sleep(delay)
    client.call("complete", session_id=session_id, message_id=mid, content=FINAL)
    print(f"  final:   {FINAL}")
    rid = f"reply-{os.urandom(4).hex()}"
    client.call(
        "append", session_id=session_id, role="assistant", content="", partial=True, message_id=rid
    )
    for word in REPLY.split(" "):
        client.call("delta", session_id=session_id, message_id=rid, content=word + " ")
        time.sleep(delay / 3)
    client.call("complete", session_id=session_id, message_id=rid, content=REPLY)
    print(f"  reply:   {REPLY}")
    return session_id


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["voice"], help="what to stream")
    parser.add_argument("--url", default="http://127.0.0.1:5174", help="the running server")
    parser.add_argument("--session", help="stream into this session (default: a new one)")
    parser.add_argument("--delay", type=float, default=0.4, help="seconds between interims")
    parser.add_argument("--token", default=os.environ.get("SESSIONLOG_TOKEN"))


def demo_command(args: argparse.Namespace) -> int:
    run_voice(Client(args.url, args.token), args.session, args.delay)
    return 0
