"""The page as people expect it from a chat app (issue 13), in Debian's Chromium against a
real server: CORS from a second local origin, Markdown and its sanitising under the page's
CSP, per-message copy and edit, search snippets and jump-to-hit, sessions created by their
first message, icons that need no emoji font, compact rows, long messages collapsed,
case-insensitive tags and the export of the whole store."""

from __future__ import annotations

import json
import re
import signal
import threading
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import test_browser
from tests.browser_helpers import Server, wait_until
from tests.test_browser import (
    WIDE,
    Pages,
    current_id,
    expect,
    expect_current,
    message_with_text,
    row_action,
    send,
    session_count,
    session_item,
    unique,
    wait_ready_and_online,
)
from tests.test_markdown import PAYLOADS

# the same fixtures (one Chromium and one server for this module, fresh pages per test)
chromium, server, pages = test_browser.chromium, test_browser.server, test_browser.pages

pytestmark = pytest.mark.browser


# -- a second local origin ------------------------------------------------------------------


class OtherOrigin:
    """A page served from another port of this machine (another origin) that imports
    sessionManager.js from the sessionlog server, as the README's front-end example does."""

    def __init__(self) -> None:
        self.page = b""
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(origin.page)))
                self.end_headers()
                self.wfile.write(origin.page)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


