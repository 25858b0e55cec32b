"""Shared fixtures: a real store in a temp data directory."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.requests import StartRequest
from eventlog.store import Store

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "memory"
    d.mkdir()
    return d


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    s = Store(data_dir)
    yield s
    s.close()


@pytest.fixture
def session_id(store: Store) -> str:
    return store.start(StartRequest(title="fixture")).session_id


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes: compare before/after to prove nothing changed.

    The SQLite index's WAL/SHM files are left out: reading the index may touch them.
    """
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.startswith("index.sqlite3"):
                continue
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out
