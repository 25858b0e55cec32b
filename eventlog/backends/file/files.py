"""Durable file primitives shared by the journal, snapshots and imports."""

from __future__ import annotations

import contextlib
import os


def fsync_dir(path: str) -> None:
    """fsync a folder so a create/rename/unlink in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(final: str, kind: str, data: bytes) -> str:
    """Write ``data`` to a new temp file beside ``final`` and fsync it; returns its path.

    The name is ``{final}.{kind}-{pid}-{hex}`` (``Layout.sweep_temp`` removes those of
    dead processes). On any failure the temp file is removed and the error raised.
    """
    tmp = f"{final}.{kind}-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp
