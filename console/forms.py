"""Pure helpers: HTML form values to publication fields and back, diffs, month grids."""

from __future__ import annotations

import calendar
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from publisher.errors import ValidationError

# Form fields copied as text (the form name is the publication field's name).
TEXT_FIELDS = (
    "title",
    "title_en",
    "kind",
    "category",
    "issuing_body",
    "document_number",
    "written_on",
    "subject",
    "genre",
    "audience",
    "summary",
    "body",
    "body_en",
    "validity",
    "source",
    "column",
    "explanation_url",
    "solicitation_basis",
)
LOCAL_DATETIME_FIELDS = ("publish_at", "solicitation_opens_at", "solicitation_closes_at")
MAX_FIELD = 400_000


def local_to_iso(value: str, zone: ZoneInfo, field: str) -> str | None:
    """``2026-12-01T09:00`` typed in the office's zone as an ISO string with offset."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, "must be a date and time like 2026-12-01T09:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.isoformat()


def iso_to_local(value: datetime | None, zone: ZoneInfo) -> str:
    """A stored UTC time as the value of a ``datetime-local`` input in the office's zone."""
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def form_to_fields(form: Mapping[str, Any], channels: list[str], zone: ZoneInfo) -> dict[str, Any]:
    """The publication fields of a compose form (validated later by publication_from_fields)."""
    fields: dict[str, Any] = {}
    for name, value in form.items():
        # PostgreSQL refuses NUL in text and JSON: stop it here with a clear message.
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError(name, "contains a NUL character")
    for name in TEXT_FIELDS:
        value = form.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationError(name, "must be text")
        if len(value) > MAX_FIELD:
            raise ValidationError(name, "is too long")
        if value.strip():
            fields[name] = value.replace("\r\n", "\n")
    keywords = form.get("keywords", "")
    if not isinstance(keywords, str):
        raise ValidationError("keywords", "must be text")
    words = [w.strip() for w in keywords.replace("，", ",").replace("、", ",").split(",")]
    fields["keywords"] = [w for w in words if w]
    for name in LOCAL_DATETIME_FIELDS:
        value = form.get(name, "")
        if not isinstance(value, str):
            raise ValidationError(name, "must be text")
        iso = local_to_iso(value, zone, name)
        if iso is not None:
            fields[name] = iso
    fields["urgent"] = form.get("urgent") == "on"
    fields["push"] = form.get("push") == "on"
    fields["channels"] = list(channels)
    return fields


def publication_to_form(publication: Any, zone: ZoneInfo) -> dict[str, str]:
    """A stored publication as compose-form values (for editing and corrections)."""
    values: dict[str, str] = {}
    for name in TEXT_FIELDS:
        attr = {"body": "body_source", "column": "column_key"}.get(name, name)
        value = getattr(publication, attr, None)
        if name == "body" and not value:
            value = getattr(publication, "body_html", "")
        if isinstance(value, date):
            value = value.isoformat()
        values[name] = "" if value is None else str(value)
    values["keywords"] = ", ".join(publication.keywords or [])
    for name in LOCAL_DATETIME_FIELDS:
        values[name] = iso_to_local(getattr(publication, name, None), zone)
    values["urgent"] = "on" if publication.urgent else ""
    values["push"] = "on" if publication.push else ""
    return values


@dataclass(frozen=True)
class DiffLine:
    """One line of a field's diff: ``kind`` is same, add or del."""

    kind: str
    text: str


@dataclass(frozen=True)
class FieldDiff:
    """The changes of one field between two versions."""

    field: str
    lines: tuple[DiffLine, ...]


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [", ".join(str(v) for v in value)]
    text = str(value)
    # Break HTML after block ends so a one-word change shows as one line, not the body.
    for tag in ("</p>", "</li>", "</h2>", "</h3>", "</h4>", "</tr>", "<br>", "<br/>"):
        text = text.replace(tag, tag + "\n")
    return text.splitlines()


def diff_versions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldDiff]:
    """Field-by-field line diff of two version snapshots (text only; escaping is the
    template's job)."""
    result = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        lines = []
        for line in difflib.ndiff(_lines(a), _lines(b)):
            code, text = line[:2], line[2:]
            if code == "? ":
                continue
            kind = {"- ": "del", "+ ": "add"}.get(code, "same")
            lines.append(DiffLine(kind, text))
        result.append(FieldDiff(name, tuple(lines)))
    return result


@dataclass(frozen=True)
class Day:
    """One cell of the month grid."""

    day: date
    in_month: bool
    items: tuple[Any, ...]


def month_grid(year: int, month: int, items: list[tuple[date, Any]]) -> list[list[Day]]:
    """Weeks (Monday first) of the month, each day with the items that fall on it."""
    by_day: dict[date, list[Any]] = {}
    for day, item in items:
        by_day.setdefault(day, []).append(item)
    weeks = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append([Day(d, d.month == month, tuple(by_day.get(d, ()))) for d in week])
    return weeks


def parse_month(value: str, today: date) -> tuple[int, int]:
    """``YYYY-MM`` (or today's month when empty or malformed)."""
    try:
        year, month = (int(part) for part in value.split("-", 1))
        if 1900 <= year <= 2999 and 1 <= month <= 12:
            return year, month
    except ValueError:
        pass
    return today.year, today.month
