"""OpenAI Agents SDK session on sessionlog: ``SessionlogSession``.

Each item the SDK stores (a message, a function call or its output, a reasoning item…)
is one sessionlog message: a role (``user``/``assistant``/``system``, ``tool`` for a
function call's output), a readable ``content`` (the text, or ``name(arguments)`` for a
call), and the item itself, as the exact JSON that went in, in
``metadata["agents_item"]``. Messages without an item (typed on the page) are read as
``{"role", "content"}`` input messages.

Removal without deleting: the store never deletes a message, so ``pop_item`` records a
tombstone, the popped message's id in the session's ``metadata["agents_removed"]``, with
an ``update`` that carries ``expected_seq``. Two concurrent pops read the same seq; only
one update can succeed, the other gets a conflict, reads again and takes the next item,
so two pops never return the same item (on every backend, in one process or many).
``clear_session`` deletes the session (only that one); the next item starts it again.
``_get_compaction_snapshot`` (the hook the SDK's ``OpenAIResponsesCompactionSession``
uses on its SQLite and SQLAlchemy sessions) swaps compacted items in the same way: one
``save`` with ``expected_seq`` that appends them and tombstones what they replace.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:
    from agents.memory.session import SessionABC, _await_mutation, _CompactionSnapshot
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the Agents SDK adapter needs openai-agents: pip install 'sessionlog[agents]'"
    ) from e

from ..errors import SequenceConflict
from ..events import new_event_id
from ..model import Message, Session
from ..requests import MAX_CONTENT_CHARS, SaveMessage, SaveRequest, UpdateRequest
from . import loop
from .store import FrameworkSession, Store

KEY = "agents_item"
REMOVED = "agents_removed"
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = ("text", "refusal", "transcript")


def _texts(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for part in value:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                out += [part[k] for k in _TEXT_PARTS if isinstance(part.get(k), str)]
        return "\n".join(out)
    return ""


def role_and_text(item: dict[str, Any]) -> tuple[str, str]:
    """How an item reads in sessionlog: a role and a text."""
    kind = item.get("type")
    if kind == "function_call_output" or (isinstance(kind, str) and kind.endswith("_output")):
        output = item.get("output")
        text = _texts(output) or (json.dumps(output, ensure_ascii=False) if output else "")
        return "tool", text
    if kind == "function_call":
        return "assistant", f"{item.get('name', '')}({item.get('arguments', '')})"
    if kind == "reasoning":
        return "assistant", _texts(item.get("summary")) or _texts(item.get("content"))
    role = _ROLES.get(str(item.get("role")), "assistant")
    text = _texts(item.get("content"))
    if not text and kind not in (None, "message"):
        text = f"[{kind}]"
    return role, text


def to_saved(item: Any) -> SaveMessage:
    if not isinstance(item, dict):
        raise TypeError(
            f"a session item must be a dict (a Responses input item), got {type(item).__name__}"
        )
    role, text = role_and_text(item)
    return SaveMessage(role=role, content=text[:MAX_CONTENT_CHARS], metadata={KEY: item})  # type: ignore[arg-type]


def _live(session: Session) -> list[tuple[Message, dict[str, Any]]]:
    """The session's items, oldest first, without the popped ones."""
    removed = set(session.metadata.get(REMOVED) or ())
    out = []
    for m in session.messages:
        if m.message_id in removed:
            continue
        item = m.metadata.get(KEY)
        if isinstance(item, dict):
            out.append((m, item))
        elif m.role in ("user", "assistant", "system") and m.content:
            out.append((m, {"role": m.role, "content": m.content}))
    return out


class SessionlogSession(SessionABC):
    """An Agents SDK ``Session`` kept in a sessionlog store.

    ``session_id``: any string (see ``store.session_id_for``). ``store``: a ``Backend``,
    or a target: a data directory or a server's ``http(s)://`` URL.
    ``session_settings``: ``SessionSettings`` (or its dict); its ``limit`` is used when
    ``get_items`` is called without one.
    """

    def __init__(
        self,
        session_id: str,
        store: Store,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._session = FrameworkSession("agents", session_id, store)

    @property
    def sessionlog_id(self) -> str:
        """The sessionlog session id the items live in."""
        return self._session.session_id

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The latest ``limit`` items (all without one), oldest first; 0 gives []."""
        n = resolve_session_limit(limit, self.session_settings)
        if n is not None and n <= 0:
            return []
        return await loop.arun(self._get(n))

    async def _get(self, limit: int | None) -> list[Any]:
        session = await self._session.load()
        items = [] if session is None else [item for _, item in _live(session)]
        return items if limit is None else items[-limit:]

    async def add_items(self, items: list[Any]) -> None:
        saved = [to_saved(i) for i in items]  # refuse a bad item before anything is written
        await loop.arun(self._session.add(saved))

    async def pop_item(self) -> Any | None:
        """Remove the newest item and return it; None when there is none."""
        return await loop.arun(self._pop())

    async def _pop(self) -> Any | None:
        while True:
            session = await self._session.load()
            live = [] if session is None else _live(session)
            if session is None or not live:
                return None
            message, item = live[-1]
            removed = [*(session.metadata.get(REMOVED) or ()), message.message_id]
            try:
                await self._session.backend.update(
                    UpdateRequest(
                        session_id=session.session_id,
                        metadata={**session.metadata, REMOVED: removed},
                        expected_seq=session.seq,
                    )
                )
            except SequenceConflict:
                continue  # someone wrote (or popped) meanwhile: read again
            return item

    async def _get_compaction_snapshot(
        self, limit: int, *, prune_prefix: Callable[[Any], bool] | None = None
    ) -> _CompactionSnapshot | None:
        """The SDK's hook for atomic compaction (as its SQLite and SQLAlchemy sessions
        have): the newest ``limit`` items, and a ``replace_suffix`` that swaps the
        items from ``start`` on for the compacted ones only if nothing changed since.

        The swap is one ``save`` with ``expected_seq``: the compacted items appended and
        the replaced ones (plus any expired prefix ``prune_prefix`` accepts) tombstoned,
        all in one atomic write, refused if anyone wrote in between."""
        session = await loop.arun(self._session.load())
        live = [] if session is None else _live(session)
        window = live[-limit:] if limit > 0 else []
        complete = len(window) == len(live)

        async def replace(start: int, output: list[Any]) -> bool:
            expected = window[start:]
            if session is None or not expected:
                return False
            gone = [m.message_id for m, _ in expected]
            if prune_prefix is not None:
                for m, item in live[: len(live) - len(expected)]:
                    if not prune_prefix(item):
                        break
                    gone.append(m.message_id)
            saved = [to_saved(i) for i in output]
            req = SaveRequest(
                session_id=session.session_id,
                messages=[
                    SaveMessage(
                        role=m.role,
                        content=m.content,
                        metadata=m.metadata,
                        message_id=new_event_id(),
                    )
                    for m in saved
                ],
                metadata={
                    **session.metadata,
                    REMOVED: [*(session.metadata.get(REMOVED) or ()), *gone],
                },
                expected_seq=session.seq,
            )
            try:
                await loop.arun(self._session.backend.save(req))
            except SequenceConflict:
                return False
            return True

        async def replace_suffix(start: int, output: list[Any]) -> bool:
            return await _await_mutation(replace(start, output))

        items: list[Any] = [item for _, item in window]
        return _CompactionSnapshot(items, complete, replace_suffix)

    async def clear_session(self) -> None:
        await loop.arun(self._session.delete())

    def __repr__(self) -> str:
        return f"SessionlogSession({self.session_id!r}, {self._session.store!r})"
