"""Working-day arithmetic across weekends, official holidays and make-up working days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.cases.calendar import (
    OFFICIAL,
    WorkCalendar,
    add_months,
    add_working_days,
    add_working_days_to_date,
    parse_calendar_lines,
    working_days_between,
)

ZONE = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar.official()


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 27), True),  # Friday
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 1, 1), False),  # New Year
        (date(2026, 1, 4), True),  # Sunday worked for New Year
        (date(2026, 2, 14), True),  # Saturday worked before Spring Festival
        (date(2026, 2, 16), False),  # Spring Festival (Monday)
        (date(2026, 2, 23), False),  # last day of Spring Festival (Monday)
        (date(2026, 2, 28), True),  # Saturday worked after Spring Festival
        (date(2026, 5, 9), True),  # Saturday worked for Labour Day
        (date(2026, 9, 20), True),  # Sunday worked for National Day
        (date(2026, 10, 8), True),  # Thursday after National Day
        (date(2026, 10, 10), True),  # Saturday worked for National Day
        (date(2025, 10, 8), False),  # 2025 National Day + Mid-Autumn, 8 days
        (date(2025, 10, 11), True),  # 2025 make-up Saturday
        (date(2025, 1, 26), True),  # 2025 make-up Sunday
    ],
)
def test_working_days_follow_the_official_notices(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [
        (date(2026, 11, 23), 5, date(2026, 11, 30)),  # Monday + 5 -> next Monday
        (date(2026, 11, 27), 5, date(2026, 12, 4)),  # Friday + 5 -> next Friday
        (date(2026, 11, 28), 1, date(2026, 11, 30)),  # Saturday + 1 -> Monday
        (date(2026, 2, 12), 5, date(2026, 2, 26)),  # across Spring Festival (14th worked)
        (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Friday + 1 -> the worked Saturday
        (date(2026, 9, 30), 1, date(2026, 10, 8)),  # National Day week
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # ... then the worked Saturday
        (date(2026, 4, 30), 2, date(2026, 5, 7)),  # Labour Day
        (date(2026, 12, 31), 1, date(2027, 1, 1)),  # 2027 not seeded: Friday counts
        (date(2026, 11, 23), 0, date(2026, 11, 23)),
    ],
)
def test_add_working_days_table(start: date, n: int, due: date) -> None:
    assert add_working_days_to_date(start, n, CAL) == due


def test_deadline_is_the_end_of_the_local_day_in_utc() -> None:
    # 23:30 on Friday 2026-11-27 in Shanghai is 15:30 UTC the same day.
    received = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    deadline = add_working_days(received, 5, CAL, ZONE)
    # Due Friday 2026-12-04: the deadline is Shanghai midnight = 16:00 UTC on the 4th.
    assert deadline == datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    # Thursday 23:30 in Shanghai vs. 00:30 on Friday (both Thursday in UTC): a day apart.
    thursday = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
    friday = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    assert add_working_days(thursday, 5, CAL, ZONE) == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    assert add_working_days(friday, 5, CAL, ZONE) == datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("a", "b", "n"),
    [
        (date(2026, 11, 27), date(2026, 11, 30), 1),  # Friday -> Monday
        (date(2026, 11, 27), date(2026, 11, 27), 0),
        (date(2026, 2, 13), date(2026, 2, 24), 2),  # Sat 14th worked + Tue 24th
        (date(2026, 9, 30), date(2026, 10, 10), 3),
        (date(2026, 11, 30), date(2026, 11, 27), -1),
    ],
)
def test_working_days_between_table(a: date, b: date, n: int) -> None:
    at = datetime(a.year, a.month, a.day, 10, tzinfo=ZONE)
    bt = datetime(b.year, b.month, b.day, 10, tzinfo=ZONE)
    assert working_days_between(at, bt, CAL, ZONE) == n


def test_time_zone_decides_the_day() -> None:
    # 17:00 UTC on Friday is Saturday 01:00 in Shanghai: replying on Monday = 1 day,
    # whereas in UTC it would count the Friday as the day of receipt too.
    a = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    b = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert working_days_between(a, b, CAL, ZONE) == 1
    assert working_days_between(a, b, CAL, ZoneInfo("UTC")) == 1
    c = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Friday 23:00 in Shanghai
    assert working_days_between(c, b, CAL, ZONE) == 1


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        add_working_days(datetime(2026, 1, 1), 1, CAL, ZONE)
    with pytest.raises(ValueError):
        add_working_days_to_date(date(2026, 1, 1), -1, CAL)


def test_add_months_clamps_to_month_end() -> None:
    start = datetime(2026, 11, 30, 2, tzinfo=UTC)
    assert add_months(start, 3, ZONE).astimezone(ZONE).date() == date(2027, 2, 28)


def test_official_rows_have_no_conflicting_duplicates() -> None:
    seen: dict[date, str] = {}
    for day, kind, _ in OFFICIAL:
        assert seen.setdefault(day, kind) == kind
    workdays = [d for d, k, _ in OFFICIAL if k == "workday"]
    assert all(d.weekday() >= 5 for d in workdays)


def test_parse_calendar_lines() -> None:
    rows = parse_calendar_lines("# 2027\n2027-01-01,holiday,元旦\n2027-02-06, workday\n")
    assert rows == [(date(2027, 1, 1), "holiday", "元旦"), (date(2027, 2, 6), "workday", "")]


@pytest.mark.parametrize(
    "bad",
    [
        "2027-13-01,holiday",
        "2027-01-01",
        "2027-01-01,party",
        "x" * 5000 + ",holiday",
        "2027-01-01,holiday," + "名" * 51,
        "2027-01-01,holiday,a,b",
    ],
)
def test_parse_calendar_lines_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_calendar_lines(bad)
