"""One flush of the whole filesystem (Linux ``syncfs``) for many journals at once.

When appends to many sessions wait at the same moment, each journal's own fdatasync
costs a device flush and, on ext4, a journal commit: 32 of them took about 2 ms and
70 µs of CPU each here, where one ``syncfs`` covering all 32 took 0.3-0.6 ms and 3 µs
each. ``syncfs`` also writes whatever else is dirty on the filesystem, so a process
that dirtied a lot of it would make every batch wait (a 3 GB ``dd`` beside 32 writers
held one flush for 590 ms). So no flush starts while the machine holds more than
``DIRTY_LIMIT`` of dirty or in-flight pages (``/proc/meminfo``, read in microseconds),
and a flush that still takes far longer than fdatasyncs would have makes the syncer go
back to fdatasyncs for a while (1 s, doubling while it stays slow).

Errors: ``syncfs`` reports a writeback error of any file of the filesystem once per
open descriptor (Linux 5.8 and later; older kernels are not used, see
``syscalls.syncfs``). So the flushes run one at a time (one thread) on one descriptor,
and after a failed one every journal is fdatasynced on its own from then on: each
descriptor sees its own file's error, so exactly the journals that lost data are
refused.
"""

from __future__ import annotations

import os
import time

from . import syscalls

SLOW_FLOOR = 0.1  # a flush slower than this, and than the fdatasyncs it replaces, is slow
DIRTY_LIMIT = 16 << 20  # bytes: ~30 ms of writing on a fast disk; an idle machine has ~2 MB
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 64.0


class FsFlush:
    """``syncfs`` on the filesystem holding ``root``; ``usable`` says whether to try."""

    def __init__(self, root: str) -> None:
        self._fd = -1
        self.dev = -1
        if syscalls.syncfs is not None:
            try:
                self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self.dev = os.fstat(self._fd).st_dev
            except OSError:
                self._fd = -1
        self._slow_until = 0.0
        self._backoff = FIRST_BACKOFF
        try:
            self._meminfo = os.open("/proc/meminfo", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._meminfo = -1
        self.fdatasync_s = 0.0  # a moving average of one fdatasync (``note_fdatasync``)

    def available(self) -> bool:
        """This system can flush the filesystem (and no flush has failed)."""
        return self._fd >= 0 and syscalls.syncfs is not None

    def usable(self) -> bool:
        """Available, and worth trying now (not slow lately, not much dirty data)."""
        return (
            self.available()
            and time.monotonic() >= self._slow_until
            and self.dirty_bytes() <= DIRTY_LIMIT
        )

    def dirty_bytes(self) -> int:
        """Dirty plus under-writeback page cache of the whole machine (0 if unknown)."""
        if self._meminfo < 0:
            return 0
        try:
            info = os.pread(self._meminfo, 8192, 0)
        except OSError:
            return 0
        return (_kib(info, b"\nDirty:") + _kib(info, b"\nWriteback:")) * 1024

    def note_fdatasync(self, seconds: float) -> None:
        self.fdatasync_s += (seconds - self.fdatasync_s) / 8

    def flush(self, journals: int) -> bool:
        """Flush the filesystem for ``journals`` journals (one call at a time: the
        syncer's one flushing thread). True: everything written before the call is on
        disk. False: fdatasync each."""
        syncfs = syscalls.syncfs
        if syncfs is None or self._fd < 0:
            return False
        t0 = time.monotonic()
        try:
            syncfs(self._fd)
        except OSError:
            self.close()  # which file failed is for each journal's fdatasync to say
            return False
        took = time.monotonic() - t0
        if took > max(SLOW_FLOOR, 2 * journals * self.fdatasync_s):
            self._slow_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        else:
            self._backoff = FIRST_BACKOFF
        return True

    def close(self) -> None:
        """Stop flushing (for good: after a failed flush, and when the syncer closes)."""
        for fd in (self._fd, self._meminfo):
            if fd >= 0:
                os.close(fd)
        self._fd = self._meminfo = -1


def _kib(info: bytes, key: bytes) -> int:
    """The kB figure after ``key`` in /proc/meminfo's text, or 0."""
    at = info.find(key)
    if at < 0:
        return 0
    start = at + len(key)
    end = info.find(b"kB", start)
    try:
        return int(info[start:end])
    except ValueError:
        return 0
