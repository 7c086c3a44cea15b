"""Atom feeds and the sitemap (pure builders plus the queries that feed them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from publisher.db import Database
from website import catalog
from website.catalog import ItemRow

FEED_SIZE = 50
SITEMAP_LIMIT = 50_000  # the sitemap protocol's limit per file


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atom(base_url: str, title: str, self_path: str, items: Sequence[ItemRow], now: datetime) -> str:
    """Pure: an Atom 1.0 document of the items."""
    base = base_url.rstrip("/")
    updated = _iso(items[0].published_at) if items else _iso(now)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="zh-CN">',
        f"<title>{escape(title)}</title>",
        f"<id>{escape(base + self_path)}</id>",
        f'<link rel="self" href={quoteattr(base + self_path)}/>',
        f'<link rel="alternate" href={quoteattr(base + "/disclosure/")}/>',
        f"<updated>{updated}</updated>",
    ]
    for it in items:
        url = f"{base}/disclosure/{it.index_number}"
        parts += [
            "<entry>",
            f"<title>{escape(it.title)}</title>",
            f"<id>{escape(url)}</id>",
            f"<link href={quoteattr(url)}/>",
            f"<updated>{_iso(it.published_at)}</updated>",
            f"<author><name>{escape(it.issuing_body)}</name></author>",
            f"<category term={quoteattr(it.category)}/>",
            f"<summary>{escape(it.summary)}</summary>",
            "</entry>",
        ]
    parts.append("</feed>")
    return "\n".join(parts) + "\n"


def sitemap(base_url: str, entries: Sequence[tuple[str, datetime]], fixed: Sequence[str]) -> str:
    """Pure: a sitemap of the fixed pages and every live item."""
    base = base_url.rstrip("/")
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]
    for path in fixed:
        parts.append(f"<url><loc>{escape(base + path)}</loc></url>")
    for index_number, updated in entries[: SITEMAP_LIMIT - len(fixed)]:
        loc = escape(f"{base}/disclosure/{index_number}")
        parts.append(
            f"<url><loc>{loc}</loc><lastmod>{updated.astimezone(UTC):%Y-%m-%d}</lastmod></url>"
        )
    parts.append("</urlset>")
    return "\n".join(parts) + "\n"


async def feed_xml(
    db: Database, base_url: str, site_name: str, category: str | None, now: datetime
) -> str:
    """The site feed, or one category's."""
    async with db.sessions() as session:
        # Newest first through the live-item indexes: no count, constant cost.
        items = await catalog.latest(session, category=category, limit=FEED_SIZE)
    path = f"/feed/{category}.atom" if category else "/feed.atom"
    return atom(base_url, site_name, path, items, now)


async def sitemap_xml(db: Database, base_url: str) -> str:
    """The sitemap of the live catalog (newest first, within the protocol's limit)."""
    async with db.sessions() as session:
        entries = await catalog.all_live(session, limit=SITEMAP_LIMIT)
    return sitemap(base_url, entries, ["/", "/disclosure/", "/solicitations/", "/en/"])
