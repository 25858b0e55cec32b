"""LangChain chat message history on sessionlog: ``SessionlogChatMessageHistory``.

Each LangChain message is one sessionlog message: its role (human → user, ai →
assistant, system, tool), its text as ``content`` (so the session reads, searches and
exports like any other), and LangChain's own dict (``message_to_dict``) in
``metadata["langchain"]``, from which it is rebuilt exactly: tool calls,
``additional_kwargs``, ids, usage and response metadata. A message without that dict
(typed on the page, appended over HTTP) is read by its role. A message whose text was
edited elsewhere (the page) comes back with the edited text.

``clear()`` deletes the session (its messages are gone, as LangChain promises); the next
message starts it again under the same id. See ``store.py`` for ids and ``loop.py`` for
why every call runs on the adapters' own loop (sync, async and threads all work).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
        message_to_dict,
        messages_from_dict,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the LangChain adapter needs langchain-core: pip install 'sessionlog[langchain]'"
    ) from e

from ..model import Message
from ..requests import MAX_CONTENT_CHARS, SaveMessage
from . import loop
from .store import FrameworkSession, Store

KEY = "langchain"
_ROLES = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "tool",
    "FunctionMessageChunk": "tool",
}
_OURS = {"user", "assistant", "system", "tool"}


def text_of(message: BaseMessage) -> str:
    """The readable text of a message: its text blocks, else its tool calls."""
    content = message.content
    if isinstance(content, str):
        text = content
    else:
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        text = "\n".join(parts)
    if not text and isinstance(message, AIMessage) and message.tool_calls:
        text = "\n".join(
            f"{c['name']}({json.dumps(c['args'], ensure_ascii=False)})" for c in message.tool_calls
        )
    return text[:MAX_CONTENT_CHARS]


def to_saved(message: BaseMessage) -> SaveMessage:
    as_dict = message_to_dict(message)
    role = _ROLES.get(message.type)
    if role is None:  # a ChatMessage with a role of its own
        r = getattr(message, "role", "user")
        role = r if r in _OURS else "user"
    return SaveMessage(role=role, content=text_of(message), metadata={KEY: as_dict})  # type: ignore[arg-type]


def from_stored(m: Message) -> BaseMessage:
    stored = m.metadata.get(KEY)
    if isinstance(stored, dict):
        message = messages_from_dict([stored])[0]
        if isinstance(message.content, str) and m.content != text_of(message):
            message = message.model_copy(update={"content": m.content})  # edited on the page
        return message
    if m.role == "user":
        return HumanMessage(content=m.content, id=m.message_id)
    if m.role == "system":
        return SystemMessage(content=m.content, id=m.message_id)
    if m.role == "tool":
        call = m.metadata.get("tool_call_id")
        return ToolMessage(content=m.content, tool_call_id=str(call or ""), id=m.message_id)
    return AIMessage(content=m.content, id=m.message_id)


class SessionlogChatMessageHistory(BaseChatMessageHistory):
    """A LangChain ``BaseChatMessageHistory`` kept in a sessionlog store.

    ``session_id``: any string (see ``store.session_id_for``). ``store``: a ``Backend``,
    or a target: a data directory or a server's ``http(s)://`` URL.
    """

    def __init__(self, session_id: str, store: Store) -> None:
        self.session_id = session_id
        self._session = FrameworkSession("langchain", session_id, store)

    @property
    def sessionlog_id(self) -> str:
        """The sessionlog session id these messages live in."""
        return self._session.session_id

    async def _get(self) -> list[BaseMessage]:
        session = await self._session.load()
        return [] if session is None else [from_stored(m) for m in session.messages]

    async def _add(self, messages: Sequence[BaseMessage]) -> None:
        await self._session.add([to_saved(m) for m in messages])

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return loop.run(self._get())

    async def aget_messages(self) -> list[BaseMessage]:
        return await loop.arun(self._get())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        loop.run(self._add(list(messages)))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await loop.arun(self._add(list(messages)))

    def clear(self) -> None:
        loop.run(self._session.delete())

    async def aclear(self) -> None:
        await loop.arun(self._session.delete())

    def __repr__(self) -> str:
        return f"SessionlogChatMessageHistory({self.session_id!r}, {self._session.store!r})"
