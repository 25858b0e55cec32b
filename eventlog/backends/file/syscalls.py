"""The system calls a journal's durability rests on, in one place.

Module-level so fault-injection tests can replace them (``monkeypatch.setattr(syscalls,
"fdatasync", …)``); the engine always calls them through this module.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable

fdatasync: Callable[[int], None] = os.fdatasync
write: Callable[[int, bytes], int] = os.write


def _find_syncfs() -> Callable[[int], None] | None:
    """Linux ``syncfs(fd)``: flush the whole filesystem holding ``fd``, or None where it
    cannot stand in for fdatasync. Before Linux 5.8 it reported no writeback error
    (an append could be acknowledged although its page never reached the disk)."""
    if sys.platform != "linux":
        return None
    version = tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2])
    if version < (5, 8):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # a libc without it
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if fn(fd) != 0:  # ctypes releases the GIL for the call
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


syncfs: Callable[[int], None] | None = _find_syncfs()
