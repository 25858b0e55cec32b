"""Indexing many journals at once (a copied or restored store, or a lost index): list
rows first, full-text docs after.

Reading a journal and making its list row is independent per session, so with more
than one CPU worker processes read the journals and build the rows (``summary_of``:
no messages are folded; ``list_row``: encoded as the index stores them), and this
process only inserts them (``Index.apply_rows``, without docs), a few thousand per
transaction, so every session is listed in seconds. The docs, the slow part of an FTS
index, are written after (``fill_docs``), on the store's background thread when the
server starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import msgspec

import eventlog

from ...errors import EventLogError, JournalCorrupt
from ...fold import summary_of
from ...model import Session, summarize
from .checks import stand_in
from .index_schema import Row, list_row
from .scan import read_tail
from .snapshot import load_cold

if TYPE_CHECKING:
    from .index import Index
    from .layout import Layout

CHUNK = 250  # journals per task: enough to amortise the pickling
POOL_MIN = 4000  # fewer journals are read here: starting workers costs ~0.3 s
# how far (bytes of rows) a worker may run ahead of this process's index writes: the
# default pipe (64 KiB) held less than one chunk, so the workers stopped at every write
PIPE_BYTES = 1 << 20
# 100k sessions after dropping the page cache, on 2 CPUs: 2 workers 14.2 s to the
# complete list, 6 workers 10.3 s, 12 10.1 s, 24 11.3 s; warm cache 5.7-6.2 s / 5.4 s
IO_WORKERS = 6
# rows per index transaction: each commit writes every index page the rows touched, and
# ids and dates are spread over all of them, so at 100k sessions commits of 250 rows
# cost ~3x the CPU of 2000s; 2000 keeps a reader waiting < ~0.1 s, the list growing
TX_ROWS = 2000
Damaged = tuple[Session, str, int, str]
Rows = tuple[list[Row], list[Damaged]]  # list rows (``index.list_row``), damaged rows


Item = tuple[str, str, str, bool | None]  # session id, path, relative path, has snapshot


def read_rows(items: list[Item]) -> Rows:
    """(list rows, damaged rows) of journals given as (session id, path, relative path,
    has a snapshot: None if not known). Runs in a worker process, which also builds the
    rows (``list_row``) so the process writing the index only inserts them; a journal
    gone meanwhile is left out."""
    rows: list[Row] = []
    damaged: list[Damaged] = []
    for sid, path, rel, snap in items:
        try:
            if snap is False:  # the whole journal: no stat, no failed open of a snapshot
                whole = read_tail(path, 0, 0)
                if not whole.events:
                    raise JournalCorrupt(f"{path} holds no readable event")
                summary, offset = summary_of(sid, whole.events), whole.end
            else:
                session, offset, _ = load_cold(path, sid)
                summary = summarize(session)
        except FileNotFoundError:
            continue
        except EventLogError as e:
            if os.path.exists(path):
                damaged.append(stand_in(sid, path, rel, e))
            continue
        rows.append(list_row(summary, rel, offset))
    return rows, damaged


def workers() -> int:
    """Worker processes worth starting: the CPUs this process may run on, and at least
    ``IO_WORKERS`` (a worker waits on one read at a time: with a cold page cache, more of
    them keep more reads in flight)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(cpus, IO_WORKERS)


