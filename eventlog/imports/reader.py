"""Recognise an input by its content and stream its conversations.

Accepts a ChatGPT or Claude.ai export (``conversations.json``, ChatGPT's split
``conversations-NNN.json``, or the downloaded ``.zip``), an Open WebUI chat export (one
chat object or a list), and our own ``events`` export (JSONL). JSON is read one
conversation at a time (``stream.array_items``), so memory stays flat for any file size.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import ijson  # type: ignore[import-untyped]
import msgspec

from . import chatgpt, claude, openwebui
from .conversation import Conversation, Tally
from .errors import ImportFailed, Malformed
from .stream import array_items

PARSERS = (
    ("ChatGPT", chatgpt.is_chatgpt, chatgpt.parse),
    ("Claude.ai", claude.is_claude, claude.parse),
    ("Open WebUI", openwebui.is_openwebui, openwebui.parse),
)
# the files of an export .zip that hold conversations (ChatGPT splits large ones)
_MEMBER = re.compile(r"(^|/)conversations(-\d+)?\.json$")
_BOM = b"\xef\xbb\xbf"

Item = tuple[str, Any]  # ("events", bytes) or ("conversation", Conversation)


class _Head(msgspec.Struct):
    session_id: str
    seq: int
    type: str


def read(
    path: str, name: str, tally: Tally, position: Callable[[int], None] | None = None
) -> Iterator[Item]:
    """Every conversation in the file at ``path`` (``name`` is how errors call it);
    raises ImportFailed naming the file and the place for anything unreadable.
    ``position`` hears the byte offset reached in the file, once per conversation."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head.startswith(b"PK\x03\x04"):
            yield from _zip(f, name, tally, position)
        else:
            yield from _json(f, name, tally, lambda: position(f.tell()) if position else None)


def _zip(
    f: IO[bytes], name: str, tally: Tally, position: Callable[[int], None] | None
) -> Iterator[Item]:
    try:
        zf = zipfile.ZipFile(f)
        members = sorted(n for n in zf.namelist() if _MEMBER.search(n))
    except (zipfile.BadZipFile, OSError) as e:
        raise ImportFailed(name, "the zip archive", f"it cannot be read ({e})") from None
    if not members:
        raise ImportFailed(
            name,
            "the zip archive",
            "it holds no conversations.json (nor conversations-NNN.json); is it a ChatGPT or Claude.ai data export?",
        )
    with zf:
        for member in members:
            try:
                with zf.open(member) as inner:
                    yield from _json(
                        inner,
                        f"{name}:{member}",
                        tally,
                        lambda: position(f.tell()) if position else None,
                    )
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise ImportFailed(name, member, f"it cannot be unpacked ({e})") from None


def _first_byte(f: IO[bytes]) -> bytes:
    """The first byte that is not whitespace (or a UTF-8 byte order mark)."""
    start = f.read(4096)
    if start.startswith(_BOM):
        start = start[3:]
    stripped = start.lstrip()
    return stripped[:1]


def _json(f: IO[bytes], name: str, tally: Tally, tick: Callable[[], None]) -> Iterator[Item]:
    first = _first_byte(f)
    _rewind(f)
    if first == b"{":
        line = f.readline(1 << 20)
        _rewind(f)
        if line.startswith(_BOM):
            line = line[3:]
        try:
            msgspec.json.decode(line, type=_Head)
            yield "events", f.read()  # our own backup: one event a line
            return
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not an events export: one JSON object (an Open WebUI chat)
        prefix = ""
    elif first == b"[":
        prefix = "item"
    elif not first:
        raise ImportFailed(name, "the start", "the file is empty")
    else:
        raise ImportFailed(name, "the first byte", f"expected JSON (`[` or `{{`), found {first!r}")
    n = 0
    try:
        items = array_items(f) if prefix else ijson.items(f, prefix, use_float=True)
        for n, item in enumerate(items, 1):
            conv = _conversation(item, n, name, tally)
            if conv is not None:
                yield "conversation", conv
            tick()
    except (ijson.JSONError, UnicodeDecodeError) as e:  # the latter: yajl on "\\udc00"
        said = e.args[0] if isinstance(e, ijson.JSONError) and e.args else str(e)
        if isinstance(said, bytes):  # yajl's message, when the spot is not UTF-8
            said = said.decode("utf-8", "replace")
        detail = " ".join(str(said).split("\n")[0].split())  # yajl adds a drawing of the spot
        where = f"conversation {n + 1}" if prefix else "the chat object"
        raise ImportFailed(name, where, f"the JSON is malformed or cut short ({detail})") from None


def _rewind(f: IO[bytes]) -> None:
    f.seek(0)
    if f.read(3) != _BOM:
        f.seek(0)


def _conversation(item: Any, n: int, name: str, tally: Tally) -> Conversation | None:
    where = f"conversation {n}"
    if not isinstance(item, dict):
        raise ImportFailed(
            name, where, f"expected a conversation object, found {type(item).__name__}"
        )
    ident = item.get("id") or item.get("uuid") or item.get("conversation_id")
    if isinstance(ident, str) and ident:
        where += f" (id {ident})"
    for _, recognises, parse in PARSERS:
        if recognises(item):
            tally.conversations += 1
            try:
                conv = parse(item, tally)
            except Malformed as e:
                raise ImportFailed(name, where, str(e)) from None
            if conv is None:
                tally.empty += 1
            return conv
    keys = ", ".join(sorted(item)[:8]) or "none"
    raise ImportFailed(
        name,
        where,
        f"not a ChatGPT (`mapping`), Claude.ai (`chat_messages`) or Open WebUI (`history`) conversation (its keys: {keys})",
    )
