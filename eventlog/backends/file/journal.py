"""One session's journal file: recovery, locked appends and group-commit fsync.

Writers in this process are serialised by a thread lock; writers in other processes by
an exclusive ``flock(2)`` on the journal file itself, held only while a line is written.
Before writing, a writer reads whatever other processes appended since it last looked
(``_catch_up``), so seq stays gap-free across processes.

Durability (group-commit fsync, publishing what became durable) is ``durability.py``'s
``GroupCommit``, which ``Journal`` mixes in; the syscalls both use are ``syscalls.py``'s.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import JournalCorrupt, SessionNotFound, StorageError
from ...events import (
    Event,
    MessageDelta,
    encode_line,
)
from ...model import Summary, summarize
from ...state import SessionState
from . import faults, syscalls
from .durability import FsyncPolicy, GroupCommit, SyncState
from .files import fsync_dir
from .idstore import IdStore
from .older import OlderState
from .scan import BadLine, scan

T = TypeVar("T")


class Call:
    """One queued append (see ``Journal.append``)."""

    __slots__ = ("build", "done", "end", "error", "result")

    def __init__(self, build: Callable[[SessionState], tuple[list[Event], Any]]) -> None:
        self.build = build
        self.done = False
        self.end = 0
        self.error: BaseException | None = None
        self.result: Any = None

    def outcome(self) -> Any:
        """The build's result, or its error (raised); call once ``end`` is committed."""
        if self.error is not None:
            raise self.error
        return self.result


