"""Messages render as CommonMark + GitHub tables, and nothing in one can run or load
anything (SPEC §7). The browser side of this is in tests/test_browser_chat.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from server.markdown import render

from .conftest import Api

PAYLOADS = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 1">',
    "[click me](javascript:window.__xss=1)",
    "[click me](JaVaScRiPt:window.__xss=1)",
    '<iframe src="http://127.0.0.2:9/"></iframe>',
    '<svg onload="window.__xss=1"><script>window.__xss=1</script></svg>',
    "![pixel](http://127.0.0.2:9/pixel.png)",
    '<a href="javascript:window.__xss=1">x</a>',
    '```"><script>window.__xss=1</script>\ncode\n```',
    "<style>body{display:none}</style>",
]
SAFE_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
SAFE_ATTRS = {"href", "title", "start", "data-lang", "class", "rel", "target"}


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def unsafe(html: str) -> list[str]:
    """What in ``html`` (as a browser parses it) could run script or load anything."""
    parser = _Elements()
    parser.feed(html)
    bad = []
    for tag, attrs in parser.found:
        if tag not in SAFE_TAGS:
            bad.append(f"<{tag}>")
        for name, value in attrs:
            if name not in SAFE_ATTRS:
                bad.append(f"{tag} {name}")
            elif name == "href":
                # a browser drops tabs and newlines inside a URL before reading its scheme
                url = re.sub(r"[\t\n\r]", "", value or "").strip()
                scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
                if scheme and scheme.group(1).lower() not in ("http", "https", "mailto"):
                    bad.append(f"href={value}")
    return bad


def test_commonmark_tables_and_fenced_code_render() -> None:
    html = render("# T\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n\n```python\nx = 1 < 2\n```\n~~old~~")
    assert "<h1>T</h1>" in html
    assert '<th class="align-left">a</th>' in html and '<td class="align-right">2</td>' in html
    assert '<pre data-lang="python"><code>x = 1 &lt; 2\n</code></pre>' in html
    assert "<s>old</s>" in html


def test_xss_payloads_become_text_or_inert_links() -> None:
    for payload in PAYLOADS:
        html = render(payload)
        assert not unsafe(html), (payload, html)
    # an image is a link to click, never fetched
    assert 'href="http://127.0.0.2:9/pixel.png"' in render(PAYLOADS[6])


def test_links_open_safely() -> None:
    html = render("[docs](https://example.org/a?b=1)")
    assert 'href="https://example.org/a?b=1"' in html
    assert 'rel="noopener noreferrer nofollow"' in html and 'target="_blank"' in html


@given(
    st.text(
        alphabet=st.sampled_from(list("<>\"'=/:[]()!`*|-# \nscriptjavonerrimgfa")), max_size=200
    )
)
def test_no_input_yields_a_tag_or_attribute_that_could_run(text: str) -> None:
    assert not unsafe(render(text))


async def test_the_render_endpoint_renders_in_order_and_bounds_its_input(api: Api) -> None:
    out = await api.ok("/api/render", {"texts": ["**a**", PAYLOADS[0], ""]})
    assert out["html"][0] == "<p><strong>a</strong></p>"
    assert "<script" not in out["html"][1]
    assert out["html"][2] == ""
    status, err = await api.post("/api/render", {"texts": ["x"] * 1001})
    assert (status, err["code"]) == (413, "payload_too_large")
    status, err = await api.post("/api/render", {"texts": "not a list"})
    assert (status, err["code"]) == (400, "invalid_request")
