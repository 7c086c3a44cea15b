"""The public pages as data: what to render for each address, independent of HTTP.

The HTTP handlers (``website.web``) and the static export (``website.export``) both use
these builders, so the live site and the exported files are the same pages.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from publisher.db import Database
from publisher.orm import utcnow
from website import catalog
from website.catalog import CatalogFilter
from website.columns import COLUMNS_BY_KEY
from website.render import PageMeta, Site

log = logging.getLogger("govcast.website")

HOME_COLUMNS = ("news", "notices", "policy", "guide", "rules", "annual_report")


@dataclass
class Page:
    """A page ready to render."""

    template: str
    title: str
    context: dict[str, Any] = field(default_factory=dict)
    meta: PageMeta = field(default_factory=PageMeta)
    status: int = 200
    publication_id: int | None = None


def years(now: datetime | None = None) -> list[int]:
    """Years offered in filters: this one and the fifteen before."""
    current = (now or utcnow()).year
    return list(range(current, current - 16, -1))


async def recent_answered(db: Database, limit: int = 6) -> list[Any] | None:
    """Recently answered citizen questions from ``bot.cases.public`` when that package
    provides ``recent_answered(db, limit=...)``; None hides the section."""
    try:
        module = importlib.import_module("bot.cases.public")
    except ImportError:
        return None
    provider = getattr(module, "recent_answered", None)
    if provider is None:
        return None
    try:
        return list(await provider(db, limit=limit))
    except Exception:  # another package's tables may not exist yet: keep the home page up
        log.warning("answered questions unavailable", exc_info=True)
        return None


async def home(db: Database, site: Site, *, with_cases: bool = True) -> Page:
    """The home page: latest per column, press releases, open solicitations, answers."""
    async with db.sessions() as session:
        columns = [("latest", await catalog.latest(session, limit=8))]
        columns += [(key, await catalog.latest(session, column=key)) for key in HOME_COLUMNS]
        press = await catalog.latest(session, kind="press_release")
        solicitations = await catalog.open_solicitations(session, utcnow())
    answered = await recent_answered(db) if with_cases else None
    return Page(
        "home.html",
        site.t("home"),
        {"columns": columns, "press": press, "solicitations": solicitations, "answered": answered},
        PageMeta(column_name=site.t("home"), column_type="首页", description=site.name),
    )


async def disclosure(db: Database, site: Site, f: CatalogFilter, page_size: int) -> Page:
    """The catalog with its filters."""
    async with db.sessions() as session:
        if site.static:
            # Static first pages: no total to count (the archive links the rest), so the
            # incremental export's cost does not grow with the catalog.
            column = f.column if f.column in COLUMNS_BY_KEY else None
            items = await catalog.latest(
                session, column=column, category=f.category, limit=page_size
            )
            listing = catalog.Listing(items, len(items), 1, page_size)
        else:
            listing = await catalog.listing(session, f, page_size)
    if f.column:
        heading = site.t("column_" + f.column)
    elif f.category:
        heading = site.t("category_" + f.category)
    else:
        heading = site.t("latest")
    return Page(
        "catalog.html",
        site.t("disclosure")
        if heading == site.t("latest")
        else f"{heading} - {site.t('disclosure')}",
        {
            "listing": listing,
            "filter": f,
            "heading": heading,
            "params": dict(f.query_items()),
            "categories": catalog.CATEGORIES,
            "sub_columns": catalog.SUB_COLUMNS,
            "years": years(),
        },
        PageMeta(column_name=site.t("disclosure"), column_type="信息公开目录"),
    )


def message(site: Site, title_key: str, text_key: str, status: int) -> Page:
    """A short page with one message (404, 410, 400)."""
    return Page(
        "message.html",
        site.t(title_key),
        {"text": site.t(text_key)},
        PageMeta(column_name=site.t(title_key)),
        status=status,
    )


async def item(
    db: Database,
    site: Site,
    index_number: str,
    *,
    hits: int | None = None,
    solicitation: bool = False,
) -> Page:
    """One item page (or the 404/410 page)."""
    async with db.sessions() as session:
        view = await catalog.item(session, index_number)
    if view is None or (solicitation and view.publication.kind != "solicitation"):
        return message(site, "not_found_title", "not_found_text", 404)
    if view.state != "live":
        return message(site, "gone_title", "gone_text", 410)
    p = view.publication
    english = bool(p.title_en and p.body_html_en)
    base = "/solicitations/" if solicitation else "/disclosure/"
    path = base + index_number
    if english:
        site.alternates = {
            "zh-CN": site.absolute(path, "zh"),
            "en": site.absolute(path, "en"),
            "x-default": site.absolute(path, "zh"),
        }
    else:
        # Without an English version the Chinese page is the only version of the content.
        site.alternates = {"zh-CN": site.absolute(path, "zh")}
    show_en = site.lang == "en" and english
    heading = (p.title_en or p.title) if show_en else p.title
    # Sanitized by publisher.markup when it was written: the only HTML trusted as is.
    body = Markup(p.body_html_en if show_en else p.body_html)  # noqa: S704
    now = utcnow()
    published = p.published_at or p.created_at
    return Page(
        "item.html",
        heading,
        {
            "view": view,
            "heading": heading,
            "body": body,
            # English interface around Chinese content: mark the content's language.
            "content_lang": "zh-CN" if site.lang == "en" and not show_en else None,
            "other_lang_url": site.url(path, "zh" if site.lang == "en" else "en")
            if english
            else None,
            "other_hreflang": "zh-CN" if site.lang == "en" else "en",
            "hits": hits,
            "solicitation_open": p.solicitation_closes_at is None
            or p.solicitation_closes_at >= now,
        },
        PageMeta(
            column_name=site.t("column_solicitation" if solicitation else "disclosure"),
            column_type="意见征集" if solicitation else "信息公开",
            article_title=heading,
            pub_date=published.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            content_source=p.source or p.issuing_body,
            keywords=",".join(p.keywords or []),
            description=p.summary[:200],
        ),
        publication_id=p.id,
    )


async def solicitations(db: Database, site: Site, page: int, page_size: int) -> Page:
    """All solicitations, newest first."""
    async with db.sessions() as session:
        listing = await catalog.listing(
            session, CatalogFilter(page=page), page_size, kind="solicitation"
        )
    return Page(
        "solicitations.html",
        site.t("solicitations"),
        {"listing": listing},
        PageMeta(column_name=site.t("solicitations"), column_type="意见征集"),
    )


def report_error(site: Site) -> Page:
    """Where to report an error on the site."""
    return Page(
        "report_error.html",
        site.t("report_error"),
        {},
        PageMeta(column_name=site.t("report_error")),
    )


def params_of(mapping: Mapping[str, str]) -> dict[str, str]:
    """Query parameters as a plain dict (last value wins)."""
    return {k: v for k, v in mapping.items()}
