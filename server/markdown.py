"""Messages as Markdown, turned into HTML that is safe to put in the page (SPEC §7).

CommonMark with GitHub's tables and strikethrough (markdown-it-py), then an allow-list
sanitiser (nh3, i.e. ammonia) as a second, independent line: raw HTML in a message is
never passed through (``html: False`` escapes it), and whatever markdown-it emits is
cleaned again, so a bug in one of the two still runs no script. Images are shown as
links, never loaded: a message must not make the browser fetch from another site.
The page's CSP (``script-src 'self'``, ``img-src 'self' data:``) is the third line.

Fenced code becomes ``<pre data-lang="py"><code>…</code></pre>``; the page adds the
language label and a copy button. Table alignment becomes a class (the CSP forbids
inline styles).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore

_ALIGN = {"text-align:left": "align-left", "text-align:center": "align-center"}
_ALIGN["text-align:right"] = "align-right"


def _align_classes(state: StateCore) -> None:
    """Table cells: markdown-it's style="text-align:…" → class="align-…"."""
    for tok in state.tokens:
        if tok.type in ("th_open", "td_open") and tok.attrs.get("style"):
            cls = _ALIGN.get(str(tok.attrs.pop("style")))
            if cls:
                tok.attrSet("class", cls)


def _fence(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tok = tokens[idx]
    info = tok.info.strip().split(maxsplit=1)
    lang = escapeHtml(info[0][:32]) if info else ""
    return f'<pre data-lang="{lang}"><code>{escapeHtml(tok.content)}</code></pre>\n'


def _image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tok = tokens[idx]
    src = str(tok.attrGet("src") or "")
    alt = self.renderInlineAsText(tok.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}" class="image-link">{escapeHtml(alt)}</a>'


# breaks: a line break typed in a chat message is a line break (as on GitHub comments)
_md = MarkdownIt(
    "commonmark", {"html": False, "breaks": True, "linkify": False, "typographer": False}
)
_md.enable(["table", "strikethrough"])
_md.core.ruler.push("align_classes", _align_classes)
_md.add_render_rule("fence", _fence)
_md.add_render_rule("image", _image)

_ALIGNS = set(_ALIGN.values())
_TAGS = set(
    [
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "del",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ]
)
_cleaner = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "ol": {"start"}, "pre": {"data-lang"}},
    allowed_classes={"th": _ALIGNS, "td": _ALIGNS, "a": {"image-link"}},
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def render(text: str) -> str:
    """One message's content as sanitised HTML."""
    return str(_cleaner.clean(_md.render(text))).strip()


def render_all(texts: Sequence[str]) -> list[str]:
    return [render(t) for t in texts]
