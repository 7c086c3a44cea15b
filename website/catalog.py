"""Read side of the disclosure platform: live catalog items, filtered and paginated.

Shared by the HTTP handlers and the static export. Only LIVE website entries are public.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.models import WebsiteEntry
from publisher.models import Category, Media, Publication, PublicationMedia
from publisher.orm import utcnow
from website.columns import COLUMNS_BY_KEY
from website.models import SearchDoc

CATEGORIES = tuple(c.value for c in Category)
SUB_COLUMNS = ("guide", "rules", "statutory", "annual_report")
MAX_PAGE = 5000


class FilterError(ValueError):
    """A catalog filter that cannot be honoured (answered with 400)."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field_name = field_name


@dataclass(frozen=True)
class CatalogFilter:
    """The catalog's filters, validated."""

    category: str | None = None
    column: str | None = None
    year: int | None = None
    subject: str | None = None
    genre: str | None = None
    issuing_body: str | None = None
    page: int = 1

    def query_items(self) -> list[tuple[str, str]]:
        """The filter as query-string pairs (for pagination links)."""
        pairs = [
            ("category", self.category),
            ("column", self.column),
            ("year", str(self.year) if self.year else None),
            ("subject", self.subject),
            ("genre", self.genre),
            ("issuing_body", self.issuing_body),
        ]
        return [(k, v) for k, v in pairs if v]


def parse_filter(params: dict[str, str]) -> CatalogFilter:
    """Validate query parameters into a filter; raise FilterError on anything odd."""
    category = params.get("category") or None
    if category is not None and category not in CATEGORIES:
        raise FilterError("category", "unknown category")
    column = params.get("column") or None
    if column is not None and column not in SUB_COLUMNS:
        raise FilterError("column", "unknown column")
    year = _int(params.get("year"), "year", 1949, 2100)
    page = _int(params.get("page"), "page", 1, MAX_PAGE) or 1
    texts = {}
    for key in ("subject", "genre", "issuing_body"):
        value = (params.get(key) or "").strip()
        if len(value) > 100:
            raise FilterError(key, "too long")
        texts[key] = value or None
    return CatalogFilter(category=category, column=column, year=year, page=page, **texts)


