"""Pure rendering of a publication as a WeChat article (and the shared text cutting).

WeChat-safe HTML: an allow-list of tags, only inline styles we write ourselves (plus a
few harmless ones kept from the source), no scripts, iframes, forms or event handlers.
Images become numbered placeholders that ``publish`` replaces with the URLs that
``media/uploadimg`` returns; links that leave WeChat become plain text with the URL.
Nothing here does I/O, except :func:`prepare_image` and :func:`plain_cover`, which are
pure functions of bytes.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from bs4 import BeautifulSoup
from bs4.element import (
    CData,
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
    Tag,
)
from lxml import etree
from lxml import html as lxml_html
from PIL import Image, UnidentifiedImageError

from channels.base import PermanentError, Rendition
from publisher.snapshot import MediaRef, PublicationSnapshot

TITLE_LIMIT = 32
AUTHOR_LIMIT = 16
DIGEST_LIMIT = 128
# The platform takes < 20,000 characters and < 1 MB; leave room for the closing notice.
CONTENT_LIMIT = 19_000
CONTENT_BYTES_LIMIT = 900_000
SOURCE_URL_LIMIT = 1024
UPLOADIMG_MAX_BYTES = 1024 * 1024 - 1
PLACEHOLDER = "govcast-img://"
_ZONE = ZoneInfo("Asia/Shanghai")

# --- text cutting (shared with the Weibo renderer) -------------------------------------

ELLIPSIS = "…"
_SPACES = re.compile(r"\s+")


def _continues(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (a cut must not fall before it)."""
    code = ord(ch)
    return (
        ch in "\u200d\ufe0e\ufe0f\u20e3"
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
        or unicodedata.combining(ch) != 0
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def safe_prefix(text: str, limit: int) -> str:
    """The longest prefix of at most ``limit`` characters that splits no emoji sequence."""
    if len(text) <= limit:
        return text
    k = max(0, limit)
    while 0 < k < len(text) and (_continues(text[k]) or text[k - 1] == "\u200d"):
        k -= 1
    # Flags are pairs of regional indicators: never keep half of one.
    run = 0
    while run < k and _regional(text[k - 1 - run]):
        run += 1
    if run % 2 == 1 and k < len(text) and _regional(text[k]):
        k -= 1
    return text[:k]


def squash(text: str) -> str:
    """Whitespace collapsed to single spaces, ends trimmed."""
    return _SPACES.sub(" ", text).strip()


def cut(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """At most ``limit`` characters, ellipsis included, cut on a character boundary."""
    if len(text) <= limit:
        return text
    return safe_prefix(text, max(0, limit - len(ellipsis))).rstrip() + ellipsis


_SENTENCE_END = "。！？；!?;…"


def cut_sentence(text: str, limit: int, ellipsis: str = ELLIPSIS, min_keep: float = 0.5) -> str:
    """Cut after the last full sentence within ``limit``; else on a character boundary.

    A sentence cut is used only when it keeps at least ``min_keep`` of the room, so that a
    long first sentence does not shrink the text to almost nothing.
    """
    if len(text) <= limit:
        return text
    room = safe_prefix(text, limit)
    best = max(room.rfind(mark) for mark in _SENTENCE_END)
    if best >= 0 and best + 1 >= int(limit * min_keep):
        return room[: best + 1]
    return cut(text, limit, ellipsis)


def visible_text(html: str) -> str:
    """The visible text of an HTML fragment (scripts and styles excluded), squashed."""
    if not html or not html.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    etree.strip_elements(root, *_DROP, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    # Block ends become spaces, so "<p>a</p><p>b</p>" reads "a b", not "ab".
    return squash(" ".join(root.itertext()))


def _parse(html: str) -> Tag:
    """The fragment's parsed nodes under one root (lxml: fast, and lenient like browsers)."""
    soup = BeautifulSoup(f"<body>{html or ''}</body>", "lxml")
    body = soup.body
    return body if body is not None else soup


# --- the rendition ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSlot:
    """One image to re-host: the placeholder in the content and the local file."""

    placeholder: str
    path: str
    source_url: str
    alt: str = ""
    size: int = 0


@dataclass(frozen=True)
class WeChatRendition(Rendition):
    """A ``draft/add`` article with image placeholders still to be filled."""

    title: str = ""
    author: str = ""
    digest: str = ""
    content: str = ""
    content_source_url: str = ""
    images: tuple[ImageSlot, ...] = ()
    # None: the account's default cover (or a generated plain one) is used.
    cover: ImageSlot | None = None
    need_open_comment: int = 0
    only_fans_can_comment: int = 0

    def article(self, image_urls: Mapping[str, str], thumb_media_id: str) -> dict[str, object]:
        """The ``draft/add`` article with re-hosted image URLs and the cover's media_id."""
        return {
            "title": self.title,
            "author": self.author,
            "digest": self.digest,
            "content": fill_images(self.content, image_urls),
            "content_source_url": self.content_source_url,
            "thumb_media_id": thumb_media_id,
            "need_open_comment": self.need_open_comment,
            "only_fans_can_comment": self.only_fans_can_comment,
        }


def fill_images(content: str, urls: Mapping[str, str]) -> str:
    """Replace each image placeholder with its URL; an image without one is removed."""

    def replace(match: re.Match[str]) -> str:
        url = urls.get(match.group(1))
        if url is None:
            return ""
        return match.group(0).replace(match.group(1), escape(url, quote=True))

    return re.sub(r'<img [^>]*?src="(' + re.escape(PLACEHOLDER) + r'\d+)"[^>]*>', replace, content)


# --- HTML ------------------------------------------------------------------------------

_DROP = {
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "form",
    "input",
    "button",
    "select",
    "option",
    "textarea",
    "noscript",
    "template",
    "svg",
    "math",
    "link",
    "meta",
    "base",
    "head",
    "title",
    "audio",
    "video",
    "source",
    "track",
    "canvas",
    "map",
    "area",
    "dialog",
    "portal",
    "param",
    "xml",
}
_BLOCK_STYLE = "margin:0 0 1em;line-height:1.75;font-size:16px;color:#333;"
_STYLES = {
    "p": _BLOCK_STYLE,
    "h2": "margin:1.2em 0 .6em;font-size:18px;font-weight:bold;color:#1f4e8c;",
    "h3": "margin:1em 0 .5em;font-size:17px;font-weight:bold;color:#333;",
    "h4": "margin:1em 0 .5em;font-size:16px;font-weight:bold;color:#333;",
    "blockquote": "margin:0 0 1em;padding:.5em 1em;border-left:3px solid #ccc;color:#666;",
    "pre": "margin:0 0 1em;padding:.6em;background:#f6f6f6;white-space:pre-wrap;"
    "word-break:break-all;font-size:14px;",
    "ul": "margin:0 0 1em;padding-left:1.5em;list-style-type:disc;",
    "ol": "margin:0 0 1em;padding-left:1.5em;list-style-type:decimal;",
    "li": "margin:0 0 .4em;line-height:1.75;",
    "table": "width:100%;border-collapse:collapse;margin:0 0 1em;font-size:14px;",
    "th": "border:1px solid #bbb;padding:4px 6px;background:#f2f2f2;font-weight:bold;"
    "text-align:center;",
    "td": "border:1px solid #bbb;padding:4px 6px;",
    "caption": "padding:4px;font-weight:bold;",
    "img": "max-width:100%;height:auto;display:block;margin:0 auto;",
    "figcaption": "text-align:center;font-size:14px;color:#888;margin:.3em 0 1em;",
    "hr": "border:0;border-top:1px solid #ddd;margin:1em 0;",
    "section": "",
    "figure": "margin:0 0 1em;",
}
_INLINE = {"strong", "b", "em", "i", "u", "s", "sub", "sup", "code", "span", "br", "del", "ins"}
_KEEP = set(_STYLES) | _INLINE | {"thead", "tbody", "tfoot", "tr", "dl", "dt", "dd"}
_RENAME = {
    "h1": "h2",
    "h5": "h4",
    "h6": "h4",
    "div": "section",
    "article": "section",
    "main": "section",
    "header": "section",
    "footer": "section",
    "aside": "section",
    "nav": "section",
    "center": "section",
    "strike": "s",
    "font": "span",
    "mark": "span",
    "small": "span",
    "big": "span",
    "tt": "code",
    "kbd": "code",
    "samp": "code",
    "var": "em",
    "cite": "em",
    "q": "span",
    "abbr": "span",
}
_KEPT_STYLE_PROPS = {"text-align", "font-weight", "font-style", "text-decoration"}
_SAFE_STYLE_VALUE = re.compile(r"^[a-zA-Z0-9 #.,%-]{1,40}$")
# Links inside WeChat may stay links; every other link becomes text plus its URL.
_WECHAT_HOSTS = ("mp.weixin.qq.com", "weixin.qq.com")


def _kept_style(style: str) -> str:
    kept = []
    for part in style.split(";"):
        prop, _, value = part.partition(":")
        prop, value = prop.strip().lower(), value.strip()
        if prop in _KEPT_STYLE_PROPS and _SAFE_STYLE_VALUE.match(value):
            kept.append(f"{prop}:{value};")
    return "".join(kept)


def _span_number(value: object) -> str | None:
    text = str(value or "").strip()
    return text if re.fullmatch(r"[1-9]\d?", text) else None


@dataclass
class _State:
    resolve: Mapping[str, MediaRef]
    slots: dict[str, ImageSlot]
    dropped: int = 0
    links: int = 0
    # The publication's own address: relative links resolve against it, as on the website.
    base_url: str = ""


def _media_key(url: str) -> str:
    """The stored file's digest in a ``/media/<sha256>/<name>`` URL, else the URL."""
    match = re.search(r"/media/([0-9a-f]{64})/", url)
    return match.group(1) if match else url


_MAX_DEPTH = 48


def _emit(node: object, state: _State, depth: int = 0) -> str:
    if isinstance(node, (Comment, Doctype, Declaration, ProcessingInstruction, CData)):
        return ""
    if isinstance(node, NavigableString):
        return escape(str(node), quote=False)
    if not isinstance(node, Tag):
        return ""
    name = (node.name or "").lower()
    if name in _DROP:
        return ""
    if depth > _MAX_DEPTH:
        # Absurd nesting (hostile input): keep the words, not the structure.
        return escape(squash(_text_without_dropped(node)), quote=False)
    inner = "".join(_emit(child, state, depth + 1) for child in node.children)
    if name == "a":
        return _link(node, inner, state)
    if name == "img":
        return _image(node, state)
    name = _RENAME.get(name, name)
    if name not in _KEEP:
        return inner  # unknown wrapper: keep its content, drop the tag
    if name == "br":
        return "<br/>"
    if name == "hr":
        return f'<hr style="{_STYLES["hr"]}"/>'
    style = _STYLES.get(name, "") + _kept_style(str(node.get("style") or ""))
    attrs = f' style="{escape(style, quote=True)}"' if style else ""
    if name in ("td", "th"):
        for span in ("colspan", "rowspan"):
            number = _span_number(node.get(span))
            if number:
                attrs += f' {span}="{number}"'
    if name in ("p", "li", "td", "th", "h2", "h3", "h4", "span", "section") or inner.strip():
        return f"<{name}{attrs}>{inner}</{name}>"
    return ""


def _text_without_dropped(node: Tag) -> str:
    parts = []
    for piece in node.descendants:
        if isinstance(piece, NavigableString) and not isinstance(
            piece, (Comment, Doctype, Declaration, ProcessingInstruction, CData)
        ):
            if not any((p.name or "").lower() in _DROP for p in piece.parents if p is not node):
                parts.append(str(piece))
    return " ".join(parts)


def resolve_link(href: str, base_url: str) -> str:
    """An absolute http(s) address for ``href`` as the website page would resolve it,
    or "" when there is none (mailto:, javascript:, an anchor within the page) (pure)."""
    href = href.strip()
    if not href or href.startswith("#"):
        return ""
    if not urlsplit(href).scheme and urlsplit(base_url).scheme in ("http", "https"):
        href = urljoin(base_url, href)
    parts = urlsplit(href)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    return href


def _link(node: Tag, inner: str, state: _State) -> str:
    href = resolve_link(str(node.get("href") or ""), state.base_url)
    parts = urlsplit(href) if href else None
    if parts is None or parts.scheme not in ("http", "https"):
        return inner  # mailto:, javascript:, an anchor: the text alone
    if parts.hostname and parts.hostname.endswith(_WECHAT_HOSTS):
        return f'<a href="{escape(href, quote=True)}">{inner}</a>'
    state.links += 1
    text = squash(node.get_text())
    shown = escape(href, quote=False)
    if text == href:
        return shown
    if not text:
        return f"{inner}（{shown}）" if inner.strip() else shown
    return f"{inner}（{shown}）"


def _image(node: Tag, state: _State) -> str:
    src = str(node.get("src") or "").strip()
    ref = state.resolve.get(src) or state.resolve.get(_media_key(src))
    if ref is None:
        state.dropped += 1
        return ""
    key = str(ref.path)
    slot = state.slots.get(key)
    if slot is None:
        slot = ImageSlot(
            placeholder=f"{PLACEHOLDER}{len(state.slots)}",
            path=key,
            source_url=ref.url,
            alt=str(node.get("alt") or ref.alt or "")[:100],
            size=ref.size,
        )
        state.slots[key] = slot
    alt = escape(slot.alt, quote=True)
    return f'<img src="{slot.placeholder}" alt="{alt}" style="{_STYLES["img"]}"/>'


def wechat_html(
    html: str, images: Mapping[str, MediaRef], base_url: str = ""
) -> tuple[str, list[ImageSlot], int, int]:
    """WeChat-safe HTML: (content, image slots in order, images dropped, links flattened).

    Relative links resolve against ``base_url`` (the publication's website address).
    """
    root = _parse(html)
    state = _State(resolve=images, slots={}, base_url=base_url)
    content = "".join(_emit(child, state) for child in root.children).strip()
    return content, list(state.slots.values()), state.dropped, state.links


def _limit_content(content: str) -> tuple[str, bool]:
    """Keep whole top-level blocks within the platform's size limit."""
    if len(content) <= CONTENT_LIMIT and len(content.encode("utf-8")) <= CONTENT_BYTES_LIMIT:
        return content, False
    kept: list[str] = []
    used = 0
    for child in _parse(content).children:
        piece = str(child)
        size = max(len(piece), len(piece.encode("utf-8")) // 3)
        if used + size > CONTENT_LIMIT - 200:
            break
        kept.append(piece)
        used += size
    notice = f'<p style="{_BLOCK_STYLE}color:#888;">（正文较长，全文请点击“阅读原文”查看。）</p>'
    return "".join(kept) + notice, True


def _resolver(publication: PublicationSnapshot) -> dict[str, MediaRef]:
    refs: dict[str, MediaRef] = {}
    for ref in (*publication.images, *publication.attachments):
        if not ref.content_type.startswith("image/"):
            continue
        refs[ref.url] = ref
        refs[_media_key(ref.url)] = ref
        refs[ref.path.name] = ref  # the digest, when the path is content-addressed
    return refs


def render_article(
    publication: PublicationSnapshot,
    account: str,
    *,
    channel: str = "wechat",
    comments: bool = False,
) -> WeChatRendition:
    """The WeChat article for one publication (pure)."""
    notes: list[str] = []
    title = cut(squash(publication.title), TITLE_LIMIT)
    if title != squash(publication.title):
        notes.append(f"标题超过 {TITLE_LIMIT} 字，已截断")
    author_source = squash(publication.issuing_body or publication.office_name)
    author = cut(author_source, AUTHOR_LIMIT)
    if author != author_source:
        notes.append(f"作者超过 {AUTHOR_LIMIT} 字，已截断")
    digest_source = squash(publication.summary) or visible_text(publication.body_html)
    digest = cut(digest_source, DIGEST_LIMIT)
    if digest != digest_source and squash(publication.summary):
        notes.append(f"摘要超过 {DIGEST_LIMIT} 字，已截断")

    body, slots, dropped, links = wechat_html(
        publication.body_html, _resolver(publication), publication.url
    )
    if dropped:
        notes.append(f"{dropped} 张图片不在本系统媒体库中，无法转存到微信，已移除")
    if links:
        notes.append(f"{links} 个外部链接已改为文字加网址（公众号文章不支持外链）")
    header = _header(publication)
    content, shortened = _limit_content(header + body)
    if shortened:
        notes.append("正文超过公众号长度上限，已截断并提示阅读原文")
    slots = [s for s in slots if s.placeholder in content]
    cover = slots[0] if slots else _first_image(publication)
    if cover is None:
        notes.append("正文无图片，使用账号默认封面")
    source_url = publication.url if len(publication.url) <= SOURCE_URL_LIMIT else ""
    preview = _preview(title, author, digest, content, slots, source_url)
    return WeChatRendition(
        channel=channel,
        account=account,
        publication_id=publication.id,
        preview_html=preview,
        notes=tuple(notes),
        title=title,
        author=author,
        digest=digest,
        content=content,
        content_source_url=source_url,
        images=tuple(slots),
        cover=cover,
        need_open_comment=1 if comments else 0,
    )


def _first_image(publication: PublicationSnapshot) -> ImageSlot | None:
    for ref in publication.images:
        if ref.content_type.startswith("image/"):
            return ImageSlot(
                placeholder=f"{PLACEHOLDER}cover",
                path=str(ref.path),
                source_url=ref.url,
                alt=ref.alt,
                size=ref.size,
            )
    return None


def _header(publication: PublicationSnapshot) -> str:
    parts = []
    if publication.issuing_body:
        parts.append(f"发布机构：{escape(publication.issuing_body)}")
    if publication.document_number:
        parts.append(f"文号：{escape(publication.document_number)}")
    parts.append(f"发布日期：{publication.published_at.astimezone(_ZONE):%Y-%m-%d}")
    style = "margin:0 0 1em;font-size:14px;color:#888;line-height:1.6;"
    return f'<p style="{style}">{"　".join(parts)}</p>'


def _preview(
    title: str,
    author: str,
    digest: str,
    content: str,
    slots: list[ImageSlot],
    source_url: str,
) -> str:
    shown = fill_images(content, {s.placeholder: s.source_url for s in slots})
    original = (
        f'<p class="wechat-original"><a href="{escape(source_url, quote=True)}">阅读原文</a></p>'
        if source_url
        else ""
    )
    return (
        '<article class="wechat-preview">'
        f'<h1 style="font-size:22px;line-height:1.4;">{escape(title)}</h1>'
        f'<p class="wechat-meta" style="color:#888;font-size:14px;">{escape(author)}</p>'
        f'<p class="wechat-digest" hidden>{escape(digest)}</p>'
        f"{shown}{original}</article>"
    )


# --- images (pure functions of bytes) ------------------------------------------------------


def prepare_image(content: bytes, max_bytes: int = UPLOADIMG_MAX_BYTES) -> tuple[bytes, str, str]:
    """JPEG or PNG bytes below ``max_bytes``: (bytes, filename, content type).

    Other formats are converted and large images downscaled; an image that cannot be
    read or made small enough raises :class:`PermanentError` naming the problem.
    """
    try:
        with Image.open(io.BytesIO(content)) as probe:
            kind = probe.format
            probe.verify()
        image: Image.Image = Image.open(io.BytesIO(content))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PermanentError(
            f"图片无法识别，不能转存到微信（{type(exc).__name__}）", code="image_unreadable"
        ) from None
    if kind in ("JPEG", "PNG") and len(content) <= max_bytes:
        return content, f"image.{'jpg' if kind == 'JPEG' else 'png'}", f"image/{kind.lower()}"
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    scale = min(1.0, 2000 / max(width, height, 1))
    for quality in (85, 80, 75, 70, 65, 60, 60, 60, 60, 60, 60, 60):
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        candidate = image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        candidate.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= max_bytes:
            return out.getvalue(), "image.jpg", "image/jpeg"
        scale *= 0.8
    raise PermanentError(
        f"图片压缩后仍超过 {max_bytes // 1024} KB，无法转存到微信", code="image_too_large"
    )


def plain_cover(width: int = 900, height: int = 383) -> bytes:
    """A plain cover image (the office blue), for accounts with no default cover."""
    image = Image.new("RGB", (width, height), (31, 78, 140))
    band = Image.new("RGB", (width, height // 8), (200, 40, 40))
    image.paste(band, (0, height - height // 8))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


__all__ = [
    "AUTHOR_LIMIT",
    "DIGEST_LIMIT",
    "TITLE_LIMIT",
    "ImageSlot",
    "WeChatRendition",
    "cut",
    "cut_sentence",
    "fill_images",
    "plain_cover",
    "prepare_image",
    "render_article",
    "resolve_link",
    "safe_prefix",
    "squash",
    "visible_text",
    "wechat_html",
]
