"""The server's JSON error envelope turned back into the engine's exceptions.

A caller of ``RemoteBackend`` catches the same classes as one holding a ``FileBackend``
(``SessionNotFound``, ``SequenceConflict``, ``InvalidRequest``…); the codes that only a
server can answer (``unauthorized``, ``forbidden``, …) and a server that cannot be
reached get ``RemoteError``/``ServerUnavailable``, both ``EventLogError``s.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import (
    EventLogError,
    InvalidRequest,
    JournalCorrupt,
    PayloadTooLarge,
    SequenceConflict,
    SessionExists,
    SessionNotFound,
    StorageError,
)


class RemoteError(EventLogError):
    """An error answer with no in-process twin (401, 403, 405, 415, 500…): the server's
    ``code`` and message as sent, and the HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ServerUnavailable(EventLogError):
    """The server could not be reached, or the connection broke, after every retry."""

    code = "unavailable"


def error_from(
    status: int,
    body: bytes,
    session_id: str | None = None,
    expected_seq: int | None = None,
) -> EventLogError:
    """The exception an in-process backend would have raised for this answer."""
    try:
        env: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        env = None
    if not isinstance(env, dict) or not isinstance(env.get("code"), str):
        text = body[:200].decode("utf-8", "replace")
        return RemoteError(
            "internal",
            f"the server answered HTTP {status} without an error envelope: {text!r}",
            status,
        )
    code: str = env["code"]
    message = str(env.get("error", ""))
    err: EventLogError
    if code == "not_found" and session_id is not None:
        err = SessionNotFound(session_id)
    elif code == "conflict" and "current_seq" in env:
        err = SequenceConflict(
            session_id or "", -1 if expected_seq is None else expected_seq, int(env["current_seq"])
        )
    elif code == "conflict" and isinstance(env.get("session_id"), str):
        err = SessionExists(env["session_id"])
    elif code == "payload_too_large":
        err = PayloadTooLarge(message, env.get("field"))
    elif code in ("invalid_request", "invalid_json"):
        err = InvalidRequest(message, env.get("field"))
    elif code == "storage_error":
        err = StorageError(message)
    elif code == "journal_corrupt":
        err = JournalCorrupt(message)
    else:
        err = RemoteError(code, message, status)
    err.message = message or err.message  # the server's words, which name the request
    err.args = (err.message,)
    setattr(err, "status", status)  # noqa: B010 (the in-process classes have no such field)
    return err
