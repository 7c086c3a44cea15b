"""The interaction figures against a seeded set whose numbers the test works out itself."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update

from bot.cases import figures, service
from bot.cases.calendar import WorkCalendar
from bot.cases.models import Case
from publisher.db import Database
from tests.bot.cases.helpers import new_case

ZONE = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar.official()


def independent_working_days(a: date, b: date) -> int:
    """Count by walking day by day with the notice's dates spelled out again."""
    off = {date(2026, 10, d) for d in range(1, 8)} | {date(2026, 9, d) for d in (25, 26, 27)}
    on = {date(2026, 9, 20), date(2026, 10, 10)}
    n, d = 0, a
    while d < b:
        d += timedelta(days=1)
        if d in on or (d.weekday() < 5 and d not in off):
            n += 1
    return n


async def test_case_figures(db: Database) -> None:
    rng = random.Random(7)
    start = datetime(2026, 9, 1, tzinfo=ZONE)
    expected_days: list[int] = []
    ratings: list[int] = []
    received = rejected = 0
    for i in range(30):
        at = start + timedelta(days=rng.randrange(0, 40), hours=rng.randrange(8, 18))
        case_id, _, _ = await new_case(db, at, calendar=CAL)
        received += 1
        values: dict[str, object] = {}
        if i % 7 == 0:
            values = {"state": "rejected"}
            rejected += 1
        elif i % 5 != 0:
            replied = at + timedelta(days=rng.randrange(0, 12), hours=1)
            values = {"state": "replied", "replied_at": replied}
            expected_days.append(
                independent_working_days(at.date(), replied.astimezone(ZONE).date())
            )
            if i % 2:
                values.update(rating=1 + i % 5, state="rated")
                ratings.append(1 + i % 5)
        if values:
            async with db.transaction() as session:
                await session.execute(update(Case).where(Case.id == case_id).values(**values))
    # One case outside the period and one of another office's period boundary.
    await new_case(db, datetime(2026, 12, 1, tzinfo=ZONE), calendar=CAL)
    async with db.sessions() as session:
        got = await figures.case_figures(
            session, start, datetime(2026, 11, 1, tzinfo=ZONE), 1, CAL, ZONE
        )
    s = sorted(expected_days)
    assert got.received == received and got.rejected == rejected
    assert got.answered == len(expected_days)
    assert got.reply_rate == len(expected_days) / (received - rejected)
    assert got.median_working_days == statistics.median(expected_days)
    assert got.p90_working_days == s[math.ceil(0.9 * len(s)) - 1]
    assert got.within_5_share == sum(1 for d in expected_days if d <= 5) / len(expected_days)
    assert got.average_rating == sum(ratings) / len(ratings)
    async with db.sessions() as session:
        empty = await figures.case_figures(
            session,
            datetime(2030, 1, 1, tzinfo=UTC),
            datetime(2030, 2, 1, tzinfo=UTC),
            1,
            CAL,
            ZONE,
        )
        assert (
            empty.received == 0 and empty.reply_rate is None and empty.median_working_days is None
        )
    assert service  # the service module built the cases


async def test_case_figures_from_the_database_handle(db: Database) -> None:
    await new_case(db, datetime(2026, 9, 18, 10, tzinfo=ZONE), calendar=CAL)
    got = await figures.case_figures(
        db, datetime(2026, 9, 1, tzinfo=ZONE), datetime(2026, 10, 1, tzinfo=ZONE), 1
    )
    assert got.received == 1 and got.answered == 0 and got.reply_rate == 0.0


def test_percentiles_by_hand() -> None:
    assert figures.median([3, 1, 2]) == 2.0 and figures.median([1, 2, 3, 4]) == 2.5
    assert figures.percentile_nearest_rank(list(range(1, 11)), 90) == 9.0
    assert figures.percentile_nearest_rank([7], 90) == 7.0
    assert figures.median([]) is None and figures.percentile_nearest_rank([], 90) is None
