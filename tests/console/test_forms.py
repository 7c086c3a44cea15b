"""Pure helpers of the console: form parsing, diffs and the month grid (tables)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from console.forms import (
    diff_versions,
    form_to_fields,
    iso_to_local,
    local_to_iso,
    month_grid,
    parse_month,
)
from publisher.errors import ValidationError

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-01T09:00", "2026-12-01T09:00:00+08:00"),
        ("2026-12-01T09:00+00:00", "2026-12-01T09:00:00+00:00"),
        ("", None),
        ("   ", None),
    ],
)
def test_local_to_iso(value: str, expected: str | None) -> None:
    assert local_to_iso(value, SHANGHAI, "publish_at") == expected


@pytest.mark.parametrize("value", ["tomorrow", "2026-13-01T09:00", "9" * 40, "2026-12-01 25:00"])
def test_local_to_iso_refuses_garbage(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        local_to_iso(value, SHANGHAI, "publish_at")
    assert info.value.field == "publish_at"


def test_iso_to_local_round_trip() -> None:
    moment = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert iso_to_local(moment, SHANGHAI) == "2026-12-01T09:00"
    assert iso_to_local(None, SHANGHAI) == ""


@pytest.mark.parametrize(
    ("form", "key", "expected"),
    [
        ({"keywords": "医保，缴费、社保, "}, "keywords", ["医保", "缴费", "社保"]),
        ({"urgent": "on"}, "urgent", True),
        ({}, "urgent", False),
        ({"title": "  "}, "title", None),
        ({"body": "a\r\nb"}, "body", "a\nb"),
    ],
)
def test_form_to_fields(form: dict[str, str], key: str, expected: object) -> None:
    fields = form_to_fields(form, ["website"], SHANGHAI)
    assert fields.get(key) == expected
    assert fields["channels"] == ["website"]


def test_form_to_fields_refuses_oversized_and_non_text() -> None:
    with pytest.raises(ValidationError):
        form_to_fields({"body": "x" * 400_001}, [], SHANGHAI)
    with pytest.raises(ValidationError):
        form_to_fields({"title": object()}, [], SHANGHAI)  # type: ignore[dict-item]


def test_diff_marks_changed_lines_only() -> None:
    old = {"title": "通知", "body_html": "<p>十月</p><p>请缴费</p>", "urgent": False}
    new = {"title": "通知", "body_html": "<p>九月</p><p>请缴费</p>", "urgent": True}
    diffs = {d.field: d for d in diff_versions(old, new)}
    assert set(diffs) == {"body_html", "urgent"}
    kinds = [(line.kind, line.text) for line in diffs["body_html"].lines]
    assert ("del", "<p>十月</p>") in kinds and ("add", "<p>九月</p>") in kinds
    assert ("same", "<p>请缴费</p>") in kinds


def test_month_grid_and_parse_month() -> None:
    weeks = month_grid(2026, 12, [(date(2026, 12, 1), "a"), (date(2026, 12, 1), "b")])
    assert weeks[0][0].day == date(2026, 11, 30) and not weeks[0][0].in_month
    assert weeks[0][1].items == ("a", "b")
    today = date(2026, 11, 28)
    assert parse_month("2026-02", today) == (2026, 2)
    for bad in ("", "2026-13", "x-y", "99999-01", "2026"):
        assert parse_month(bad, today) == (2026, 11)
