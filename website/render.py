"""Rendering public pages in the site's one layout (``templates/base.html``).

Other packages add public pages in the same look with :func:`page`::

    from website.render import page
    return page(request, "cases/list.html", {"cases": cases}, title="互动交流",
                column="cases", templates=MY_TEMPLATE_DIR)

Every string a visitor or staff member wrote is escaped by Jinja2's autoescape; body HTML
comes already sanitized by ``publisher.markup`` and is the only thing marked safe.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from markupsafe import Markup

from govcast import keys
from govcast.settings import Settings
from website.i18n import HTML_LANG, Lang, translate

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
ELDER_COOKIE = "govcast_elder"

# No inline scripts or styles anywhere: pages work without JavaScript.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "SAMEORIGIN",
}


@functools.cache
def environment(extra: tuple[str, ...] = ()) -> jinja2.Environment:
    """The template environment (website templates, plus other packages' folders)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*extra, str(TEMPLATES)]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date"] = _date
    return env


def _date(value: datetime | None, zone: str = "Asia/Shanghai") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class PageMeta:
    """The government meta tags of one page."""

    column_name: str = ""
    column_type: str = ""
    article_title: str = ""
    pub_date: str = ""
    content_source: str = ""
    keywords: str = ""
    description: str = ""


@dataclass
class Site:
    """Site-wide context of one rendering: language, mode, addresses."""

    settings: Settings
    lang: Lang
    path: str  # language-neutral path, e.g. "/disclosure/"
    query: str = ""
    elder: bool = False
    static: bool = False  # rendering for the static export
    alternates: dict[str, str] = field(default_factory=dict)

    @property
    def html_lang(self) -> str:
        """The lang attribute of <html>."""
        return HTML_LANG[self.lang]

    @property
    def base_url(self) -> str:
        """The site's public base address, without a trailing slash."""
        return self.settings.website.base_url.rstrip("/")

    @property
    def name(self) -> str:
        """The site's name in the page language."""
        w = self.settings.website
        return w.site_name if self.lang == "zh" else w.site_name_en

    def t(self, key: str, **values: object) -> str:
        """An interface string in the page language."""
        return translate(self.lang, key, **values)

    def url(self, path: str, lang: Lang | None = None, **params: object) -> str:
        """A site-relative address in this page's language (or ``lang``)."""
        lang = lang or self.lang
        prefix = "/en" if lang == "en" else ""
        if self.static:
            # Static files have no query strings: filtered first pages have their own paths.
            if path == "/disclosure/" and params.get("category"):
                return f"{prefix}/disclosure/category/{params['category']}/"
            if path == "/disclosure/" and params.get("column"):
                return f"{prefix}/disclosure/column/{params['column']}/"
            return prefix + path
        query = urlencode([(k, v) for k, v in params.items() if v not in (None, "")])
        return prefix + path + (f"?{query}" if query else "")

    def absolute(self, path: str, lang: Lang | None = None, **params: object) -> str:
        """A full public address."""
        return self.base_url + self.url(path, lang, **params)

    @property
    def canonical(self) -> str:
        """This page's canonical address."""
        return self.base_url + self.url(self.path) + (f"?{self.query}" if self.query else "")

    @property
    def switch_url(self) -> str:
        """The same page in the other language."""
        other: Lang = "en" if self.lang == "zh" else "zh"
        return self.url(self.path, other) + (f"?{self.query}" if self.query else "")

    @property
    def elder_url(self) -> str:
        """Toggle the elder-friendly mode (a cookie is set; works without JavaScript)."""
        return self.url(self.path) + "?" + urlencode({"elder": "0" if self.elder else "1"})


def render_html(
    site: Site,
    template: str,
    context: Mapping[str, Any],
    *,
    title: str,
    meta: PageMeta | None = None,
    templates: tuple[str, ...] = (),
) -> str:
    """Pure: one page as HTML text."""
    env = environment(templates)
    return env.get_template(template).render(
        site=site, t=site.t, title=title, meta=meta or PageMeta(), Markup=Markup, **context
    )


def site_for(request: web.Request, path: str | None = None) -> Site:
    """The rendering context of this request: language from the address, elder mode from
    the query (which also sets the cookie) or the cookie."""
    settings = request.app[keys.SETTINGS]
    raw = request.path
    lang: Lang = "en" if raw == "/en" or raw.startswith("/en/") else "zh"
    neutral = path or (raw[3:] or "/" if lang == "en" else raw)
    elder_param = request.query.get("elder")
    if elder_param in ("0", "1"):
        elder = elder_param == "1"
    else:
        elder = request.cookies.get(ELDER_COOKIE) == "1"
    query = urlencode([(k, v) for k, v in request.query.items() if k != "elder"])
    return Site(settings=settings, lang=lang, path=neutral, query=query, elder=elder)


def page(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    title: str,
    meta: PageMeta | None = None,
    status: int = 200,
    site: Site | None = None,
    templates: tuple[str, ...] = (),
) -> web.Response:
    """Render a public page in the site layout, with the security headers."""
    site = site or site_for(request)
    body = render_html(site, template, context, title=title, meta=meta, templates=templates)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Language"] = site.html_lang
    elder_param = request.query.get("elder")
    if elder_param in ("0", "1"):
        response.set_cookie(
            ELDER_COOKIE, elder_param, max_age=365 * 86400, httponly=True, samesite="Lax"
        )
    return response
