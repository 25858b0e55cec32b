"""The remote backend: a running sessionlog server used through its HTTP + WebSocket API."""

from .backend import RemoteBackend
from .errors import RemoteError, ServerUnavailable

__all__ = ["RemoteBackend", "RemoteError", "ServerUnavailable"]
