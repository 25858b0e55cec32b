"""Group commit: when an appended line counts as durable, and who hears of it.

Mixed into ``Journal``. With ``always``, whoever finds no fsync in flight runs one for
everything written so far and the others wait for it or the next, so concurrent
appends share fsyncs; events are handed to ``on_durable`` in seq order, only once an
fsync covers them. A failed fsync poisons the journal: nothing after the last good one
is acknowledged, and the file is reopened (and re-read) before it is used again.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ...errors import StorageError
from ...events import Event
from ...model import Summary
from . import faults, syscalls

FsyncPolicy = Literal["always", "interval", "never"]


@dataclass
class SyncState:
    """Group-commit bookkeeping, guarded by ``GroupCommit._cond``."""

    written: int = 0  # file offset past our last written line
    durable: int = 0  # file offset known to be on disk
    syncing: bool = False
    failed: StorageError | None = None
    # (end offset, events, list row after them) written but not yet handed to
    # on_durable, in seq order
    pending: list[tuple[int, list[Event], Summary | None]] = field(default_factory=list)


class GroupCommit:
    """The durability half of ``Journal``; relies on its file and state."""

    path: str
    session_id: str
    policy: FsyncPolicy
    fd: int
    poisoned: bool
    published_seq: int
    _cond: threading.Condition
    _sync: SyncState
    _publish: threading.Lock
    _on_durable: Callable[[str, list[Event], Summary | None], None] | None

    def _sync_on_open(self) -> None:
        """fsync what is already in the file before answering for it.

        Lines left by a process killed before its fsync, or by an fsync that failed,
        are readable but maybe not on disk; a retry of one of them is answered as a
        duplicate (a success), so it must be durable first, or the retry refused.
        """
        try:
            faults.reach("journal.fsync")
            syscalls.fdatasync(self.fd)
        except OSError as e:
            raise self._fsync_failed(e) from e

    def commit(self, end: int) -> None:
        """Make everything up to ``end`` durable per policy (waiting for it), then
        publish in order."""
        if self.policy != "always":
            self._publish_upto(None)
            return
        self._publish_upto(self.make_durable(end))

    def make_durable(self, end: int) -> int:
        """fsync (or wait for the fsync that covers) everything up to ``end``; returns
        the durable offset. Publishes nothing: ``commit`` does, or the event loop's
        ``publish_durable`` (so an fsync thread hands the loop one wake-up, not two)."""
        cond, st = self._cond, self._sync
        with cond:
            while True:
                if st.durable >= end:
                    break
                if st.failed is not None:
                    raise st.failed
                if not st.syncing:
                    st.syncing = True
                    target = st.written
                    cond.release()
                    err: OSError | None = None
                    try:
                        faults.reach("journal.fsync")
                        syscalls.fdatasync(self.fd)
                    except OSError as e:
                        err = e
                    finally:
                        cond.acquire()
                        st.syncing = False
                    if err is not None:
                        raise self._fail(err)
                    st.durable = max(st.durable, target)
                    faults.reach("journal.after_fsync")
                    cond.notify_all()
                else:
                    cond.wait()
            return st.durable

    def flush_target(self) -> int:
        """For a flush of the whole filesystem about to start (``FsFlush``): the offset
        it will make durable. Raises the journal's StorageError if an fsync of it
        already failed (or a test injects one here)."""
        with self._cond:
            if self._sync.failed is not None:
                raise self._sync.failed
            target = self._sync.written
        try:
            faults.reach("journal.fsync")
        except OSError as e:
            with self._cond:
                raise self._fail(e) from e
        return target

    def flushed(self, target: int) -> None:
        """A filesystem flush that began once ``target`` was written succeeded."""
        with self._cond:
            self._sync.durable = max(self._sync.durable, target)
            faults.reach("journal.after_fsync")
            self._cond.notify_all()

    def publish_durable(self) -> None:
        """Publish, in order, what is durable and not published yet."""
        with self._cond:
            durable = self._sync.durable
        self._publish_upto(durable)

    @property
    def written_offset(self) -> int:
        with self._cond:
            return self._sync.written

    def _fail(self, err: OSError) -> StorageError:
        """Record a failed fsync (caller holds ``_cond``) and wake whoever waits for one:
        they raise it too. Returns the error to raise."""
        self._sync.failed = self._fsync_failed(err)
        self._cond.notify_all()
        return self._sync.failed

    def _fsync_failed(self, err: OSError) -> StorageError:
        # After a failed fsync the kernel may have dropped the dirty pages and marked
        # them clean: retrying would "succeed" without the data. Refuse everything not
        # yet durable and make whoever comes next reopen (and re-read) the file.
        self.poisoned = True
        return StorageError(
            f"fsync of {self.path} failed ({os.strerror(err.errno or errno.EIO)}); "
            "appends since the last successful fsync were not acknowledged: "
            "check the disk, then retry (retries with the same id are deduplicated)",
            err.errno,
        )

    def _publish_upto(self, durable: int | None) -> None:
        with self._cond:
            pend = self._sync.pending
            if durable is None:
                batch, self._sync.pending = pend, []
            else:
                k = 0
                while k < len(pend) and pend[k][0] <= durable:
                    k += 1
                batch, self._sync.pending = pend[:k], pend[k:]
            if not batch:
                return
            self._publish.acquire()  # taken before releasing cond: keeps batches in order
        try:
            events = [e for _, evs, _ in batch for e in evs]
            if self._on_durable is not None:
                rows = [r for _, _, r in batch if r is not None]
                self._on_durable(self.session_id, events, rows[-1] if rows else None)
            if events:
                self.published_seq = max(self.published_seq, events[-1].seq)
        finally:
            self._publish.release()

    def sync(self) -> None:
        """fsync everything written so far (the interval flusher and the compactor)."""
        with self._cond:
            target = self._sync.written
        if self.policy == "always":
            self.commit(target)
            return
        try:
            syscalls.fdatasync(self.fd)
        except OSError as e:
            raise self._fsync_failed(e) from e
        with self._cond:
            self._sync.durable = max(self._sync.durable, target)

    @property
    def durable_offset(self) -> int:
        with self._cond:
            return self._sync.durable
