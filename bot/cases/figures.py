"""Monthly and yearly figures of public interaction, for the annual report and the
published monthly reply rate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.calendar import WorkCalendar, working_days_between
from bot.cases.models import CalendarDay, Case, CaseState
from publisher.db import Database


@dataclass(frozen=True)
class CaseFigures:
    """Figures of the cases received in [start, end)."""

    received: int
    rejected: int
    answered: int
    reply_rate: float | None  # answered / (received - rejected)
    median_working_days: float | None
    p90_working_days: float | None  # nearest-rank 90th percentile
    within_5_share: float | None  # share of answered cases replied within 5 working days
    average_rating: float | None
    rated: int


def median(values: list[int]) -> float | None:
    """The median (mean of the middle two for even counts)."""
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile_nearest_rank(values: list[int], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p% at or below it."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(s)))
    return float(s[rank - 1])


async def case_figures(
    db: Database | AsyncSession,
    start: datetime,
    end: datetime,
    office_id: int,
    calendar: WorkCalendar | None = None,
    zone: ZoneInfo | None = None,
    within: int = 5,
) -> CaseFigures:
    """Received, answered, reply rate, median/p90 reply time in working days, share within
    ``within`` working days and average satisfaction of the cases received in [start, end).

    ``db`` is the database or an open session; the calendar defaults to the editable one in
    the database, the zone to Asia/Shanghai."""
    if isinstance(db, Database):
        async with db.sessions() as session:
            return await case_figures(session, start, end, office_id, calendar, zone, within)
    session = db
    if calendar is None:
        rows_cal = (await session.execute(select(CalendarDay.day, CalendarDay.kind))).all()
        calendar = WorkCalendar.from_rows((r[0], r[1]) for r in rows_cal)
    zone = zone or ZoneInfo("Asia/Shanghai")
    rows = (
        await session.execute(
            select(Case.state, Case.received_at, Case.replied_at, Case.rating).where(
                Case.office_id == office_id, Case.received_at >= start, Case.received_at < end
            )
        )
    ).all()
    received = len(rows)
    rejected = sum(1 for r in rows if r.state == CaseState.REJECTED.value)
    days = [
        working_days_between(r.received_at, r.replied_at, calendar, zone)
        for r in rows
        if r.replied_at is not None
    ]
    ratings = [r.rating for r in rows if r.rating is not None]
    eligible = received - rejected
    return CaseFigures(
        received=received,
        rejected=rejected,
        answered=len(days),
        reply_rate=len(days) / eligible if eligible else None,
        median_working_days=median(days),
        p90_working_days=percentile_nearest_rank(days, 90),
        within_5_share=sum(1 for d in days if d <= within) / len(days) if days else None,
        average_rating=sum(ratings) / len(ratings) if ratings else None,
        rated=len(ratings),
    )