CROSS_ORIGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>another app</title>
<script type="module">
const server = %(server)s;
window.__result = (async () => {
  const out = {};
  try {
    const { sessionManager } = await import(server + '/static/sessionManager.js');
    out.imported = true;
    out.baseUrl = sessionManager.baseUrl;
    const id = await sessionManager.startNewSession('Cross', {type: 'chat'}, 'cross-origin');
    sessionManager.addMessage('user', %(text)s);
    const list = await sessionManager.listSessions(50, 0);
    Object.assign(out, {id, listed: list.sessions.map((s) => s.session_id)});
  } catch (err) {
    out.error = String(err);
  }
  try {  // the API straight from this page: needs a granted preflight (JSON body)
    const r = await fetch(server + '/api/sessions/list', {method: 'POST',
      headers: {'Content-Type': 'application/json'}, body: '{}'});
    out.fetchStatus = r.status;
  } catch (err) {
    out.fetchError = String(err);
  }
  return out;
})();
</script>"""


@pytest.fixture
def other_origin() -> Iterator[OtherOrigin]:
    o = OtherOrigin()
    yield o
    o.close()


@pytest.mark.parametrize("allowed", [True, False], ids=["allow-origin", "not-allowed"])
def test_a_page_on_another_origin_uses_the_api_only_when_allowed(
    allowed: bool, tmp_path: Path, chromium: Any, pages: Pages, other_origin: OtherOrigin
) -> None:
    """Regression (issue 13): the README's front-end example, a page elsewhere importing
    /static/sessionManager.js, was blocked by CORS even with --allow-origin (the preflight
    got 405). Allowed: the module loads, talks to the server it came from, and a message
    is stored. Not allowed: the browser blocks the module and the API, nothing is stored."""
    (tmp_path / "data").mkdir()
    args = ("--allow-origin", other_origin.url) if allowed else ()
    srv = Server(tmp_path / "data", tmp_path, args=args).start()
    try:
        text = unique("hello from another origin ")
        other_origin.page = (
            CROSS_ORIGIN_PAGE % {"server": json.dumps(srv.url), "text": json.dumps(text)}
        ).encode()
        context = chromium.new_context()
        pages.contexts.append(context)
        page = context.new_page()
        page.goto(other_origin.url + "/")
        out = page.evaluate("() => window.__result")
        if allowed:
            assert out.get("imported") and "error" not in out, out
            assert out["baseUrl"] == srv.url  # its own module URL, not the page's origin
            assert out["id"] in out["listed"]
            assert out["fetchStatus"] == 200
            wait_until(
                lambda: [m["content"] for m in srv.messages(out["id"])] == [text],
                what="the message from the other origin stored",
            )
        else:
            assert not out.get("imported"), out
            assert "fetchStatus" not in out and "fetchError" in out, out
            assert session_count(srv) == 0
    finally:
        pages.close()
        srv.stop(signal.SIGTERM)


# -- Markdown and sanitising -------------------------------------------------------------------


def test_markdown_tables_and_code_render_with_a_copy_button(server: Server, pages: Pages) -> None:
    sid = server.start_session(unique("Markdown "))
    code = "def greet(name):\n    return f'hi {name}'"
    server.append(sid, "user", "Show me a table and some code")
    server.append(
        sid,
        "assistant",
        f"# Result\n\n| Tool | Speed |\n|:--|--:|\n| json | 1x |\n| msgspec | 10x |\n\n"
        f"Some **bold**, `inline` and ~~old~~.\n\n```python\n{code}\n```",
    )
    page = pages.open(server, session=sid, permissions=("clipboard-read", "clipboard-write"))
    reply = page.locator('[data-testid="message"][data-role="assistant"]')
    expect(reply.locator(".msg-body h1")).to_have_text("Result")
    table = reply.locator(".msg-body table")
    expect(table.locator("th")).to_have_text(["Tool", "Speed"])
    expect(table.locator("td")).to_have_text(["json", "1x", "msgspec", "10x"])
    expect(table.locator("td").nth(1)).to_have_class("align-right")
    expect(reply.locator(".msg-body strong")).to_have_text("bold")
    expect(reply.locator(".msg-body s")).to_have_text("old")
    block = reply.locator(".code-block")
    expect(block.locator(".code-lang")).to_have_text("python")
    font = block.locator("pre code").evaluate("(el) => getComputedStyle(el).fontFamily")
    assert "monospace" in font
    block.get_by_role("button", name="Copy the python block").click()
    expect(block.locator(".code-copy")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == code + "\n"


def test_xss_payloads_in_messages_run_nothing_and_load_nothing(
    server: Server, pages: Pages
) -> None:
    """<script>, <img onerror>, javascript: links, <iframe>, SVG with script: shown as text
    or as inert links, with the page's CSP on; no script runs, no dialog opens, and the
    page requests nothing from any other address."""
    sid = server.start_session(unique("XSS "))
    for payload in PAYLOADS:
        server.append(sid, "assistant", payload)
    page = pages.open(server, session=sid, csp=True)
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.reload()
    wait_ready_and_online(page)
    expect(page.get_by_test_id("message")).to_have_count(len(PAYLOADS))
    expect(page.locator(".msg-body.rendered")).to_have_count(len(PAYLOADS))
    bodies = page.locator(".msg-body")
    for tag in ("script", "iframe", "svg", "img", "style", "object", "embed"):
        # (the page's own icons, e.g. a code block's copy button, are not from a message)
        expect(bodies.locator(f"{tag}:not([data-icon])")).to_have_count(0)
    expect(message_with_text(page, "<script>window.__xss = 1</script>")).to_have_count(1)
    for link in bodies.locator("a").all():
        href = link.get_attribute("href") or ""
        assert re.match(r"https?:", href), href
        assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    # a javascript: link that was there as text is clicked: nothing runs
    message_with_text(page, "click me").first.locator(".msg-body").click()
    assert page.evaluate("() => window.__xss") is None
    assert not dialogs
    foreign = [u for u in requests if not u.startswith((server.url, "ws://127.0.0.1"))]
    assert not foreign, foreign


# -- per-message actions --------------------------------------------------------------------


def test_copy_and_edit_a_message_and_the_edit_shows_everywhere(
    server: Server, pages: Pages
) -> None:
    sid = server.start_session(unique("Edit "))
    original = unique("Pleas fix the typo ")
    server.append(sid, "user", original)
    a = pages.open(server, session=sid, permissions=("clipboard-read", "clipboard-write"))
    b = pages.open(server, session=sid)
    row = message_with_text(a, original)
    row.hover()
    row.get_by_test_id("message-copy").click()
    assert a.evaluate("() => navigator.clipboard.readText()") == original

    fixed = original.replace("Pleas", "Please")
    row.get_by_test_id("message-edit").click()
    a.get_by_test_id("message-edit-input").fill(fixed)
    a.get_by_test_id("message-edit-save").click()
    edited = message_with_text(a, fixed)
    expect(edited.get_by_test_id("message-edited")).to_be_visible()
    wait_until(
        lambda: [m["content"] for m in server.messages(sid)] == [fixed], what="the edit stored"
    )
    expect(message_with_text(b, fixed).get_by_test_id("message-edited")).to_be_visible()
    a.reload()
    wait_ready_and_online(a)
    expect(message_with_text(a, fixed).get_by_test_id("message-edited")).to_be_visible()
    expect(a.get_by_test_id("message")).to_have_count(1)

    # Escape cancels an edit and changes nothing
    message_with_text(a, fixed).get_by_test_id("message-edit").click()
    a.get_by_test_id("message-edit-input").fill("never saved")
    a.get_by_test_id("message-edit-input").press("Escape")
    expect(message_with_text(a, fixed)).to_have_count(1)
    assert [m["content"] for m in server.messages(sid)] == [fixed]


def test_a_long_message_is_collapsed_behind_show_more(server: Server, pages: Pages) -> None:
    sid = server.start_session(unique("Long "))
    long_text = "\n\n".join(f"Paragraph {i}: " + "words " * 30 for i in range(40))
    server.append(sid, "assistant", long_text)
    page = pages.open(server, session=sid)
    row = page.get_by_test_id("message")
    more = row.get_by_test_id("show-more")
    expect(more).to_have_text("Show more")
    collapsed = row.locator(".msg-body").evaluate("(el) => el.getBoundingClientRect().height")
    more.click()
    expect(more).to_have_text("Show less")
    expect(more).to_have_attribute("aria-expanded", "true")
    opened = row.locator(".msg-body").evaluate("(el) => el.getBoundingClientRect().height")
    assert opened > collapsed * 3, (collapsed, opened)


# -- search snippets and jump-to-hit -----------------------------------------------------------


def test_search_shows_a_highlighted_snippet_and_opens_at_the_hit(
    server: Server, pages: Pages
) -> None:
    """The hit is in message 11 of 260: older than the 200 the page loads first, so the
    page loads earlier messages, scrolls to it, and marks it and the term."""
    word = unique("axolotl")
    sid = server.start_session(unique("Long chat "))
    for i in range(260):
        text = f"message {i} about the {word} in the lake" if i == 10 else f"message {i}"
        server.append(sid, "user" if i % 2 == 0 else "assistant", text)
    page = pages.open(server)
    page.get_by_test_id("search").fill(word)
    item = session_item(page, sid)
    expect(page.get_by_test_id("session-item")).to_have_count(1)
    snippet = item.get_by_test_id("search-snippet")
    expect(snippet).to_contain_text(f"message 10 about the {word}")
    expect(snippet.locator("mark")).to_have_text(word)
    item.locator(".session-open").click()
    expect_current(page, sid)
    hit = page.locator(".msg.hit")
    expect(hit).to_have_count(1)
    expect(hit.locator(".msg-body")).to_have_text(f"message 10 about the {word} in the lake")
    expect(hit.locator("mark")).to_have_text(word)
    expect(hit).to_be_in_viewport()


# -- sessions are created by their first message ---------------------------------------------


def test_visits_and_new_chat_create_no_empty_sessions(server: Server, pages: Pages) -> None:
    """Regression (issue 13): every first visit, New and Clear created a session with no
    messages. Now a new chat becomes a session with its first message, and there is one
    control for it (no Clear that did the same under another name)."""
    before = session_count(server)
    page = pages.open(server)
    expect(page.get_by_test_id("clear")).to_have_count(0)
    for _ in range(3):
        page.get_by_test_id("new-session").click()
    page.reload()
    wait_ready_and_online(page)
    pages.open(server)
    assert session_count(server) == before
    expect(page.locator("#current-title")).to_have_text("New chat")

    text = unique("first words of a new chat ")
    send(page, text)
    expect(message_with_text(page, text)).to_have_attribute("data-status", "complete")
    sid = current_id(page)
    assert session_count(server) == before + 1
    # untitled: named by its first message, the same in the header and the list
    expect(page.locator("#current-title")).to_have_text(text)
    expect(session_item(page, sid).locator(".session-name")).to_have_text(text)

    page.get_by_test_id("new-session").click()
    expect(page.get_by_test_id("current-session-id")).to_have_text("")
    expect(page.get_by_test_id("message")).to_have_count(0)
    page.reload()
    wait_ready_and_online(page)
    expect(page.get_by_test_id("current-session-id")).to_have_text("")  # still a new chat
    assert session_count(server) == before + 1


# -- icons, rows, tags, export -----------------------------------------------------------------


def _is_emoji(ch: str) -> bool:
    return (ord(ch) >= 0x2190 and unicodedata.category(ch) == "So") or 0xFE00 <= ord(ch) <= 0xFE0F


def test_icons_need_no_emoji_font_and_every_control_is_named(server: Server, pages: Pages) -> None:
    """Regression (issue 13): every icon was an emoji, empty boxes without an emoji font.
    No control shows an emoji now; each icon is an inline SVG inside a control that has a
    label or a tooltip."""
    sid = server.start_session(unique("Icons "), type="voice")
    server.append(sid, "user", "hello")
    server.call("update", session_id=sid, pinned=True, tags=["x"])
    page = pages.open(server, session=sid)
    session_item(page, sid).get_by_test_id("session-menu").click()
    text = page.evaluate("() => document.body.innerText")
    assert not [c for c in text if _is_emoji(c)], [c for c in text if _is_emoji(c)]
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, summary')].filter((b) =>
             !(b.textContent.trim() || b.getAttribute('aria-label') || b.title))
           .map((b) => b.outerHTML.slice(0, 80))"""
    )
    assert not unnamed, unnamed
    icons = page.locator("svg[data-icon]")
    assert icons.count() >= 10
    for name in ("plus", "list", "pin", "mic", "trash", "pencil", "copy"):
        assert page.locator(f'svg[data-icon="{name}"]').count() >= 1, name


