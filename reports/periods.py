"""Reporting periods (month, quarter, year) and their bounds in the office's zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from publisher.errors import ValidationError

_YEAR = re.compile(r"^(\d{4})$", re.ASCII)
_QUARTER = re.compile(r"^(\d{4})-?[Qq]([1-4])$", re.ASCII)
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$", re.ASCII)


@dataclass(frozen=True)
class Period:
    """Local dates ``first`` (inclusive) to ``after`` (exclusive)."""

    label: str
    first: date
    after: date

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The period as UTC instants [start, end)."""
        start = datetime.combine(self.first, time(0), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(self.after, time(0), tzinfo=zone).astimezone(UTC)
        return start, end

    def months(self) -> list[str]:
        """Every month of the period as YYYY-MM."""
        out = []
        y, m = self.first.year, self.first.month
        while date(y, m, 1) < self.after:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def _month_after(y: int, m: int) -> date:
    return date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)


def parse_period(text: str) -> Period:
    """``2025``, ``2025-Q1`` or ``2025-03``; anything else is a ValidationError."""
    text = (text or "").strip()
    if m := _YEAR.match(text):
        y = _year(m.group(1))
        return Period(f"{y}", date(y, 1, 1), date(y + 1, 1, 1))
    if m := _QUARTER.match(text):
        y, q = _year(m.group(1)), int(m.group(2))
        first = date(y, 3 * q - 2, 1)
        return Period(f"{y}-Q{q}", first, _month_after(y, 3 * q))
    if m := _MONTH.match(text):
        y, mo = _year(m.group(1)), int(m.group(2))
        if not 1 <= mo <= 12:
            raise ValidationError("period", "month must be 1-12")
        return Period(f"{y}-{mo:02d}", date(y, mo, 1), _month_after(y, mo))
    raise ValidationError("period", "use YYYY, YYYY-Qn or YYYY-MM (e.g. 2025, 2025-Q1, 2025-03)")


def _year(text: str) -> int:
    year = int(text)
    if not 2000 <= year <= 2100:
        raise ValidationError("period", "year must be between 2000 and 2100")
    return year
