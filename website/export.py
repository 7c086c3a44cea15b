"""Static export of the public site for the office's existing web server.

``full(dir)`` rebuilds everything; ``apply(publication_id)`` rewrites only the pages one
publish, correction or withdrawal affects, so its cost does not grow with the catalog:

- the item page (Chinese, and English when the item has an English version), or its
  removal when withdrawn;
- the home pages, the first catalog page (all, the item's category, its column);
- the item's month in the archive (``/disclosure/archive/YYYY-MM``) — archive pages never
  shift as new items arrive, unlike numbered pages, which is why the static site paginates
  by month;
- the Atom feeds (site and category).

The sitemap and the list of months are rebuilt by the full export only (they are the only
pages whose size is the catalog's).

Files: an address ``/x/y`` is written as ``x/y.html`` and ``/x/`` as ``x/index.html``;
serve with ``try_files $uri $uri.html $uri/index.html`` (nginx) or the equivalent.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from channels.website import ChangeHook
from govcast.settings import Settings
from publisher.db import Database
from publisher.models import Publication
from publisher.orm import utcnow
from website import catalog, feeds, pages
from website.catalog import CatalogFilter
from website.i18n import Lang
from website.render import STATIC, Site, render_html

log = logging.getLogger("govcast.website")


@dataclass
class ExportStats:
    """What one export run wrote."""

    pages: int = 0
    removed: int = 0
    seconds: float = 0.0


def file_for(root: Path, address: str) -> Path:
    """Where the page at ``address`` lives under the export folder."""
    relative = address.lstrip("/")
    if relative == "" or relative.endswith("/"):
        relative += "index.html"
    else:
        relative += ".html"
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"address {address!r} leaves the export folder")
    return target


def _write(path: Path, content: str) -> None:
    # Write then rename: a web server never serves a half-written page.
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(content, encoding="utf-8")
    os.replace(temp, path)


class Exporter:
    """Writes pages of one deployment into one folder."""

    def __init__(self, settings: Settings, db: Database, root: Path) -> None:
        self.settings = settings
        self.db = db
        self.root = root
        self.stats = ExportStats()
        # Pages the running full export expects to write (for progress); 0 until known.
        self.planned = 0

    def _site(self, lang: Lang, path: str) -> Site:
        return Site(settings=self.settings, lang=lang, path=path, static=True)

    def _page(self, address: str, site: Site, built: pages.Page) -> None:
        html = render_html(site, built.template, built.context, title=built.title, meta=built.meta)
        _write(file_for(self.root, address), html)
        self.stats.pages += 1

    def _raw(self, address: str, content: str) -> None:
        path = (self.root / address.lstrip("/")).resolve()
        _write(path, content)
        self.stats.pages += 1

    async def home(self) -> None:
        """Both home pages."""
        for lang, prefix in (("zh", ""), ("en", "/en")):
            site = self._site(lang, "/")  # type: ignore[arg-type]
            self._page(prefix + "/", site, await pages.home(self.db, site))

    async def catalog_first_pages(self, category: str | None, column: str | None) -> None:
        """The first page of the catalog (all), of one category and of one column."""
        size = self.settings.website.page_size
        wanted = [CatalogFilter()]
        if category:
            wanted.append(CatalogFilter(category=category))
        if column:
            wanted.append(CatalogFilter(column=column))
        for f in wanted:
            for lang, prefix in (("zh", ""), ("en", "/en")):
                site = self._site(lang, "/disclosure/")  # type: ignore[arg-type]
                address = "/disclosure/"
                if f.category:
                    address = f"/disclosure/category/{f.category}/"
                elif f.column:
                    address = f"/disclosure/column/{f.column}/"
                built = await pages.disclosure(self.db, site, f, size)
                self._page(prefix + address, site, built)

    async def item(self, index_number: str) -> bool:
        """An item's pages; False (and the files removed) when it is not live."""
        site = self._site("zh", f"/disclosure/{index_number}")
        built = await pages.item(self.db, site, index_number)
        zh = file_for(self.root, f"/disclosure/{index_number}")
        en = file_for(self.root, f"/en/disclosure/{index_number}")
        if built.status != 200:
            for path in (zh, en):
                if path.exists():
                    path.unlink()
                    self.stats.removed += 1
            return False
        self._page(f"/disclosure/{index_number}", site, built)
        english = "en" in site.alternates
        if english:
            en_site = self._site("en", f"/disclosure/{index_number}")
            self._page(
                f"/en/disclosure/{index_number}",
                en_site,
                await pages.item(self.db, en_site, index_number),
            )
        elif en.exists():
            en.unlink()
        return True

    async def day(self, day: date) -> bool:
        """One day of the archive; True when the page did not exist before."""
        async with self.db.sessions() as session:
            items = await catalog.day_items(session, day)
        address = f"/disclosure/archive/{day:%Y-%m}/{day:%Y-%m-%d}"
        new = not file_for(self.root, address).exists()
        site = self._site("zh", address)
        title = f"{day:%Y-%m-%d} - {site.t('archive')}"
        self._page(address, site, pages.Page("archive.html", title, {"items": items}))
        return new

    async def month(self, month: str, days: list[tuple[str, int]] | None = None) -> None:
        """One month of the archive: its days."""
        year, mon = (int(x) for x in month.split("-"))
        if days is None:
            start = datetime(year, mon, 1, tzinfo=UTC)
            end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
            async with self.db.sessions() as session:
                days = await catalog.day_counts(session, start, end)
        address = f"/disclosure/archive/{month}/"
        site = self._site("zh", address)
        links = [(d, f"{month}/{d}", n) for d, n in days]
        title = f"{month} - {site.t('archive')}"
        self._page(address, site, pages.Page("archive.html", title, {"months": links}))

    async def archive_index(self, counts: list[tuple[str, int]]) -> None:
        """The list of months."""
        months: dict[str, int] = {}
        for day_key, n in counts:
            months[day_key[:7]] = months.get(day_key[:7], 0) + n
        site = self._site("zh", "/disclosure/archive/")
        self._page(
            "/disclosure/archive/",
            site,
            pages.Page(
                "archive.html",
                site.t("archive"),
                {"months": [(m, f"{m}/", n) for m, n in sorted(months.items(), reverse=True)]},
            ),
        )

    async def feeds(self, category: str | None) -> None:
        """The site feed and one category's feed."""
        w = self.settings.website
        now = utcnow()
        self._raw("/feed.atom", await feeds.feed_xml(self.db, w.base_url, w.site_name, None, now))
        if category:
            body = await feeds.feed_xml(self.db, w.base_url, w.site_name, category, now)
            self._raw(f"/feed/{category}.atom", body)

    async def apply(self, publication_id: int) -> ExportStats:
        """Rewrite only the pages affected by one change to one publication."""
        started = time.perf_counter()
        self.stats = ExportStats()
        async with self.db.sessions() as session:
            publication = await session.get(Publication, publication_id)
            found = await catalog.index_number_of(session, publication_id)
        if publication is None or found is None:
            return self.stats
        index_number, _state = found
        await self.item(index_number)
        await self.home()
        await self.catalog_first_pages(publication.category, _column_of(publication))
        published = (publication.published_at or publication.created_at).astimezone(UTC)
        if await self.day(published.date()):
            # A new day: its month's list of days changes (a month's worth of dates).
            month = f"{published:%Y-%m}"
            new_month = not file_for(self.root, f"/disclosure/archive/{month}/").exists()
            await self.month(month)
            if new_month:
                # Once a month: the list of months (the one catalog-wide query).
                async with self.db.sessions() as session:
                    await self.archive_index(await catalog.day_counts(session))
        await self.feeds(publication.category)
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    async def full(self) -> ExportStats:
        """Rebuild the whole site."""
        started = time.perf_counter()
        self.stats = ExportStats()
        async with self.db.sessions() as session:
            counts = await catalog.day_counts(session)
            live = await catalog.all_live(session)
        months = {day_key[:7] for day_key, _n in counts}
        # Home (2), first catalog pages (4 per category or column), feeds (2 per category),
        # the archive, the items (one page each, two with English), sitemap, report-error.
        self.planned = (
            2
            + 4 * (len(catalog.CATEGORIES) + len(catalog.SUB_COLUMNS))
            + 2 * len(catalog.CATEGORIES)
            + 1
            + len(months)
            + len(counts)
            + len(live)
            + 2
        )
        self.root.mkdir(parents=True, exist_ok=True)
        static = self.root / "static" / "website"
        static.mkdir(parents=True, exist_ok=True)
        for css in STATIC.iterdir():
            if css.is_file():
                shutil.copyfile(css, static / css.name)
        await self.home()
        for category in catalog.CATEGORIES:
            await self.catalog_first_pages(category, None)
        for column in catalog.SUB_COLUMNS:
            await self.catalog_first_pages(None, column)
        for category in catalog.CATEGORIES:
            await self.feeds(category)
        await self.archive_index(counts)
        by_month: dict[str, list[tuple[str, int]]] = {}
        for day_key, n in counts:
            by_month.setdefault(day_key[:7], []).append((day_key, n))
        for month, days in by_month.items():
            await self.month(month, days)
            for day_key, _n in days:
                await self.day(date.fromisoformat(day_key))
        for index_number, _updated in live:
            await self.item(index_number)
        w = self.settings.website
        self._raw("/sitemap.xml", await feeds.sitemap_xml(self.db, w.base_url))
        for name, site_ in (("report-error", self._site("zh", "/report-error")),):
            self._page(f"/{name}", site_, pages.report_error(site_))
        self.stats.seconds = time.perf_counter() - started
        return self.stats


def _column_of(publication: Publication) -> str | None:
    if publication.column_key in ("guide", "rules", "annual_report"):
        return publication.column_key
    return "statutory" if publication.kind == "disclosure" else None


def change_hook(settings: Settings, db: Database) -> ChangeHook | None:
    """The website channel's after-change hook when ``[website] export_dir`` is set."""
    folder = settings.website.export_dir
    if not folder:
        return None
    root = Path(folder)
    if not root.is_absolute():
        root = settings.data_dir / root

    async def on_change(publication_id: int) -> None:
        stats = await Exporter(settings, db, root).apply(publication_id)
        log.info(
            "static export updated",
            extra={
                "publication_id": publication_id,
                "pages": stats.pages,
                "removed": stats.removed,
            },
        )

    return on_change
