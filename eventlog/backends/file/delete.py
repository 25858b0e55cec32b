"""Deleting a session, crash-atomically, from this process or while others append.

The rename of the journal into the trash, under the journal's flock, is the commit
point: an append in another process either finished before it (and is deleted with the
session) or finds, under the same flock, that the path no longer names its file
(``SessionNotFound``). The snapshot and torn tail go before the rename, so a crash never
leaves a deleted session's canonical JSON behind; the trash copy goes after it (and any
left by a crash is emptied at the next start).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

from ...errors import SessionNotFound
from . import faults
from .files import fsync_dir
from .snapshot import snapshot_path

if TYPE_CHECKING:
    from .journal import Journal


def remove_journal(path: str, trash_dir: str, session_id: str, j: Journal | None) -> None:
    """Remove a session's files (``j``: its journal open here, marked deleted; the
    caller closes it), or raise SessionNotFound if the journal is gone already."""
    trash = os.path.join(trash_dir, f"{session_id}.{os.urandom(4).hex()}.jsonl")
    try:
        lock_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # deleted by another process since we looked it up
        raise SessionNotFound(session_id) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # no other process is mid-append
        if j is not None:
            j.deleted = True
        # Derived files go first: a crash after the commit point must not leave the
        # deleted session's canonical JSON behind (other tools read it).
        for derived in (snapshot_path(path), path + ".torn"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(derived)
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        faults.reach("delete.after_rename")
        fsync_dir(os.path.dirname(path))
    finally:
        os.close(lock_fd)
    for leftover in (snapshot_path(path), path + ".torn", trash):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
