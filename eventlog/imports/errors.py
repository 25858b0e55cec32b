"""The one error an import raises for a file it cannot read."""

from __future__ import annotations

from ..errors import InvalidRequest


class Malformed(Exception):
    """Raised by a parser for a structure it cannot read; the reader adds the place."""


class ImportFailed(InvalidRequest):
    """A file that is not a readable export: names the file and the place; nothing was
    written."""

    def __init__(self, file: str, where: str, what: str) -> None:
        super().__init__(
            f"cannot import {file}: {where}: {what}. Nothing was imported. Send a ChatGPT, "
            "Claude.ai or Open WebUI export as it was downloaded (conversations.json, "
            "conversations-NNN.json, the .zip, or an Open WebUI .json), or a sessionlog "
            "`events` export",
            "file",
        )
        self.file = file
        self.where = where
