"""Pure checks and clean-up of WeChat article fields, as ``draft/add`` applies them."""

from __future__ import annotations

import html
import re
from typing import Any

MAX_TITLE = 32
MAX_AUTHOR = 16
MAX_DIGEST = 128
MAX_CONTENT = 20_000
MAX_CONTENT_BYTES = 1024 * 1024
MAX_SOURCE_URL_BYTES = 1024
DIGEST_DEFAULT_CHARS = 54
MAX_ARTICLES = 8

_SCRIPT = re.compile(r"<script\b[^>]*>.*?(</script\s*>|$)", re.IGNORECASE | re.DOTALL)
_EVENT_ATTR = re.compile(r"""\s+on[a-z]+\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_JS_URL = re.compile(r"""(href|src)\s*=\s*(["']?)\s*javascript:[^"'\s>]*\2""", re.IGNORECASE)
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_SRC = re.compile(r"""\bsrc\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


class ArticleError(ValueError):
    """An article field breaks WeChat's rules; ``errcode`` is WeChat's code."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


def clean_content(content: str, image_ok: Any) -> str:
    """Strip scripts and event handlers; drop images whose src ``image_ok`` rejects."""
    content = _SCRIPT.sub("", content)
    content = _EVENT_ATTR.sub("", content)
    content = _JS_URL.sub(r'\1=""', content)

    def keep_image(match: re.Match[str]) -> str:
        src = _SRC.search(match.group(0))
        url = ""
        if src:
            url = html.unescape(next(g for g in src.groups()[1:] if g is not None))
        return match.group(0) if url and image_ok(url) else ""

    return _IMG.sub(keep_image, content)


def text_of(content: str) -> str:
    """The plain text of an HTML body (for the default digest)."""
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", content))).strip()


def _text(article: dict[str, Any], key: str, required: bool = False) -> str:
    value = article.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ArticleError(47001, f"data format error hint: [{key} must be a string]")
    if required and not value.strip():
        raise ArticleError(44003 if key == "content" else 45003, f"{key} is empty")
    return value


def _flag(article: dict[str, Any], key: str) -> int:
    value = article.get(key, 0)
    if isinstance(value, bool):
        return int(value)
    if value not in (0, 1, "0", "1"):
        raise ArticleError(47001, f"data format error hint: [{key} must be 0 or 1]")
    return int(value)


def check_article(article: object, image_ok: Any, thumb_ok: Any) -> dict[str, Any]:
    """Validate and clean one ``draft/add`` article; raise ArticleError with WeChat's code."""
    if not isinstance(article, dict):
        raise ArticleError(47001, "data format error hint: [article must be an object]")
    title = _text(article, "title", required=True)
    if len(title) > MAX_TITLE:
        raise ArticleError(45003, "title size out of limit")
    author = _text(article, "author")
    if len(author) > MAX_AUTHOR:
        raise ArticleError(45110, "author size out of limit")
    content = _text(article, "content", required=True)
    if len(content) >= MAX_CONTENT or len(content.encode()) >= MAX_CONTENT_BYTES:
        raise ArticleError(45002, "content size out of limit")
    digest = _text(article, "digest")
    if len(digest) > MAX_DIGEST:
        raise ArticleError(45004, "description size out of limit")
    source = _text(article, "content_source_url")
    if len(source.encode()) > MAX_SOURCE_URL_BYTES:
        raise ArticleError(45005, "url size out of limit")
    thumb = _text(article, "thumb_media_id")
    if not thumb:
        raise ArticleError(40007, "invalid media_id hint: [thumb_media_id missing]")
    if not thumb_ok(thumb):
        raise ArticleError(40007, "invalid media_id")
    cleaned = clean_content(content, image_ok)
    if not digest:
        digest = text_of(cleaned)[:DIGEST_DEFAULT_CHARS]
    return {
        "title": title,
        "author": author,
        "digest": digest,
        "content": cleaned,
        "content_source_url": source,
        "thumb_media_id": thumb,
        "need_open_comment": _flag(article, "need_open_comment"),
        "only_fans_can_comment": _flag(article, "only_fans_can_comment"),
    }


def check_articles(articles: object, image_ok: Any, thumb_ok: Any) -> list[dict[str, Any]]:
    """Validate a ``draft/add`` article list (1-8 articles)."""
    if not isinstance(articles, list) or not articles:
        raise ArticleError(44003, "empty news data")
    if len(articles) > MAX_ARTICLES:
        raise ArticleError(45008, "article size out of limit")
    return [check_article(a, image_ok, thumb_ok) for a in articles]


def sniff_image(data: bytes) -> str | None:
    """The image type from its magic bytes: jpeg, png, gif, bmp, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"BM"):
        return "image/bmp"
    return None
