"""Server settings: one dataclass filled by the command line (or by tests directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MiB = 1024 * 1024
DATABASE_ENV = "SESSIONLOG_DATABASE_URL"  # --database when not given
DATA_ENV = "SESSIONLOG_DATA"  # --data when not given (else ./memory)
DATA_HELP = f"data directory (default: ${DATA_ENV} or ./memory)"


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one client from growing server memory without limit."""

    body_bytes: int = 8 * MiB  # any POST except import
    import_bytes: int = 256 * MiB  # POST /api/sessions/import (a whole backup)
    frame_bytes: int = 4 * MiB  # one incoming WebSocket message (close 1009 beyond)
    send_queue_bytes: int = 8 * MiB  # frames queued for one slow socket (close 4008 beyond)
    inflight_ops: int = 256  # concurrent writes one socket may have in progress
    heartbeat: float = 30.0  # seconds between WebSocket pings (dead peers are dropped)
    auth_timeout: float = 10.0  # seconds a socket may take to send its auth frame
    close_timeout: float = 5.0  # seconds to wait for a peer's close handshake


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 5174
    data: str = "memory"
    database: str | None = None  # postgresql://… : use that database instead of ``data``
    read_database: str | None = None  # a read replica of ``database`` for list/search
    fsync: Literal["always", "interval", "never"] = "always"
    compact_interval: float = 5.0  # seconds between compactions; <= 0 disables the task
    token: str | None = None
    allow_origins: tuple[str, ...] = ()
    watch: bool = True  # stream other processes' appends (watchfiles)
    cache_mb: int = 64  # session JSON held by open journals (memory is about 1.5-2x)
    limits: Limits = field(default_factory=Limits)