def _int(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise FilterError(name, "not a number")
    value = int(raw)
    if not low <= value <= high:
        raise FilterError(name, "out of range")
    return value


@dataclass(frozen=True)
class ItemRow:
    """One line of a listing."""

    publication_id: int
    index_number: str
    title: str
    title_en: str | None
    published_at: datetime
    category: str
    kind: str
    issuing_body: str
    document_number: str | None
    summary: str


@dataclass(frozen=True)
class Listing:
    """One page of a listing."""

    items: list[ItemRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        """Number of pages (at least one)."""
        return max(1, -(-self.total // self.page_size))


def _live() -> Select[Any]:
    return (
        select(Publication)
        .join(WebsiteEntry, WebsiteEntry.publication_id == Publication.id)
        .where(WebsiteEntry.state == "live")
    )


def _apply(stmt: Select[Any], f: CatalogFilter) -> Select[Any]:
    if f.category:
        stmt = stmt.where(Publication.category == f.category)
    if f.column:
        stmt = COLUMNS_BY_KEY[f.column].where(stmt)
        if f.column == "statutory":
            stmt = stmt.where(
                (Publication.column_key.is_(None))
                | Publication.column_key.not_in(("guide", "rules", "annual_report"))
            )
    if f.year:
        stmt = stmt.where(
            Publication.published_at >= datetime(f.year, 1, 1, tzinfo=utcnow().tzinfo),
            Publication.published_at < datetime(f.year + 1, 1, 1, tzinfo=utcnow().tzinfo),
        )
    if f.subject:
        stmt = stmt.where(Publication.subject == f.subject)
    if f.genre:
        stmt = stmt.where(Publication.genre == f.genre)
    if f.issuing_body:
        stmt = stmt.where(Publication.issuing_body == f.issuing_body)
    return stmt


def _row(p: Publication) -> ItemRow:
    return ItemRow(
        publication_id=p.id,
        index_number=p.index_number or "",
        title=p.title,
        title_en=p.title_en,
        published_at=p.published_at or p.created_at,
        category=p.category,
        kind=p.kind,
        issuing_body=p.issuing_body,
        document_number=p.document_number,
        summary=p.summary,
    )


async def listing(
    session: AsyncSession, f: CatalogFilter, page_size: int, *, kind: str | None = None
) -> Listing:
    """Live items matching the filter, newest first, one page."""
    stmt = _apply(_live(), f)
    if kind:
        stmt = stmt.where(Publication.kind == kind)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        await session.execute(
            stmt.order_by(Publication.published_at.desc(), Publication.id.desc())
            .limit(page_size)
            .offset((f.page - 1) * page_size)
        )
    ).scalars()
    return Listing([_row(p) for p in rows], int(total), f.page, page_size)


async def latest(
    session: AsyncSession,
    *,
    column: str | None = None,
    kind: str | None = None,
    category: str | None = None,
    limit: int = 6,
) -> list[ItemRow]:
    """The newest live items of a column, kind or category, read newest-first from the
    live-item table's (filter, rank_key) indexes: constant cost at any catalog size."""
    base = select(SearchDoc.publication_id, SearchDoc.rank_key)
    if kind:
        base = base.where(SearchDoc.kind == kind)
    if category:
        base = base.where(SearchDoc.category == category)
    statements = COLUMNS_BY_KEY[column].doc_queries(base) if column else [base]
    found: list[tuple[int, int]] = []
    for stmt in statements:
        rows: Any = await session.execute(stmt.order_by(SearchDoc.rank_key.desc()).limit(limit))
        found.extend((int(rk), int(pid)) for pid, rk in rows)
    ids = [pid for _rk, pid in sorted(found, reverse=True)[:limit]]
    if not ids:
        return []
    pubs = {
        p.id: p
        for p in (
            await session.execute(select(Publication).where(Publication.id.in_(ids)))
        ).scalars()
    }
    return [_row(pubs[i]) for i in ids if i in pubs]


async def open_solicitations(session: AsyncSession, now: datetime, limit: int = 6) -> list[ItemRow]:
    """Solicitations whose window is open now (the newest solicitations, filtered: an
    indexed walk, not a scan of the catalog)."""
    recent = await latest(session, kind="solicitation", limit=max(50, limit * 5))
    if not recent:
        return []
    rows: Any = await session.execute(
        select(Publication.id, Publication.solicitation_closes_at).where(
            Publication.id.in_([r.publication_id for r in recent])
        )
    )
    closes: dict[int, datetime | None] = {int(pid): at for pid, at in rows}
    open_now = []
    for row in recent:
        closing = closes.get(row.publication_id)
        if closing is None or closing >= now:
            open_now.append(row)
    return open_now[:limit]


@dataclass(frozen=True)
class Attachment:
    """A file attached to an item."""

    url: str
    filename: str
    size: int
    content_type: str


@dataclass
class ItemView:
    """Everything an item page shows."""

    publication: Publication
    state: str  # live | withdrawn
    attachments: list[Attachment] = field(default_factory=list)
    replaced_by: Publication | None = None
    explanation: Publication | None = None


async def item(session: AsyncSession, index_number: str) -> ItemView | None:
    """The item with this index number as the website shows it (None if never published)."""
    row = (
        await session.execute(
            select(Publication, WebsiteEntry.state)
            .join(WebsiteEntry, WebsiteEntry.publication_id == Publication.id)
            .where(WebsiteEntry.index_number == index_number)
        )
    ).first()
    if row is None:
        return None
    publication, state = row
    view = ItemView(publication=publication, state=state)
    media = (
        await session.execute(
            select(Media)
            .join(PublicationMedia, PublicationMedia.media_id == Media.id)
            .where(
                PublicationMedia.publication_id == publication.id,
                PublicationMedia.role == "attachment",
            )
            .order_by(PublicationMedia.position)
        )
    ).scalars()
    view.attachments = [
        Attachment(f"/media/{m.sha256}/{m.filename}", m.filename, m.size, m.content_type)
        for m in media
    ]
    if publication.replaced_by_id:
        view.replaced_by = await _live_by_id(session, publication.replaced_by_id)
    if publication.explanation_id:
        view.explanation = await _live_by_id(session, publication.explanation_id)
    return view


async def _live_by_id(session: AsyncSession, publication_id: int) -> Publication | None:
    found: Publication | None = (
        await session.execute(_live().where(Publication.id == publication_id))
    ).scalar_one_or_none()
    return found


async def index_number_of(session: AsyncSession, publication_id: int) -> tuple[str, str] | None:
    """(index number, state) of a publication's website entry."""
    row = (
        await session.execute(
            select(WebsiteEntry.index_number, WebsiteEntry.state).where(
                WebsiteEntry.publication_id == publication_id
            )
        )
    ).first()
    return (row[0], row[1]) if row else None


async def all_live(session: AsyncSession, limit: int | None = None) -> list[tuple[str, datetime]]:
    """Live items' index numbers and last updates, newest first (for the sitemap)."""
    stmt = (
        select(WebsiteEntry.index_number, WebsiteEntry.updated_at)
        .where(WebsiteEntry.state == "live")
        .order_by(WebsiteEntry.published_at.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = await session.execute(stmt)
    return [(r[0], r[1]) for r in rows]


async def day_items(session: AsyncSession, day: date) -> list[ItemRow]:
    """Every live item published on one (UTC) day, newest first."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    rows = (
        await session.execute(
            _live()
            .where(Publication.published_at >= start, Publication.published_at < end)
            .order_by(Publication.published_at.desc(), Publication.id.desc())
        )
    ).scalars()
    return [_row(p) for p in rows]


async def day_counts(
    session: AsyncSession, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[str, int]]:
    """Days with live items (YYYY-MM-DD, count), newest first, optionally within a range."""
    stmt = (
        select(Publication.published_at)
        .join(WebsiteEntry, WebsiteEntry.publication_id == Publication.id)
        .where(WebsiteEntry.state == "live")
    )
    if start is not None and end is not None:
        stmt = stmt.where(Publication.published_at >= start, Publication.published_at < end)
    counts: dict[str, int] = {}
    for published in (await session.execute(stmt)).scalars():
        if published is None:
            continue
        key = f"{published.astimezone(UTC):%Y-%m-%d}"
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), reverse=True)
