"""Working days: the official holiday calendar (holidays and make-up working weekends)
and pure arithmetic on it, in the office's time zone.

The built-in arrangements are the State Council General Office notices:
- 2025: 国务院办公厅关于2025年部分节假日安排的通知 (国办发明电〔2024〕12号, 2024-11-12).
- 2026: 国务院办公厅关于2026年部分节假日安排的通知 (dated 2025-11-04, released by
  Xinhua the same day; text checked against politics.gmw.cn/2025-11/04/content_38391083.htm).
They seed the editable ``case_calendar_days`` table (migration cases_0001); staff change
it with ``govcast holidays import FILE`` when a new notice appears.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]

HOLIDAY = "holiday"
WORKDAY = "workday"  # a weekend day that is worked (调休上班)


def _span(first: str, last: str) -> list[date]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


# (date, kind, name). Weekend days inside a holiday span are listed too: harmless, and the
# table then reads like the notice.
OFFICIAL: tuple[tuple[date, str, str], ...] = tuple(
    [(d, HOLIDAY, "元旦") for d in _span("2025-01-01", "2025-01-01")]
    + [(d, HOLIDAY, "春节") for d in _span("2025-01-28", "2025-02-04")]
    + [(date(2025, 1, 26), WORKDAY, "春节调休上班"), (date(2025, 2, 8), WORKDAY, "春节调休上班")]
    + [(d, HOLIDAY, "清明节") for d in _span("2025-04-04", "2025-04-06")]
    + [(d, HOLIDAY, "劳动节") for d in _span("2025-05-01", "2025-05-05")]
    + [(date(2025, 4, 27), WORKDAY, "劳动节调休上班")]
    + [(d, HOLIDAY, "端午节") for d in _span("2025-05-31", "2025-06-02")]
    + [(d, HOLIDAY, "国庆节、中秋节") for d in _span("2025-10-01", "2025-10-08")]
    + [
        (date(2025, 9, 28), WORKDAY, "国庆节调休上班"),
        (date(2025, 10, 11), WORKDAY, "国庆节调休上班"),
    ]
    + [(d, HOLIDAY, "元旦") for d in _span("2026-01-01", "2026-01-03")]
    + [(date(2026, 1, 4), WORKDAY, "元旦调休上班")]
    + [(d, HOLIDAY, "春节") for d in _span("2026-02-15", "2026-02-23")]
    + [(date(2026, 2, 14), WORKDAY, "春节调休上班"), (date(2026, 2, 28), WORKDAY, "春节调休上班")]
    + [(d, HOLIDAY, "清明节") for d in _span("2026-04-04", "2026-04-06")]
    + [(d, HOLIDAY, "劳动节") for d in _span("2026-05-01", "2026-05-05")]
    + [(date(2026, 5, 9), WORKDAY, "劳动节调休上班")]
    + [(d, HOLIDAY, "端午节") for d in _span("2026-06-19", "2026-06-21")]
    + [(d, HOLIDAY, "中秋节") for d in _span("2026-09-25", "2026-09-27")]
    + [(d, HOLIDAY, "国庆节") for d in _span("2026-10-01", "2026-10-07")]
    + [
        (date(2026, 9, 20), WORKDAY, "国庆节调休上班"),
        (date(2026, 10, 10), WORKDAY, "国庆节调休上班"),
    ]
)


@dataclass(frozen=True)
class WorkCalendar:
    """Which dates are off and which weekend dates are worked."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[date, str]]) -> WorkCalendar:
        """Build from (date, kind) pairs; unknown kinds are ignored."""
        holidays, workdays = set(), set()
        for day, kind in rows:
            if kind == HOLIDAY:
                holidays.add(day)
            elif kind == WORKDAY:
                workdays.add(day)
        return cls(frozenset(holidays), frozenset(workdays))

    @classmethod
    def official(cls) -> WorkCalendar:
        """The built-in official arrangements (2025, 2026)."""
        return cls.from_rows((d, k) for d, k, _ in OFFICIAL)

    def is_working_day(self, day: date) -> bool:
        """Whether staff work on ``day``."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    """The office-local calendar date of an aware moment."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(zone).date()


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant after ``day`` in the office's zone, as UTC (an exclusive bound)."""
    nxt = day + timedelta(days=1)
    return datetime.combine(nxt, time(0), tzinfo=zone).astimezone(UTC)


def add_working_days_to_date(day: date, n: int, calendar: WorkCalendar) -> date:
    """The ``n``-th working day after ``day`` (``day`` itself never counts); n >= 0."""
    if n < 0:
        raise ValueError("n must not be negative")
    current = day
    counted = 0
    while counted < n:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            counted += 1
    return current


def add_working_days(start: datetime, n: int, calendar: WorkCalendar, zone: ZoneInfo) -> datetime:
    """The deadline ``n`` working days after ``start``: the end of that local day (UTC).

    The day of receipt does not count, as in "reply within 5 working days of receipt".
    """
    return end_of_day(add_working_days_to_date(local_date(start, zone), n, calendar), zone)


def working_days_between(a: datetime, b: datetime, calendar: WorkCalendar, zone: ZoneInfo) -> int:
    """Working days d with local(a) < d <= local(b); negative when b is before a."""
    da, db = local_date(a, zone), local_date(b, zone)
    if db < da:
        return -working_days_between(b, a, calendar, zone)
    count = 0
    current = da
    while current < db:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            count += 1
    return count


def add_months(moment: datetime, months: int, zone: ZoneInfo) -> datetime:
    """``moment`` plus calendar months in the office's zone (day clamped to month end)."""
    local = moment.astimezone(zone)
    month0 = local.month - 1 + months
    year, month = local.year + month0 // 12, month0 % 12 + 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return local.replace(year=year, month=month, day=min(local.day, last)).astimezone(UTC)


def parse_calendar_lines(text: str) -> list[tuple[date, str, str]]:
    """Parse ``YYYY-MM-DD,holiday|workday|normal[,name]`` lines; ``#`` starts a comment.

    ``normal`` removes an entry. Raises ValueError naming the line at fault.
    """
    rows: list[tuple[date, str, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or len(parts) > 3:
            raise ValueError(f"line {number}: expected DATE,KIND[,NAME]")
        try:
            day = date.fromisoformat(parts[0])
        except ValueError:
            raise ValueError(f"line {number}: bad date {parts[0][:20]!r}") from None
        kind = parts[1]
        if kind not in (HOLIDAY, WORKDAY, "normal"):
            raise ValueError(f"line {number}: kind must be holiday, workday or normal")
        name = parts[2] if len(parts) == 3 else ""
        if len(name) > 50:
            raise ValueError(f"line {number}: name longer than 50 characters")
        rows.append((day, kind, name))
    return rows
