"""sessionlog's engine: events, folding, requests and the storage backends.

``connect(target)`` opens the backend a target names (SPEC §9): a filesystem path is a
data directory (file backend), ``postgresql://`` / ``postgres://`` a database shared by
any number of instances, ``http://`` / ``https://`` a running server.
"""

from __future__ import annotations

import os
from typing import Any

from .backend import Backend

__all__ = ["Backend", "connect"]


def connect(target: str | os.PathLike[str], **options: Any) -> Backend:
    """The backend for ``target``; ``options`` go to its constructor (e.g. ``fsync=`` for
    a data directory, ``pool_size=`` for PostgreSQL, ``token=`` for a server)."""
    t = os.fspath(target)
    scheme = t.split("://", 1)[0].lower() if "://" in t else ""
    if scheme in ("postgresql", "postgres"):
        from .backends.postgres.backend import PostgresBackend

        return PostgresBackend(t, **options)
    if scheme in ("http", "https"):
        from .backends.remote import RemoteBackend

        return RemoteBackend(t, **options)
    if scheme:
        raise ValueError(
            f"cannot connect to {t!r}: expected a data directory path, postgresql://…, "
            "postgres://…, http://… or https://…"
        )
    from .backends.file.backend import FileBackend

    return FileBackend(t, **options)
