"""Shared fixture for the framework adapter tests: a store target of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.integrations.store import close_stores

from .served import ThreadedServer


@pytest.fixture(params=["file", "remote"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A data directory, or the URL of a real server over one."""
    server = None
    if request.param == "file":
        yield str(tmp_path / "data")
    else:
        server = ThreadedServer(tmp_path / "data")
        yield server.url
    close_stores()
    if server is not None:
        server.stop()