def test_at_least_nine_sessions_fit_at_1280_by_800(server: Server, pages: Pages) -> None:
    for i in range(12):
        sid = server.start_session(f"Row {i}")
        server.append(sid, "user", f"row {i}")
    page = pages.open(server, viewport=WIDE)
    expect(page.get_by_test_id("session-item").nth(11)).to_be_attached()
    visible = page.evaluate(
        """() => {
          const box = document.getElementById('browser-scroll').getBoundingClientRect();
          return [...document.querySelectorAll('[data-testid="session-item"]')].filter((li) => {
            const r = li.getBoundingClientRect();
            return r.top >= box.top && r.bottom <= box.bottom;
          }).length;
        }"""
    )
    assert visible >= 9, visible


def test_tags_are_compared_without_case(server: Server, pages: Pages) -> None:
    a = server.start_session(unique("Tag A "))
    b = server.start_session(unique("Tag B "))
    tag = unique("Work")
    server.call("update", session_id=b, tags=[tag.lower()])
    page = pages.open(server, session=a)
    row_action(page, a, "tags")
    page.get_by_test_id("tags-input").fill(f"{tag}, {tag.lower()}, {tag.upper()}")
    page.get_by_test_id("tags-input").press("Enter")
    wait_until(
        lambda: server.call("load", session_id=a)["session"]["tags"] == [tag],
        what="one tag stored",
    )
    page.locator("#filters summary").click()
    page.get_by_test_id("filter-tag").fill(tag.upper())
    expect(page.get_by_test_id("session-item")).to_have_count(2)
    expect(session_item(page, a)).to_have_count(1)
    expect(session_item(page, b)).to_have_count(1)


