"""The engine's exceptions: one base, one subclass per thing a caller can act on.

Each carries a machine ``code`` (the server's error envelope uses it as is) and a
message that says what was expected, what came, and what to do.
"""

from __future__ import annotations


class EventLogError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(EventLogError):
    """Input that fails validation; ``field`` names the offending field when known."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLarge(InvalidRequest):
    """A message, frame or import that exceeds a configured size bound."""

    code = "payload_too_large"


class SessionNotFound(EventLogError):
    """No journal exists for the session id."""

    code = "not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} was not found: it may have been deleted; "
            "list sessions to see which exist"
        )
        self.session_id = session_id


class SequenceConflict(EventLogError):
    """``expected_seq`` did not match the session's last seq."""

    code = "conflict"

    def __init__(self, session_id: str, expected: int, current: int) -> None:
        super().__init__(
            f"session {session_id!r} is at seq {current}, but the request expected seq "
            f"{expected}: reload the session and retry with expected_seq={current}"
        )
        self.session_id = session_id
        self.expected = expected
        self.current = current


class SessionExists(EventLogError):
    """An import or create that would overwrite an existing session."""

    code = "conflict"

    def __init__(self, session_id: str) -> None:
        # Ids are kept on import (a backup restores the same sessions), so the only way
        # to bring this one back from the file is to delete the stored one first.
        super().__init__(
            f"session {session_id!r} already exists in this store, so nothing was imported; "
            "to restore it from this file, delete that session first (the page's Delete "
            "or POST /api/sessions/delete) and import again"
        )
        self.session_id = session_id


class JournalCorrupt(EventLogError):
    """A journal line that is complete but cannot be decoded (not a torn tail)."""

    code = "journal_corrupt"


class StorageError(EventLogError):
    """A write or fsync failed; nothing was acknowledged and nothing will be retried.

    ``errno`` is the OS error behind it when there was one (ENOSPC, EIO…), so callers
    can tell a full disk from a broken one without parsing the message.
    """

    code = "storage_error"

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class Unavailable(StorageError):
    """The database (or other store) could not be reached or failed mid-request.

    Nothing was acknowledged; a retry with the same event ``id`` or ``message_id`` is
    safe (it is answered ``duplicate: true`` if the first attempt did commit)."""

    code = "unavailable"
