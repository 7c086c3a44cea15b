"""Pure rendering of a publication as one Weibo post (``statuses/share``).

A post is at most 140 characters and must carry a link on the app's bound safe domain.
Length is counted conservatively: every character counts as one (Weibo itself counts two
half-width characters as one and shortens links), so a post that fits here always fits
there, whatever the platform's counting of the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from channels.base import ConfigurationError, PermanentError, Rendition
from channels.wechat_render import cut, cut_sentence, squash, visible_text
from publisher.snapshot import PublicationSnapshot

STATUS_LIMIT = 140
CORRECTION_MARK = "【更正】"
# The "5+1" disclosure categories as the topics followers search for.
CATEGORY_TAGS = {
    "decision": "#决策公开#",
    "implementation": "#执行公开#",
    "management": "#管理公开#",
    "service": "#服务公开#",
    "results": "#结果公开#",
    "key_area": "#重点领域信息公开#",
}
_MIN_TITLE = 8
# statuses/share takes a picture under 5 MB.
PIC_LIMIT_BYTES = 5 * 1024 * 1024 - 1


def weibo_length(text: str) -> int:
    """The length this adapter holds a post to (every character counts one)."""
    return len(text)


def on_safe_domain(url: str, safe_domain: str) -> bool:
    """Whether ``url`` is an http(s) link on ``safe_domain`` (or a subdomain of it)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    domain = safe_domain.lower().strip().strip(".")
    return (
        parts.scheme in ("http", "https")
        and bool(domain)
        and (host == domain or host.endswith("." + domain))
    )


@dataclass(frozen=True)
class WeiboRendition(Rendition):
    """The text of the post, its link and the image to attach."""

    status: str = ""
    link: str = ""
    head: str = ""
    # The same post marked as a correction, for ``update``.
    correction_status: str = ""
    correction_head: str = ""
    pic_path: str | None = None
    pic_url: str | None = None


def compose_status(
    title: str,
    summary: str,
    link: str,
    *,
    tag: str = "",
    prefix: str = "",
    limit: int = STATUS_LIMIT,
) -> tuple[str, str, list[str]]:
    """(status, head, notes): ``prefix【title】summary link tag`` within ``limit`` (pure)."""
    notes: list[str] = []
    title, summary = squash(title), squash(summary)
    fixed = len(prefix) + len(link) + 1 + (len(tag) + 1 if tag else 0)
    room = limit - fixed
    if room < _MIN_TITLE + 2:
        if tag:
            return compose_status(title, summary, link, prefix=prefix, limit=limit)
        raise PermanentError(
            f"网站链接过长（{len(link)} 字符），微博正文放不下标题", code="link_too_long"
        )
    shown_title = cut(title, room - 2)
    if shown_title != title:
        notes.append("标题超过微博长度，已截断")
    head = f"{prefix}【{shown_title}】"
    left = room - 2 - len(shown_title)
    body = ""
    if summary and summary != title and left >= 6:
        body = cut_sentence(summary, left)
        if body != summary:
            notes.append("摘要已按句子截断以适应 140 字")
    status = f"{head}{body} {link}"
    if tag:
        status += f" {tag}"
    assert weibo_length(status) <= limit
    return status, head, notes


def render_status(
    publication: PublicationSnapshot,
    account: str,
    *,
    safe_domain: str,
    hashtags: bool = False,
    correction: bool = False,
    channel: str = "weibo",
) -> WeiboRendition:
    """The Weibo post for one publication (pure)."""
    link = publication.url
    if not on_safe_domain(link, safe_domain):
        raise ConfigurationError(
            f"网站地址 {urlsplit(link).hostname or link[:60]} 不在微博应用绑定的安全域名 "
            f"{safe_domain} 下（weibo.accounts.{account}.safe_domain / website.base_url）",
            code=10017,
        )
    summary = squash(publication.summary) or visible_text(publication.body_html)
    tag = CATEGORY_TAGS.get(publication.category, "") if hashtags else ""
    status, head, notes = compose_status(
        publication.title,
        summary,
        link,
        tag=tag,
        prefix=CORRECTION_MARK if correction else "",
    )
    fixed_status, fixed_head, _ = compose_status(
        publication.title, summary, link, tag=tag, prefix=CORRECTION_MARK
    )
    pic = next((ref for ref in publication.images if ref.content_type.startswith("image/")), None)
    if pic is not None and pic.size > PIC_LIMIT_BYTES:
        # Staff see it before approval: the platform takes pictures under 5 MB.
        notes.append(
            f"配图 {pic.size / 1024 / 1024:.1f} MB 超过微博 5 MB 上限，发布时将压缩；"
            "无法压缩时不带图发布"
        )
    shown = escape(status).replace(
        escape(link), f'<a href="{escape(link, quote=True)}">{escape(link)}</a>'
    )
    preview = f'<div class="weibo-preview"><p>{shown}</p>'
    if pic is not None:
        preview += f'<img src="{escape(pic.url, quote=True)}" alt="" style="max-width:100%;">'
    preview += "</div>"
    return WeiboRendition(
        channel=channel,
        account=account,
        publication_id=publication.id,
        preview_html=preview,
        notes=tuple(notes),
        status=status,
        link=link,
        head=head,
        correction_status=fixed_status,
        correction_head=fixed_head,
        pic_path=str(pic.path) if pic is not None else None,
        pic_url=pic.url if pic is not None else None,
    )


__all__ = [
    "CATEGORY_TAGS",
    "CORRECTION_MARK",
    "PIC_LIMIT_BYTES",
    "STATUS_LIMIT",
    "WeiboRendition",
    "compose_status",
    "on_safe_domain",
    "render_status",
    "weibo_length",
]