def test_the_whole_store_exports_from_the_page(server: Server, pages: Pages) -> None:
    ids = [server.start_session(unique("Export ")) for _ in range(3)]
    for sid in ids:
        server.append(sid, "user", f"content of {sid}")
    page = pages.open(server)
    page.get_by_test_id("export-all-format").select_option("events")
    with page.expect_download() as download:
        page.get_by_test_id("export-all").click()
    lines = Path(download.value.path()).read_text().splitlines()
    exported = {json.loads(line)["session_id"] for line in lines if line.strip()}
    listed = {s["session_id"] for s in server.call("list", limit=1000, archived=None)["sessions"]}
    assert set(ids) <= exported and exported == listed


def test_messages_typed_while_a_new_chat_is_created_arrive_in_order(
    server: Server, pages: Pages
) -> None:
    """Regression: a second message sent while the first one was still creating the
    session was dropped, and so was the first (an empty session was left behind)."""
    before = session_count(server)
    page = pages.open(server)
    texts = [unique(f"quick {i} ") for i in range(3)]
    for text in texts:
        send(page, text)
    for text in texts:
        expect(message_with_text(page, text)).to_have_attribute("data-status", "complete")
    sid = current_id(page)
    assert [m["content"] for m in server.messages(sid)] == texts
    assert session_count(server) == before + 1
