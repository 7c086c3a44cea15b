"""Publication bodies: Markdown in, sanitized HTML out, and plain-text helpers.

Sanitizing uses nh3 (the Rust ``ammonia`` sanitizer): an allow-list of tags, attributes
and URL schemes, so scripts, event handlers, ``javascript:`` links, iframes and forms
can never survive, whatever the input looks like.
"""

from __future__ import annotations

import re

import nh3
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "s",
    "sub",
    "sup",
    "blockquote",
    "pre",
    "code",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "a",
    "img",
    "figure",
    "figcaption",
    "span",
    "div",
    "section",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"scope", "colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "ol": {"start"},
    "*": {"lang"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_to_html(source: str) -> str:
    """Render Markdown (raw HTML in it is escaped, not passed through) and sanitize."""
    html = _markdown.render(source)
    # The page title is the one <h1>; headings inside a body start at <h2>.
    html = re.sub(r"<(/?)h1>", r"<\1h2>", html)
    return sanitize_html(html)


def sanitize_html(html: str) -> str:
    """Reduce arbitrary HTML to the allowed subset; never raises on malformed input."""
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return cleaned.strip()


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    text = BeautifulSoup(html, "html.parser").get_text(" ")
    return re.sub(r"\s+", " ", text).strip()


def cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """Cut on a character boundary to at most ``limit`` characters, ellipsis included."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ellipsis))].rstrip() + ellipsis


def summary_limit(body_chars: int) -> int:
    """Catalog summaries: 300 characters for documents under 5,000 characters, else 500."""
    return 300 if body_chars < 5000 else 500


def derive_summary(html: str) -> str:
    """A summary from the body's first sentences, within the catalog's length rule."""
    text = html_to_text(html)
    return cut(text, min(120, summary_limit(len(text))))
