"""Imports of the archives people already have (SPEC §11): ChatGPT, Claude.ai and
Open WebUI exports, recognised by content, into sessions on any backend."""

from .errors import ImportFailed
from .run import ImportReport, Progress, import_files, summary

__all__ = ["ImportFailed", "ImportReport", "Progress", "import_files", "summary"]
