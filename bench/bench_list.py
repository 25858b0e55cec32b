"""Benchmark the list index: rebuild N realistic sessions, then time list pages and
full-text queries (medians), one incremental apply, and report peak RSS.

    .venv/bin/python bench/bench_list.py [--sessions 100000] [--dir DIR] [--repeat 31]

Goals at 100k sessions: first default page < 5 ms, a full-text query < 20 ms (met for
a rare word, with or without common words around it; a word in thousands of sessions
still costs more, see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import accumulate

from common import median_ms

from eventlog.backends.file.index import Index
from eventlog.events import MessageAppended, MessageAppendedData
from eventlog.model import Message, Session, Stats
from eventlog.requests import ListRequest

NOW = datetime(2026, 2, 9, 12, 0, tzinfo=UTC)
RARE = "zephyr"  # lands in ~1 message in 3,000: a few hundred sessions at 100k
TAGS = ["work", "home", "ideas", "travel", "code", "music", "health", "books", "todo", "misc"]


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def vocabulary(rng: random.Random, n: int = 400) -> list[str]:
    """n distinct pronounceable words (some with diacritics), most common first."""
    cons, vows = "bcdfghjklmnprstvwz", "aeiouéü"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4))))
    return sorted(words - {RARE})


def sessions(n: int, seed: int = 1) -> Iterator[Session]:
    """n sessions with 5-20 messages of Zipf-distributed words over the last year."""
    rng = random.Random(seed)
    words = vocabulary(random.Random(1))
    # message text is a random slice of one long Zipf-distributed word stream: as
    # realistic for an index as fresh draws, and ~10x faster to generate
    stream = rng.choices(
        words, cum_weights=list(accumulate(1 / r for r in range(1, 401))), k=1 << 20
    )
    for i in range(n):
        start = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        t = start
        msgs = []
        user = assistant = 0
        for k in range(rng.randint(5, 20)):
            role = "user" if k % 2 == 0 else "assistant"
            at = rng.randrange(len(stream) - 40)
            text = stream[at : at + rng.randint(3, 40)]
            if rng.random() < 1 / 3000:
                text.insert(rng.randrange(len(text)), RARE)
            t += timedelta(seconds=rng.uniform(2, 60))
            msgs.append(Message(role, " ".join(text), iso(t), {}, f"m{k}"))
            user += role == "user"
            assistant += role == "assistant"
        r = rng.random()
        yield Session(
            session_id=f"{i:012x}",
            user_name="User",
            started_at=iso(start),
            last_updated=iso(t),
            messages=msgs,
            metadata={"type": "voice" if r < 0.2 else "chat"},
            stats=Stats(len(msgs), user, assistant, 0),
            errors=[],
            seq=len(msgs) + 1,
            title=" ".join(rng.choices(words, k=rng.randint(2, 4))).title() if r < 0.3 else "",
            tags=rng.sample(TAGS, rng.randint(1, 2)) if rng.random() < 0.2 else [],
            pinned=rng.random() < 0.01,
            archived=rng.random() < 0.1,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--dir", default=None, help="where to put the index (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=31, help="timed runs per query")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = os.path.join(d, "index.sqlite3")
        idx = Index(path)
        gen = [0.0]  # seconds spent generating sessions, not indexing them

        def timed(it: Iterator[Session]) -> Iterator[Session]:
            while True:
                t = time.perf_counter()
                item = next(it, None)
                gen[0] += time.perf_counter() - t
                if item is None:
                    return
                yield item

        t0 = time.perf_counter()
        n = idx.rebuild(timed(sessions(args.sessions)))
        rebuild_s = time.perf_counter() - t0 - gen[0]
        size = os.path.getsize(path)
        wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
        r = idx.query(ListRequest(query=RARE, archived=None), now=NOW)
        print(
            f"rebuild: {n:,} sessions in {rebuild_s:.1f} s ({n / rebuild_s:,.0f}/s; "
            f"generating them took another {gen[0]:.1f} s), index {size / 2**20:.0f} MiB "
            f"+ WAL {wal / 2**20:.0f} MiB; "
            f"{RARE!r} is in {r.total_sessions} sessions"
        )

        since = (NOW - timedelta(days=30)).strftime("%Y-%m-%d")
        cases: list[tuple[str, ListRequest, int]] = [
            ("first page (default filters)", ListRequest(), args.repeat),
            ("page at offset 5,000", ListRequest(offset=5000), args.repeat),
            ("first page, archived too", ListRequest(archived=None), args.repeat),
            ("type=voice", ListRequest(type="voice"), args.repeat),
            ("tag=travel", ListRequest(tag="travel"), args.repeat),
            (f"since={since}", ListRequest(since=since), args.repeat),
            ("until=2025-03-01 (oldest sessions)", ListRequest(until="2025-03-01"), args.repeat),
            (f"query={RARE!r}", ListRequest(query=RARE), args.repeat),
            (f"query={RARE[:4]!r} (prefix)", ListRequest(query=RARE[:4]), args.repeat),
        ]
        words = vocabulary(random.Random(1))
        common, mid = words[0], words[len(words) // 2]
        cases += [
            (f"query='{common} {RARE}'", ListRequest(query=f"{common} {RARE}"), args.repeat),
            (
                f"query='{common} {words[2]} {RARE[:4]}' (typing)",
                ListRequest(query=f"{common} {words[2]} {RARE[:4]}"),
                args.repeat,
            ),
            (f"query='{common} {mid}'", ListRequest(query=f"{common} {mid}"), 5),
            (f"query={mid!r} (mid-frequency)", ListRequest(query=mid), 5),
            (f"query={common!r} (in 90% of messages)", ListRequest(query=common), 3),
        ]
        print(f"\n{'case':<40} {'median ms':>10} {'matches':>9}")
        for name, req, repeat in cases:
            # one untimed query first warms the page cache and the statement cache
            ms = median_ms(partial(idx.query, req, now=NOW), repeat, warmup=1)
            total = idx.query(req, now=NOW).total_sessions
            print(f"{name:<40} {ms:>10.2f} {total:>9,}")

        # one live append: the store's apply of a single new message to a session
        target = next(sessions(1, seed=99))
        target.session_id = "bench-target"
        idx.apply([(target, [], "p", 0)])
        times = []
        for k in range(args.repeat):
            ts = iso(NOW + timedelta(seconds=k))
            m = Message("user", f"live message {k} about {RARE}", ts, {}, f"live{k}")
            target.messages.append(m)
            target.stats.total_messages += 1
            target.seq += 1
            target.last_updated = ts
            ev = MessageAppended(
                seq=target.seq,
                id=f"e{k}",
                ts=ts,
                data=MessageAppendedData(m.message_id, "user", m.content, ts, {}),
            )
            t0 = time.perf_counter()
            idx.apply([(target, [ev], "p", k)])
            times.append(time.perf_counter() - t0)
        print(f"{'apply one appended message':<40} {statistics.median(times) * 1000:>10.2f}")
        idx.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
