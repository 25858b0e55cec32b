"""The page shows tool traffic compactly and imports exports with a progress bar
(SPEC §10, §11), in a real headless Chromium against a real server subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import import_fixtures as fx
from tests import test_browser as tb
from tests.browser_helpers import Server
from tests.test_browser import Pages, expect, unique

# the browser suite's fixtures: one Chromium and one server for this module too
chromium, server, pages = tb.chromium, tb.server, tb.pages

pytestmark = pytest.mark.browser

CALL = {
    "id": "call_7",
    "type": "function",
    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Zürich", "unit": "C"})},
}


def test_tool_calls_and_outputs_show_compactly_and_open_on_demand(
    server: Server, pages: Pages
) -> None:
    sid = server.start_session(unique("tools"))
    server.call("append", session_id=sid, role="user", content="Weather?")
    server.call("append", session_id=sid, role="assistant", content="", tool_calls=[CALL])
    output = json.dumps({"temp": 21, "sky": "clear"})
    server.call(
        "append",
        session_id=sid,
        role="tool",
        content=output,
        tool_call_id="call_7",
        name="get_weather",
    )
    page = pages.open(server, session=sid)
    call = page.get_by_test_id("tool-call")
    expect(call).to_have_count(1)
    expect(call.locator("summary")).to_contain_text("get_weather")
    expect(call.locator("summary")).to_contain_text('({"city":"Zürich","unit":"C"})')
    full = call.locator("pre")
    expect(full).to_be_hidden()  # collapsed until asked
    call.locator("summary").click()
    expect(full).to_be_visible()
    assert json.loads(full.inner_text()) == {"city": "Zürich", "unit": "C"}
    out = page.get_by_test_id("tool-output")
    expect(out.locator("summary")).to_contain_text("get_weather")
    expect(out.locator("pre")).to_be_hidden()
    out.locator("summary").click()
    expect(out.locator("pre")).to_have_text(output)
    # a live tool call from another client appears the same way
    server.call(
        "append",
        session_id=sid,
        role="assistant",
        content="calling again",
        tool_calls=[{**CALL, "id": "call_8"}],
    )
    expect(page.get_by_test_id("tool-call")).to_have_count(2)


def test_import_button_uploads_an_export_with_a_progress_bar(
    server: Server, pages: Pages, tmp_path: Path
) -> None:
    export = tmp_path / "chatgpt-export.zip"
    export.write_bytes(
        fx.zip_export({"conversations.json": fx.chatgpt_messy() + fx.chatgpt_bulk(300, seed=91)})
    )
    page = pages.open(server)
    page.get_by_test_id("open-sessions").click()
    # record every value the bar takes (a property, so no attribute to observe)
    page.evaluate(
        """() => {
        const bar = document.getElementById('import-progress');
        const proto = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value');
        window.__bar = [];
        Object.defineProperty(bar, 'value', {
          get() { return proto.get.call(this); },
          set(v) { window.__bar.push({ v, shown: !this.hidden }); proto.set.call(this, v); },
        });
    }"""
    )
    page.get_by_test_id("import-file").set_input_files(str(export))
    status = page.get_by_test_id("import-status")
    expect(status).to_have_text("Imported 304 sessions · 1 empty left out", timeout=60_000)
    seen: list[dict[str, Any]] = page.evaluate("() => window.__bar")
    values = [s["v"] for s in seen]
    assert values[-1] == 100 and all(s["shown"] for s in seen)
    assert values == sorted(values) and any(50 <= v < 100 for v in values), values  # server phases
    expect(page.get_by_test_id("import-progress")).to_be_hidden()
    page.get_by_test_id("search").fill("newest leaf")  # an imported message, searchable
    expect(page.get_by_test_id("session-list")).to_contain_text("Dangling")
    # the same file again: nothing new, and the page says so
    page.get_by_test_id("import-file").set_input_files(str(export))
    expect(status).to_have_text(
        "Imported 0 sessions · 304 already here, skipped · 1 empty left out", timeout=60_000
    )


def test_a_malformed_import_shows_the_error_and_writes_nothing(
    server: Server, pages: Pages, tmp_path: Path
) -> None:
    bad = tmp_path / "conversations.json"
    bad.write_bytes(b'[{"mapping": {}}, {"mapping": ')
    page = pages.open(server)
    before = server.call("list", limit=1, archived=None)["total_sessions"]
    page.get_by_test_id("open-sessions").click()
    page.get_by_test_id("import-file").set_input_files(str(bad))
    expect(page.locator("#error-banner")).to_contain_text(
        "cannot import conversations.json: conversation 2"
    )
    assert server.call("list", limit=1, archived=None)["total_sessions"] == before
