"""The README and docs/ describe the API the code serves (they drifted once: issue 13)."""

from __future__ import annotations

import re

from server.api import POST_ROUTES
from server.ws import WRITE_OPS

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
WS_DOC = (ROOT / "docs" / "websocket.md").read_text()


def test_the_readme_names_every_endpoint() -> None:
    """Regression: /api/sessions/error was served but missing from the README's list."""
    for path in POST_ROUTES:
        assert f"`{path.rsplit('/', 1)[1]}`" in README, path


def test_the_websocket_protocol_is_documented_in_the_project() -> None:
    """Regression: the README pointed to "SPEC §5", a file that is not in the repo."""
    assert "SPEC §" not in README
    assert "docs/websocket.md" in README
    client_ops = {*WRITE_OPS, "subscribe", "unsubscribe", "subscribe_list", "ping", "auth"}
    for op in client_ops:
        assert re.search(rf'"op": "{op}"', WS_DOC), op
    for op in ("subscribed", "event", "list_event", "ack", "error", "pong", "authed"):
        assert f'"op": "{op}"' in WS_DOC, op
    for code in ("1001", "1009", "4001", "4008"):
        assert code in WS_DOC
