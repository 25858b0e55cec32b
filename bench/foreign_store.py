"""Write a data directory as another tool would (SPEC §2 invites that): journals only,
no snapshots, no index, ``null`` for fields it has no value for. Used by the cold-start
benchmarks; run by hand to keep a copy:

    .venv/bin/python bench/foreign_store.py DIR [--sessions 100000] [--messages 20]
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

WORDS = [
    "the",
    "a",
    "note",
    "plan",
    "voice",
    "call",
    "meeting",
    "budget",
    "travel",
    "recipe",
    "code",
    "review",
    "bug",
    "deploy",
    "garden",
    "music",
    "movie",
    "book",
    "question",
    "answer",
    "idea",
    "draft",
    "summary",
    "list",
    "schedule",
    "weather",
    "report",
]


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_foreign_store(root: Path, sessions: int, messages: int, seed: int = 11) -> int:
    """``sessions`` journals of ``messages`` messages each, spread over a year of date
    folders; 80 % have ``"title": null`` and messages with null metadata/status.
    Returns the bytes written."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    now = datetime(2026, 2, 9, 12, tzinfo=UTC)
    total = 0
    made: set[str] = set()
    for i in range(sessions):
        start = now - timedelta(minutes=5 * i)
        folder = root / "sessions" / _ts(start)[:10]
        if folder.name not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder.name)
        sid = f"{rng.getrandbits(48):012x}"
        nulls = i % 5 != 0
        lines = [
            {
                "seq": 1,
                "id": f"{sid}-1",
                "type": "session.started",
                "ts": _ts(start),
                "data": {
                    "user_name": "User",
                    "metadata": {"type": "voice" if i % 7 == 0 else "chat"},
                    "title": None if nulls else f"session {i}",
                },
            }
        ]
        for m in range(messages):
            t = _ts(start + timedelta(seconds=10 * (m + 1)))
            text = " ".join(rng.choice(WORDS) for _ in range(12 if m % 2 == 0 else 40))
            lines.append(
                {
                    "seq": m + 2,
                    "id": f"{sid}-{m + 2}",
                    "type": "message.appended",
                    "ts": t,
                    "data": {
                        "message_id": f"{sid}-m{m}",
                        "role": "user" if m % 2 == 0 else "assistant",
                        "content": f"{text} #{i}",
                        "timestamp": t,
                        "metadata": None if nulls else {},
                        "status": None if nulls else "complete",
                    },
                }
            )
        data = b"".join(enc.encode(x) + b"\n" for x in lines)
        fd = os.open(folder / f"{sid}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        total += len(data)
    return total


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=20)
    a = ap.parse_args()
    n = write_foreign_store(a.dir, a.sessions, a.messages)
    print(f"wrote {a.sessions:,} journals, {n / 2**20:.0f} MiB, under {a.dir}")
