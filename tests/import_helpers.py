"""Shared by the import tests (the ``backend`` fixture over every backend is conftest's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventlog.backend import Backend
from eventlog.imports import ImportReport, import_files
from eventlog.model import Session
from eventlog.requests import ListRequest, LoadRequest
from tests.conftest import ROOT

SAMPLES = ROOT.parent / "shared" / "import-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="../shared/import-samples is absent"
)


def write(path: Path, value: Any) -> Path:
    path.write_bytes(
        value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    )
    return path


async def run_import(b: Backend, *paths: Path, replace: bool = False) -> ImportReport:
    return await import_files(b, [(str(p), p.name) for p in paths], replace=replace)


async def sessions_by_source(b: Backend) -> dict[str, Session]:
    """Every session, keyed by its source conversation id."""
    out = {}
    for row in (await b.list(ListRequest(limit=1000, archived=None))).sessions:
        s = (await b.load(LoadRequest(session_id=row.session_id))).session
        out[s.metadata["source_id"]] = s
    return out


def kept(conv: dict[str, Any]) -> int:
    """Messages of a bulk conversation that an import keeps (the regenerated "alt"
    answers and the hidden system node are not on the branch shown)."""
    return sum(
        1
        for n in conv["mapping"].values()
        if n["message"]
        and n["message"]["content"]["parts"][0]
        and not n["message"]["content"]["parts"][0].startswith("alt ")
    )


def said(s: Session) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in s.messages]