class Journal(GroupCommit, OlderState, SessionState):
    """An open journal: the in-memory state of a session plus its file descriptor."""

    def __init__(
        self,
        path: str,
        session_id: str,
        policy: FsyncPolicy = "always",
        on_durable: Callable[[str, list[Event], Summary | None], None] | None = None,
        resume_after: int | None = None,
        listening: Callable[[], bool] = lambda: True,
        ids: IdStore | None = None,
    ) -> None:
        """``resume_after``: when this replaces a journal object whose write or fsync
        failed, the last seq that one published (see below). With ``ids`` the journal
        starts from its snapshot when the id store covers it (see ``older.py``)."""
        self.path = path
        self.session_id = session_id
        self.policy = policy
        self._on_durable = on_durable
        self._listening = listening  # is anyone to be told a list row? (else skip it)
        self.lock = threading.RLock()  # serialises this process's writers and readers
        self._queue_lock = threading.Lock()
        self._queue: list[Call] = []
        self._cond = threading.Condition(threading.Lock())
        self._publish = threading.Lock()
        self._sync = SyncState()
        self.poisoned = False  # a write/fsync failed: reopen before using again
        self.users = 0  # leases the store handed out (guarded by the store's lock)
        self.retired = False  # replaced while leased: the last release closes it
        # replaces a poisoned journal, whose state the index may have read only in part:
        # the index flush reconciles this session's whole row and docs once
        self.reindex = resume_after is not None
        self.deleted = False
        SessionState.__init__(self, session_id)
        self.ids = ids
        self.moved_upto = 0  # ids of events up to this seq are in ``ids``, not in memory
        if ids is not None:
            self._layer(ids)
        self.bad: list[BadLine] = []
        self.unindexed: list[Event] = []  # drained by the store's index flush
        self.offset = 0  # past the last complete line applied to state
        # what the state holds, in JSON bytes (see ``held``): a snapshot's size plus the
        # journal bytes folded in after it (memory is about 1.5-2x that)
        self._held_base = 0
        self._held_from = 0
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        try:
            st = os.fstat(self.fd)
            self.ino, self.dev = st.st_ino, st.st_dev
            if ids is not None and resume_after is None:
                self._start_from_snapshot(ids)
            with self._flocked():
                read = self._catch_up(repair=True)
            if policy == "always":
                self._sync_on_open()
            # History is not news: nothing read at open is published or re-indexed,
            # except what a failed predecessor wrote but never published (its fsync
            # failed after the write): those lines are in the file, now fsynced, so
            # they go out first, in order, with the next publish (no gap for
            # subscribers; a duplicate is dropped by them, a gap could not be filled).
            missed = [] if resume_after is None else [e for e in read if e.seq > resume_after]
            self._sync = SyncState(written=self.offset, durable=self.offset)
            if missed:
                self._sync.pending.append((self.offset, missed, self._row(missed)))
            self.unindexed = list(missed)  # a copy: _apply extends it
            self.published_seq = missed[0].seq - 1 if missed else self.last_seq
        except BaseException:
            os.close(self.fd)
            raise

    # -- state ------------------------------------------------------------------

    def _row(self, events: list[Event]) -> Summary | None:
        # Computed here, under ``lock``, because listeners run without it (taking it
        # there would invert the lock order against writers waiting on ``_cond``).
        if not self._listening() or all(isinstance(e, MessageDelta) for e in events):
            return None  # nobody to tell; or a token stream (no row worth a notice per delta)
        return summarize(self.folder.view())

    def _apply(self, events: list[Event], end: int) -> None:
        self.apply_state(events)
        self.unindexed.extend(events)
        self.offset = end

    def _flocked(self) -> _FileLock:
        return _FileLock(self.fd)

    def _check_same_file(self) -> int:
        """The file's size, or SessionNotFound if the path no longer names our inode
        (deleted/replaced). Same inode, same file: the size serves ``_catch_up`` too."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != self.ino:
            self.deleted = True
            raise SessionNotFound(self.session_id)
        return st.st_size

    def _catch_up(self, repair: bool = False, size: int | None = None) -> list[Event]:
        """Read lines other processes appended since ``offset``; caller holds ``lock``.

        With ``repair`` (caller also holds the flock, so no live writer is mid-line)
        a torn tail is cut off and kept beside the journal in ``<journal>.torn``.
        """
        if size is None:
            size = os.fstat(self.fd).st_size
        if size < self.offset:
            self.poisoned = True
            raise JournalCorrupt(
                f"{self.path} shrank from {self.offset} to {size} bytes while open; "
                "another tool truncated it: run `sessionlog verify`"
            )
        if size == self.offset:
            return []
        buf = os.pread(self.fd, size - self.offset, self.offset)
        found = scan(buf, self.offset, self.last_seq)
        self.bad.extend(found.bad)
        if found.torn and repair:
            self._cut_tail(found.end, buf[found.end - self.offset :])
        if found.events:
            self._apply(found.events, found.end)
            row = self._row(found.events)
            with self._cond:
                # the file holds these lines now: an fsync from here on covers them
                # (without this, _commit after a refresh waits for a target it never sets)
                self._sync.written = max(self._sync.written, found.end)
                self._sync.pending.append((found.end, found.events, row))
        else:
            self.offset = found.end
        return found.events

    def _cut_tail(self, end: int, torn: bytes) -> None:
        aside = self.path + ".torn"
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, torn if torn.endswith(b"\n") else torn + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.ftruncate(self.fd, end)
        syscalls.fdatasync(self.fd)

    # -- writing ------------------------------------------------------------------

    def append(self, build: Callable[[SessionState], tuple[list[Event], T]]) -> T:
        """Write the events ``build`` returns, atomically and in order, then wait for
        durability per the policy. ``build`` runs with the journal locked and caught up,
        so it may read ``last_seq``/``event_ids`` and assign seqs; it may raise to refuse.

        Concurrent appends are combined: whoever holds the lock runs every queued
        ``build`` and writes all their lines with one flock, one stat and one write
        (then they share the fsync too). Under contention that turns N rounds of
        syscalls and GIL hand-offs into one.
        """
        call = Call(build)
        with self._queue_lock:
            self._queue.append(call)
        with self.lock:
            if not call.done:
                self._run_queue()
        self.commit(call.end)
        return call.outcome()  # type: ignore[no-any-return]

    def try_write(
        self, builds: list[Callable[[SessionState], tuple[list[Event], Any]]], wait: float = 0.002
    ) -> list[Call] | None:
        """The first half of ``append`` for an event loop: build and write ``builds`` in
        order, with one flock, stat and write (no fsync), or None if the journal stays
        busy for ``wait`` seconds or another process is mid-write (the caller then falls
        back to ``append`` in a thread).

        Writers in this process hold ``lock`` for microseconds (no fsync under it), so
        a short wait here beats a thread hop; appends queued by threads meanwhile are
        written along with these. The caller awaits ``commit(call.end)`` elsewhere,
        then takes ``call.outcome()``.
        """
        if not self.lock.acquire(timeout=wait):
            return None
        try:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another process is mid-write: never wait for it here
            calls = [Call(b) for b in builds]
            with self._queue_lock:
                batch, self._queue = self._queue, []
            self._run_batch(batch + calls, flocked=True)
            return calls
        finally:
            self.lock.release()

    def _run_queue(self) -> None:
        """Run and write every queued append; caller holds ``lock``."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        self._run_batch(batch)

    def _run_batch(self, batch: list[Call], flocked: bool = False) -> None:
        """Run and write ``batch``; caller holds ``lock`` (and the flock if ``flocked``,
        which is released here)."""
        try:
            if self.poisoned:
                if flocked:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                raise StorageError(f"{self.path}: an earlier write failed; reopen the journal")
            with _FileLock(self.fd, held=flocked):
                size = self._check_same_file()
                caught = self._catch_up(repair=True, size=size)
                start = pos = self.offset
                chunks: list[bytes] = []
                written: list[tuple[Call, list[Event]]] = []
                for c in batch:
                    try:
                        events, c.result = c.build(self)
                    except BaseException as e:  # a refusal concerns this call only
                        c.error, c.end = e, (pos if caught else 0)
                        continue
                    if events:
                        data = b"".join(encode_line(e) for e in events)
                        chunks.append(data)
                        pos += len(data)
                        # applied before the write so the next build sees its seqs and
                        # ids; if the write fails the journal is poisoned and re-read
                        self._apply(events, pos)
                        written.append((c, events))
                    c.end = pos  # a duplicate may point at a line of this very batch
                if not chunks:
                    return
                try:
                    self._write_all(b"".join(chunks), start)
                except StorageError:
                    self.poisoned = True
                    raise
                faults.reach("journal.after_write")
                row = self._row([e for _, evs in written for e in evs])
                with self._cond:
                    self._sync.written = pos
                    for i, (c, evs) in enumerate(written):
                        last = i == len(written) - 1
                        self._sync.pending.append((c.end, evs, row if last else None))
        except BaseException as e:
            for c in batch:
                if c.error is None:
                    c.error, c.end = e, 0
        finally:
            for c in batch:
                c.done = True

    def _write_all(self, data: bytes, start: int) -> None:
        """Write ``data`` at the end of the file, or cut the file back and raise."""
        done = 0
        try:
            faults.reach("journal.write")
            while done < len(data):
                n = syscalls.write(self.fd, data[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                done += n
        except OSError as e:
            try:
                os.ftruncate(self.fd, start)
            except OSError:
                self.poisoned = True
            raise StorageError(
                f"writing to {self.path} failed ({os.strerror(e.errno or errno.EIO)}); "
                "the append was not saved: free disk space or fix the disk, then retry",
                e.errno,
            ) from e

    def refresh(self) -> list[Event]:
        """Pick up lines another process appended (the watcher calls this)."""
        with self.lock:
            if self.poisoned or self.deleted:
                return []
            size = self._check_same_file()
            events = self._catch_up(repair=False, size=size)
            end = self.offset
        if events:
            self.commit(end)
        return events

    def close(self) -> None:
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class _FileLock:
    """``with`` an exclusive flock on an fd (other processes appending to the file)."""

    __slots__ = ("fd", "held")

    def __init__(self, fd: int, held: bool = False) -> None:
        self.fd = fd
        self.held = held  # already taken (with LOCK_NB): only release it

    def __enter__(self) -> None:
        if not self.held:
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def create(path: str, first: Event) -> None:
    """Create a new journal holding ``first``, durably (file and folder fsynced) and
    atomically: the line is written and fsynced in a temp file that is then linked into
    place, so a crash never leaves an empty journal (a session without its
    session.started). ``link``, unlike ``rename``, raises FileExistsError rather than
    replace a journal that exists."""
    line = encode_line(first)
    tmp = f"{path}.new-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                if syscalls.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "short write")
                syscalls.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StorageError(
                f"creating {path} failed ({os.strerror(e.errno or errno.EIO)}): "
                "free disk space or fix the disk, then retry",
                e.errno,
            ) from e
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(os.path.dirname(path))
