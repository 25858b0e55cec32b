"""The storage interface the server talks to, whatever holds the data.

``Backend`` is deliberately small and async: the file backend (``backends/file``) and
the PostgreSQL backend (``backends/postgres``) implement it, ``server/`` knows nothing
else, and one conformance suite (tests/test_backend_conformance.py) runs against each.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from .events import Event
from .model import Session
from .notify import Notice
from .ops import Result, SaveResult, WriteRequest
from .requests import (
    AppendRequest,
    CompleteRequest,
    DeltaRequest,
    EditRequest,
    ExportRequest,
    ListRequest,
    LoadRequest,
    RecordErrorRequest,
    SaveRequest,
    StartRequest,
    UpdateRequest,
)
from .results import ImportOutcome, ListResult, LoadResult


class Backend(Protocol):
    """What the server needs from storage. Listeners are called on the event loop."""

    async def start(self, req: StartRequest) -> Session: ...
    async def append(self, req: AppendRequest) -> Result: ...
    async def delta(self, req: DeltaRequest) -> Result: ...
    async def complete(self, req: CompleteRequest) -> Result: ...
    async def edit(self, req: EditRequest) -> Result: ...
    async def update(self, req: UpdateRequest) -> Result: ...
    async def record_error(self, req: RecordErrorRequest) -> Result: ...
    async def save(self, req: SaveRequest) -> SaveResult: ...
    async def load(self, req: LoadRequest) -> LoadResult: ...
    async def list(self, req: ListRequest) -> ListResult: ...
    async def delete(self, session_id: str) -> None: ...
    async def events(self, session_id: str, after_seq: int) -> builtins.list[Event]: ...
    async def watch(self, session_id: str) -> int:
        """Start delivering this session's events (incl. other writers'); returns head seq."""
        ...

    async def unwatch(self, session_id: str) -> None: ...
    async def export(self, req: ExportRequest) -> AsyncIterator[bytes]:
        """Validates (raising not_found etc.) before returning the chunk stream."""
        ...

    async def import_events(self, data: bytes) -> builtins.list[str]: ...
    async def import_sessions(
        self, sessions: builtins.list[tuple[str, builtins.list[Event]]], replace: bool = False
    ) -> ImportOutcome:
        """Write whole sessions (each a journal from seq 1, ids checked by the caller's
        parser): one that exists is skipped, or with ``replace`` deleted and rewritten.
        Each written session is listed and announced like a started one."""
        ...

    async def compact(self) -> int: ...
    async def health(self) -> dict[str, Any]: ...
    def subscribe(self, listener: Callable[[Notice], None]) -> Callable[[], None]: ...
    async def close(self) -> None: ...


class RequestWrites:
    """The seven write methods of ``Backend``, each a typed door to one ``_write``
    (validation and the write path are the backend's; the results' types are these)."""

    async def _write(self, req: WriteRequest) -> Any:
        raise NotImplementedError

    async def append(self, req: AppendRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def delta(self, req: DeltaRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def complete(self, req: CompleteRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def edit(self, req: EditRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def update(self, req: UpdateRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def record_error(self, req: RecordErrorRequest) -> Result:
        return await self._write(req)  # type: ignore[no-any-return]

    async def save(self, req: SaveRequest) -> SaveResult:
        return await self._write(req)  # type: ignore[no-any-return]
