"""The site's columns, their expected update intervals, and the stale-column watch.

Inspectors fail a site with 5+ stale or empty columns (news not updated in 2 weeks,
notices/policy not in 6 months). :func:`column_status` lists every column with its last
update so the console and reports can warn staff first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from channels.models import WebsiteEntry
from publisher.db import Database
from publisher.models import Publication
from publisher.orm import utcnow
from website.models import SearchDoc


@dataclass(frozen=True)
class Column:
    """One column of the site: which live items belong to it and how fresh it must be."""

    key: str
    interval: timedelta
    kinds: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    column_keys: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()

    def where(self, stmt: Any) -> Any:
        """Restrict a query over Publication to this column's items."""
        if self.kinds:
            stmt = stmt.where(Publication.kind.in_(self.kinds))
        if self.categories:
            stmt = stmt.where(Publication.category.in_(self.categories))
        if self.column_keys:
            stmt = stmt.where(Publication.column_key.in_(self.column_keys))
        if self.genres:
            stmt = stmt.where(Publication.genre.in_(self.genres))
        return stmt

    def doc_queries(self, stmt: Any) -> list[Any]:
        """This column's filters over the live-item table, one statement per genre: each
        stays a single (filter, rank_key) index walk under ORDER BY rank_key LIMIT n."""
        if self.kinds:
            stmt = stmt.where(SearchDoc.kind.in_(self.kinds))
        if self.categories:
            stmt = stmt.where(SearchDoc.category.in_(self.categories))
        if self.column_keys:
            stmt = stmt.where(SearchDoc.column_key.in_(self.column_keys))
        if self.key == "statutory":
            stmt = stmt.where(
                SearchDoc.column_key.is_(None)
                | SearchDoc.column_key.not_in(("guide", "rules", "annual_report"))
            )
        if not self.genres:
            return [stmt]
        return [stmt.where(SearchDoc.genre == genre) for genre in self.genres]


DAY = timedelta(days=1)
COLUMNS: tuple[Column, ...] = (
    Column("news", 14 * DAY, kinds=("press_release",)),
    Column("press_conference", 90 * DAY, kinds=("press_conference",)),
    Column("notices", 182 * DAY, genres=("通知", "公告", "通告")),
    Column("policy", 182 * DAY, kinds=("disclosure",), categories=("decision",)),
    Column("solicitation", 182 * DAY, kinds=("solicitation",)),
    Column("guide", 366 * DAY, column_keys=("guide",)),
    Column("rules", 366 * DAY, column_keys=("rules",)),
    Column("annual_report", 366 * DAY, column_keys=("annual_report",)),
    Column("statutory", 182 * DAY, kinds=("disclosure",)),
)
COLUMNS_BY_KEY = {c.key: c for c in COLUMNS}


@dataclass(frozen=True)
class ColumnStatus:
    """A column's freshness at one moment."""

    key: str
    interval_days: int
    last_published_at: datetime | None
    items: int
    overdue: bool
    empty: bool


def assess(column: Column, last: datetime | None, items: int, now: datetime) -> ColumnStatus:
    """Pure: whether a column with this last update is overdue or empty at ``now``."""
    return ColumnStatus(
        key=column.key,
        interval_days=column.interval.days,
        last_published_at=last,
        items=items,
        overdue=last is None or now - last > column.interval,
        empty=items == 0,
    )


async def column_status(db: Database, now: datetime | None = None) -> list[ColumnStatus]:
    """Every column's status (one small indexed query per column)."""
    now = now or utcnow()
    result = []
    async with db.sessions() as session:
        for column in COLUMNS:
            stmt = column.where(
                select(func.max(WebsiteEntry.published_at), func.count())
                .select_from(WebsiteEntry)
                .join(Publication, Publication.id == WebsiteEntry.publication_id)
                .where(WebsiteEntry.state == "live")
            )
            row: Any = (await session.execute(stmt)).one()
            last, items = row
            result.append(assess(column, last, int(items or 0), now))
    return result


async def stale_columns(db: Database, now: datetime | None = None) -> list[ColumnStatus]:
    """Only the columns an inspector would fault: overdue or empty."""
    return [s for s in await column_status(db, now) if s.overdue or s.empty]
