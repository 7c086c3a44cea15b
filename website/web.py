"""HTTP routes of the website package: the public disclosure platform.

Every page exists in Chinese at its address and in English under ``/en``; pages need no
JavaScript. Handlers only parse the request and hand over to ``website.pages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from govcast import keys
from govcast.scheduler import Tick
from website import catalog, feeds, pages
from website.hits import HitCounter
from website.render import SECURITY_HEADERS, STATIC, PageMeta, page, site_for
from website.search import MAX_OFFSET, MAX_QUERY_CHARS, search

log = logging.getLogger("govcast.website")

HITS = web.AppKey("website_hits", HitCounter)
HIT_FLUSH_SECONDS = 30.0
INDEX_NUMBER_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z/_.\-]{0,63}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup(app: web.Application) -> None:
    """Add this package's routes and resources to the application."""
    app[HITS] = HitCounter()
    app.cleanup_ctx.append(_hit_flusher)
    routes: list[tuple[str, Handler]] = [
        ("/", home),
        ("/disclosure/", disclosure),
        ("/disclosure/{index:.+}", item),
        ("/search", search_page),
        ("/solicitations/", solicitations),
        ("/solicitations/{index:.+}", solicitation),
        ("/report-error", report_error),
    ]
    for path, handler in routes:
        app.router.add_get(path, handler)
        app.router.add_get("/en" + path, handler)
    app.router.add_get("/en", _to_en_home)
    app.router.add_get("/disclosure", _to_catalog)
    app.router.add_get("/feed.atom", feed)
    app.router.add_get("/feed/{category}.atom", feed)
    app.router.add_get("/sitemap.xml", sitemap)
    app.router.add_static("/static/website/", STATIC, name="website_static")


async def _to_en_home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/en/")


async def _to_catalog(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/disclosure/")


def ticks(app: web.Application) -> list[Tick]:
    """No scheduler work: hit counts are flushed by each web process itself."""
    return []


async def _hit_flusher(app: web.Application) -> AsyncIterator[None]:
    # The counts live in this web process, so this process flushes them: periodically,
    # and once more on shutdown.
    counter = app[HITS]

    async def loop() -> None:
        while True:
            await asyncio.sleep(HIT_FLUSH_SECONDS)
            with contextlib.suppress(Exception):
                await counter.flush(app[keys.DB])

    task = asyncio.create_task(loop(), name="website-hit-flush")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await counter.flush(app[keys.DB])


def _render(request: web.Request, built: pages.Page, site: object | None = None) -> web.Response:
    return page(
        request,
        built.template,
        built.context,
        title=built.title,
        meta=built.meta,
        status=built.status,
        site=site,  # type: ignore[arg-type]
    )


def _bad_request(request: web.Request) -> web.Response:
    site = site_for(request)
    return _render(request, pages.message(site, "bad_request_title", "not_found_text", 400))


async def home(request: web.Request) -> web.Response:
    """The home page."""
    site = site_for(request)
    return _render(request, await pages.home(request.app[keys.DB], site), site)


async def disclosure(request: web.Request) -> web.Response:
    """The catalog with filters."""
    site = site_for(request)
    try:
        f = catalog.parse_filter(dict(request.query))
    except catalog.FilterError:
        return _bad_request(request)
    size = request.app[keys.SETTINGS].website.page_size
    return _render(request, await pages.disclosure(request.app[keys.DB], site, f, size), site)


async def item(request: web.Request, *, solicitation: bool = False) -> web.Response:
    """One item page; withdrawn items answer 410 Gone."""
    site = site_for(request)
    index_number = request.match_info["index"]
    if not INDEX_NUMBER_RE.match(index_number):
        return _render(request, pages.message(site, "not_found_title", "not_found_text", 404), site)
    db = request.app[keys.DB]
    built = await pages.item(db, site, index_number, solicitation=solicitation)
    if built.publication_id is not None:
        counter = request.app[HITS]
        counter.hit(built.publication_id)
        built.context["hits"] = await counter.total(db, built.publication_id)
    return _render(request, built, site)


async def solicitation(request: web.Request) -> web.Response:
    """One solicitation (read-only; the opinion form belongs to the cases package)."""
    return await item(request, solicitation=True)


async def solicitations(request: web.Request) -> web.Response:
    """The list of solicitations."""
    site = site_for(request)
    try:
        f = catalog.parse_filter({"page": request.query.get("page", "")})
    except catalog.FilterError:
        return _bad_request(request)
    size = request.app[keys.SETTINGS].website.page_size
    return _render(
        request, await pages.solicitations(request.app[keys.DB], site, f.page, size), site
    )


async def report_error(request: web.Request) -> web.Response:
    """Where to report an error (找错)."""
    return _render(request, pages.report_error(site_for(request)))


async def search_page(request: web.Request) -> web.Response:
    """Site search with filters and pagination."""
    site = site_for(request)
    q = request.query.get("q", "").strip()
    category = request.query.get("category") or None
    raw_year = request.query.get("year") or ""
    raw_page = request.query.get("page") or "1"
    if (
        len(q) > MAX_QUERY_CHARS
        or (category is not None and category not in catalog.CATEGORIES)
        or (raw_year and not (raw_year.isdigit() and 1949 <= int(raw_year[:6]) <= 2100))
        or not raw_page.isdigit()
        or len(raw_page) > 5
    ):
        return _bad_request(request)
    year = int(raw_year) if raw_year else None
    size = 10
    page_number = max(1, int(raw_page))
    if (page_number - 1) * size > MAX_OFFSET:
        return _bad_request(request)
    results = await search(
        request.app[keys.DB],
        q,
        limit=size,
        offset=(page_number - 1) * size,
        category=category,
        year=year,
    )
    listing = catalog.Listing([], results.total, page_number, size)
    params = {"q": q, "category": category or "", "year": raw_year}
    built = pages.Page(
        "search.html",
        site.t("search"),
        {
            "q": q,
            "results": results,
            "listing": listing,
            "params": {k: v for k, v in params.items() if v},
            "categories": catalog.CATEGORIES,
            "category": category,
            "year": year,
            "years": pages.years(),
        },
        PageMeta(column_name=site.t("search"), column_type="搜索"),
    )
    return _render(request, built, site)


async def feed(request: web.Request) -> web.Response:
    """The Atom feed of the catalog or of one category."""
    category = request.match_info.get("category")
    if category is not None and category not in catalog.CATEGORIES:
        raise web.HTTPNotFound()
    settings = request.app[keys.SETTINGS]
    from publisher.orm import utcnow

    body = await feeds.feed_xml(
        request.app[keys.DB],
        settings.website.base_url,
        settings.website.site_name,
        category,
        utcnow(),
    )
    return _xml(body, "application/atom+xml")


async def sitemap(request: web.Request) -> web.Response:
    """The sitemap."""
    settings = request.app[keys.SETTINGS]
    return _xml(
        await feeds.sitemap_xml(request.app[keys.DB], settings.website.base_url), "application/xml"
    )


def _xml(body: str, content_type: str) -> web.Response:
    response = web.Response(text=body, content_type=content_type, charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response
