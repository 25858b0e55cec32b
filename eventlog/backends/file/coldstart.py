"""Indexing many journals at once (a copied or restored store, or a lost index): list
rows first, full-text docs after.

Reading and folding a journal is independent per session, so with more than one CPU the
rows are computed in worker processes while this process writes them; the index only takes rows without docs (``Index.apply_rows``), so
every session is listed in seconds. The docs, the slow part of an FTS index, are written
after (``fill_docs``), on the store's background thread when the server starts.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

import msgspec

import eventlog

from ...errors import EventLogError, JournalCorrupt
from ...fold import fold
from ...model import Session, Summary, summarize
from .checks import stand_in
from .scan import read_tail
from .snapshot import load_cold

if TYPE_CHECKING:
    from .index import Index
    from .layout import Layout

CHUNK = 250  # journals per task: enough to amortise the pickling
POOL_MIN = 4000  # fewer journals are read here: starting workers costs ~0.3 s
Damaged = tuple[Session, str, int, str]
Rows = tuple[list[tuple[Summary, str, int]], list[Damaged]]


Item = tuple[str, str, str, bool | None]  # session id, path, relative path, has snapshot


def read_rows(items: list[Item]) -> Rows:
    """(list rows, damaged rows) of journals given as (session id, path, relative path,
    has a snapshot: None if not known). Runs in a worker process; a journal gone
    meanwhile is left out."""
    rows: list[tuple[Summary, str, int]] = []
    damaged: list[Damaged] = []
    for sid, path, rel, snap in items:
        try:
            if snap is False:  # the whole journal: no stat, no failed open of a snapshot
                whole = read_tail(path, 0, 0)
                session, offset = fold(sid, whole.events), whole.end
                if not whole.events:
                    raise JournalCorrupt(f"{path} holds no readable event")
            else:
                session, offset, _ = load_cold(path, sid)
        except FileNotFoundError:
            continue
        except EventLogError as e:
            if os.path.exists(path):
                damaged.append(stand_in(sid, path, rel, e))
            continue
        rows.append((summarize(session), rel, offset))
    return rows, damaged


def workers() -> int:
    """Worker processes worth starting: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def rows_of(
    items: list[Item], procs: int | None = None, pool_min: int | None = None
) -> Iterator[Rows]:
    """``read_rows`` of ``items`` in chunks, in worker processes when it pays.

    Workers are fresh interpreters running this module (not multiprocessing, which
    would re-import the embedding program's main module in each), each given a slice
    of ``items`` and writing a frame per chunk; a full pipe holds them back, so memory
    stays bounded for any store size. A worker that fails has the rest of its slice
    read here."""
    procs = workers() if procs is None else procs
    if procs < 2 or len(items) < (POOL_MIN if pool_min is None else pool_min):
        for i in range(0, len(items), CHUNK):
            yield read_rows(items[i : i + CHUNK])
        return
    per = -(-len(items) // procs)
    slices = [items[i : i + per] for i in range(0, len(items), per)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(eventlog.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    children: list[subprocess.Popen[bytes] | None] = []
    for part in slices:
        child: subprocess.Popen[bytes] | None
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError:  # no interpreter to start (an embedded Python): read it here
            child = None
        if child is None or child.stdin is None:
            children.append(None)
            continue
        with contextlib.suppress(OSError):  # a worker that died at once: read here
            child.stdin.write(_encode(part))  # it reads all of it before it writes
            child.stdin.close()
        children.append(child)
    try:
        for k, maybe in enumerate(children):
            if maybe is None:
                for i in range(0, len(slices[k]), CHUNK):
                    yield read_rows(slices[k][i : i + CHUNK])
        with selectors.DefaultSelector() as sel:
            done = {}
            for k, child in enumerate(children):
                if child is None or child.stdout is None:
                    continue
                sel.register(child.stdout, selectors.EVENT_READ, k)
                done[k] = 0
            while sel.get_map():
                for key, _ in sel.select():
                    k = key.data
                    frame = _read_frame(key.fileobj)  # type: ignore[arg-type]
                    if frame is None:
                        sel.unregister(key.fileobj)
                        rest = slices[k][done[k] * CHUNK :]
                        for i in range(0, len(rest), CHUNK):  # a worker died: do its rest
                            yield read_rows(rest[i : i + CHUNK])
                        continue
                    done[k] += 1
                    yield _decode_rows(frame)
    finally:
        for child in children:
            if child is None:
                continue
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


_encode = msgspec.msgpack.Encoder().encode
_decode_items = msgspec.msgpack.Decoder(list[Item]).decode
_decode_rows = msgspec.msgpack.Decoder(
    tuple[list[tuple[Summary, str, int]], list[tuple[Session, str, int, str]]]
).decode


def _read_frame(f: BinaryIO) -> bytes | None:
    head = f.read(4)
    if len(head) < 4:
        return None
    n = int.from_bytes(head, "little")
    body = f.read(n)
    return body if len(body) == n else None


def _worker() -> None:
    """A worker of ``rows_of``: items from stdin, a frame of rows per chunk to stdout."""
    items = _decode_items(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    for i in range(0, len(items), CHUNK):
        frame = _encode(read_rows(items[i : i + CHUNK]))
        out.write(len(frame).to_bytes(4, "little") + frame)
        out.flush()


def index_rows(index: Index, items: list[Item], progress: Callable[[int], None] | None) -> None:
    """List every journal of ``items`` (session id, path, relative path), docs to follow."""
    n = 0
    for rows, damaged in rows_of(items):
        if rows:
            index.apply_rows(rows)
        if damaged:
            index.apply_damaged(damaged)
        n += len(rows) + len(damaged)
        if progress is not None:
            progress(n)


def fill_docs(index: Index, layout: Layout, stop: threading.Event | None = None) -> int:
    """Write the full-text docs of every session listed without them; returns how many.
    Stops early (the rest stays marked, for the next start) when ``stop`` is set."""
    n = 0
    after = 0
    while stop is None or not stop.is_set():
        batch = index.undocumented(after, 200)
        if not batch:
            break
        after = batch[-1][0]
        sessions: list[tuple[int, Session]] = []
        for sid, session_id, journal, _ in batch:
            try:
                session, _, _ = load_cold(layout.absolute(journal), session_id)
            except (EventLogError, OSError, ValueError):
                continue  # gone or unreadable: its next apply or reconcile handles it
            sessions.append((sid, session))
        n += index.write_docs(sessions)
    return n


if __name__ == "__main__":
    _worker()
