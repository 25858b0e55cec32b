"""``sessionlog demo voice``: stream a voice transcript into a running server.

It behaves like a voice pipeline: a user message is appended as ``partial``, interim
transcripts revise it with ``replace`` deltas, and ``complete`` fixes the final text;
then an assistant reply streams token by token (``append`` deltas). Open the page on
the same session to watch it live: the demo waits until someone follows the session
(``GET /api/health?session_id=``), or ``--start-after`` seconds. It uses only the HTTP
API (urllib), so it works against any server, with ``--token`` if one is configured.
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

    def subscribers(self, session_id: str) -> int:
        """How many WebSocket subscriptions follow the session now."""
        req = urllib.request.Request(
            f"{self.url}/api/health?session_id={session_id}",
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(json.loads(r.read()).get("session_subscriptions") or 0)
        except (urllib.error.URLError, ValueError) as e:
            raise SystemExit(f"demo: cannot reach {self.url} ({e}); is `make run` up?") from None

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


def wait_for_viewer(
    client: Client, session_id: str, start_after: float | None, poll: float = 0.25
) -> None:
    """Wait until a page (or anything) subscribes to the session, or ``start_after`` s."""
    if start_after is not None:
        print(f"starting in {start_after:g} s")
        time.sleep(start_after)
        return
    if client.subscribers(session_id):
        return
    print(
        "waiting for the session to be opened (Ctrl+C to stop; --start-after N to start "
        "after N seconds instead)",
        flush=True,
    )
    while not client.subscribers(session_id):
        time.sleep(poll)


def run_voice(
    client: Client, session_id: str | None, delay: float, start_after: float | None = None
) -> str:
    if session_id is None:
        started = client.call(
            "start", user_name="Voice demo", metadata={"type": "voice"}, title="Voice demo"
        )
        session_id = str(started["session_id"])
    print(f"session {session_id}: open {client.url}/#session={session_id} to watch", flush=True)
    wait_for_viewer(client, session_id, start_after)
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
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    voice = kinds.add_parser(
        "voice",
        help="a voice pipeline: interim transcripts, then a streamed reply",
        description="Stream a voice conversation into a running server, as a voice pipeline "
        "would: a user message grows through interim transcripts (replace deltas) and is "
        "completed, then an assistant reply streams token by token (append deltas). It "
        "waits until the session is open somewhere (the link it prints), then streams.",
    )
    voice.add_argument(
        "--url", default="http://127.0.0.1:5174", help="the running server (default: %(default)s)"
    )
    voice.add_argument("--session", help="stream into this session (default: start a new one)")
    voice.add_argument(
        "--delay",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="seconds between interim transcripts (default %(default)s; reply tokens: a third)",
    )
    voice.add_argument(
        "--start-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start after this many seconds instead of waiting for the session to be opened",
    )
    voice.add_argument(
        "--token",
        default=os.environ.get("SESSIONLOG_TOKEN"),
        help="the server's token, if it has one (default: $SESSIONLOG_TOKEN)",
    )
    voice.set_defaults(func=demo_voice)


def demo_voice(args: argparse.Namespace) -> int:
    run_voice(Client(args.url, args.token), args.session, args.delay, args.start_after)
    return 0