def rows_of(
    items: list[Item], procs: int | None = None, pool_min: int | None = None
) -> Iterator[Rows]:
    """``read_rows`` of ``items`` in chunks, in worker processes when it pays.

    Workers are fresh interpreters running this module (not multiprocessing, which
    would re-import the embedding program's main module in each), each given a slice
    of ``items`` and writing a frame per chunk, taken here as it arrives from any of
    them; a full pipe (``PIPE_BYTES``) holds a worker back, so memory stays bounded for
    any store size. A worker that fails has the rest of its slice read here."""
    procs = workers() if procs is None else procs
    if procs < 2 or len(items) < (POOL_MIN if pool_min is None else pool_min):
        for i in range(0, len(items), CHUNK):
            yield read_rows(items[i : i + CHUNK])
        return
    per = -(-len(items) // procs)
    slices = [items[i : i + per] for i in range(0, len(items), per)]
    children = [_spawn() for _ in slices]  # all at once: they start up side by side
    try:
        for child, part in zip(children, slices, strict=True):
            if child is not None and child.stdin is not None:
                with contextlib.suppress(OSError):  # a worker that died at once: read here
                    # all of it is read before the first row is written; the chunk
                    # size goes along, as the rest of a failed slice is counted in it
                    child.stdin.write(_encode((CHUNK, part)))
                    child.stdin.close()
        for k, child in enumerate(children):
            if child is None:
                for i in range(0, len(slices[k]), CHUNK):
                    yield read_rows(slices[k][i : i + CHUNK])
        done = dict.fromkeys(range(len(slices)), 0)
        pipes = {k: c.stdout.fileno() for k, c in enumerate(children) if c and c.stdout}
        for k, frame in _frames(pipes):
            if frame is not None:
                done[k] += 1
                yield _decode_rows(frame)
                continue
            rest = slices[k][done[k] * CHUNK :]
            for i in range(0, len(rest), CHUNK):  # a worker died: do its rest
                yield read_rows(rest[i : i + CHUNK])
    finally:
        for child in children:
            if child is None:
                continue
            if child.poll() is None:
                child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()


def _spawn() -> subprocess.Popen[bytes] | None:
    """A worker (``python -m`` this module), or None if no interpreter can be started
    (an embedded Python): its slice is then read here."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(eventlog.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            bufsize=0,  # raw pipes: _frames reads the descriptor itself
        )
    except OSError:
        return None
    if child.stdout is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # a smaller pipe only costs some speed
            fcntl.fcntl(child.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return child


def _frames(pipes: dict[int, int]) -> Iterator[tuple[int, bytes | None]]:
    """(worker, frame) from the workers' pipes (worker -> descriptor) in the order they
    arrive; (worker, None) once a worker's pipe ends (a partial frame is dropped).
    Each read takes all a pipe holds, so a worker is never kept waiting on a
    half-read frame while the caller writes the rows of another."""
    bufs = {k: bytearray() for k in pipes}
    with selectors.DefaultSelector() as sel:
        for k, fd in pipes.items():
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, k)
        while sel.get_map():
            for key, _ in sel.select():
                k = key.data
                try:
                    data = os.read(key.fd, PIPE_BYTES)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    yield k, None
                    continue
                buf = bufs[k]
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + (n := int.from_bytes(buf[:4], "little")):
                    frame = bytes(buf[4 : 4 + n])
                    del buf[: 4 + n]
                    yield k, frame


_encode = msgspec.msgpack.Encoder().encode
_decode_task = msgspec.msgpack.Decoder(tuple[int, list[Item]]).decode
_decode_rows = msgspec.msgpack.Decoder(tuple[list[Row], list[Damaged]]).decode


def _worker() -> None:
    """A worker of ``rows_of``: items from stdin, a frame of rows per chunk to stdout."""
    chunk, items = _decode_task(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    for i in range(0, len(items), chunk):
        frame = _encode(read_rows(items[i : i + chunk]))
        out.write(len(frame).to_bytes(4, "little") + frame)
        out.flush()


def index_rows(index: Index, items: list[Item], progress: Callable[[int], None] | None) -> None:
    """List every journal of ``items`` (session id, path, relative path), docs to follow,
    ``TX_ROWS`` rows per transaction."""
    n = 0
    pending: list[Row] = []
    for rows, damaged in rows_of(items):
        pending += rows
        if damaged:
            index.apply_damaged(damaged)
            n += len(damaged)
        if len(pending) >= TX_ROWS:
            index.apply_rows(pending)
            n, pending = n + len(pending), []
            if progress is not None:
                progress(n)
    if pending:
        index.apply_rows(pending)
        if progress is not None:
            progress(n + len(pending))


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
