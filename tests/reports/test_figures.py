"""Figures against a seeded data set, expectations computed independently here."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from publisher.db import Database
from publisher.errors import NotFound, ValidationError
from reports.figures import compute_figures, percentile
from reports.periods import parse_period
from tests.reports import seed

PERIODS = {
    "2025": (datetime(2024, 12, 31, 16, tzinfo=UTC), datetime(2025, 12, 31, 16, tzinfo=UTC)),
    "2025-Q2": (datetime(2025, 3, 31, 16, tzinfo=UTC), datetime(2025, 6, 30, 16, tzinfo=UTC)),
    "2025-07": (datetime(2025, 6, 30, 16, tzinfo=UTC), datetime(2025, 7, 31, 16, tzinfo=UTC)),
}


def live(p: seed.PubRec) -> bool:
    return (
        p.state in ("queued", "published")
        and p.published_at is not None
        and p.published_at <= seed.NOW
    )


@pytest.mark.parametrize("label", list(PERIODS))
async def test_figures_match_independent_computation(db: Database, label: str) -> None:
    data = seed.build()
    await seed.insert(db, data)
    start, end = PERIODS[label]
    figures = await compute_figures(
        db,
        parse_period(label),
        zone=seed.ZONE,
        accounts=["website", "wechat:main", "weibo:main", "wechat:silent"],
        now=seed.NOW,
    )
    inside = [p for p in data.pubs if live(p) and start <= p.published_at < end]  # type: ignore[operator]
    assert figures.published == len(inside)
    assert {k: v for k, v in figures.by_category.items() if v} == dict(
        Counter(p.category for p in inside)
    )
    assert {k: v for k, v in figures.by_kind.items() if v} == dict(Counter(p.kind for p in inside))
    assert figures.by_issuing_body == dict(Counter(p.body for p in inside))
    assert figures.press_conferences == sum(1 for p in inside if p.kind == "press_conference")
    assert sum(sum(m.values()) for m in figures.by_month.values()) == len(inside)

    normative = [p for p in data.pubs if live(p) and p.kind == "disclosure" and p.document_number]
    assert figures.normative_issued == sum(1 for p in normative if start <= p.published_at < end)  # type: ignore[operator]
    assert figures.normative_repealed == sum(
        1
        for p in normative
        if p.validity in ("repealed", "expired") and start <= seed.repeal_date(p) < end
    )
    assert figures.normative_in_force == sum(
        1
        for p in normative
        if p.validity in ("in_force", "amended") and p.published_at < end  # type: ignore[operator]
    )

    delays = {
        p.id: seed.working_days(p.created_at, p.published_at) for p in inside if not p.imported
    }  # type: ignore[arg-type]
    expected_avg = round(sum(delays.values()) / len(delays), 2) if delays else None
    assert figures.average_disclosure_days == expected_avg
    assert sorted(i.publication_id for i in figures.late_items) == sorted(
        k for k, d in delays.items() if d > 20
    )
    assert all(i.working_days > 20 for i in figures.late_items)

    done = [(c, a, t) for p in data.pubs for c, a, t in p.targets if start <= t < end]
    expected_channels = Counter("website" if c == "website" else f"{c}:{a}" for c, a, _ in done)
    assert figures.by_channel == dict(sorted(expected_channels.items()))

    as_of = min(seed.NOW, end)
    for target in ("wechat:main", "weibo:main", "wechat:silent"):
        channel, account = target.split(":")
        times = [t for p in data.pubs for c, a, t in p.targets if (c, a) == (channel, account)]
        last = max((t for t in times if t <= as_of), default=None)
        activity = next(a for a in figures.accounts if a.target == target)
        assert activity.posts == sum(1 for t in times if start <= t < end)
        assert activity.last_post_at == last
        assert activity.silent == (last is None or as_of - last > timedelta(days=14))
    assert "website" not in [a.target for a in figures.accounts]

    assert figures.hits == sum(p.hits for p in inside)
    assert [t[2] for t in figures.top_hits] == sorted((p.hits for p in inside), reverse=True)[:10]

    cases = [c for c in data.cases if start <= c.received_at < end]
    days = sorted(seed.working_days(c.received_at, c.replied_at) for c in cases if c.replied_at)
    rejected = sum(1 for c in cases if c.state == "rejected")
    assert figures.cases is not None
    assert figures.cases.received == len(cases) and figures.cases.rejected == rejected
    assert figures.cases.answered == len(days)
    assert figures.cases.reply_rate == (
        len(days) / (len(cases) - rejected) if len(cases) > rejected else None
    )
    if days:
        assert figures.cases.median_reply_days == statistics.median(days)
        assert figures.cases.p90_reply_days == days[math.ceil(0.9 * len(days)) - 1]
        assert figures.cases.within_5_share == sum(1 for d in days if d <= 5) / len(days)
    ratings = [c.rating for c in cases if c.rating is not None]
    assert figures.cases.satisfaction == (sum(ratings) / len(ratings) if ratings else None)


async def test_one_account_and_unknown_office(db: Database) -> None:
    data = seed.build()
    await seed.insert(db, data)
    start, end = PERIODS["2025"]
    figures = await compute_figures(
        db, parse_period("2025"), zone=seed.ZONE, account="weibo:main", now=seed.NOW
    )
    expected = [
        p
        for p in data.pubs
        if live(p)
        and start <= p.published_at < end  # type: ignore[operator]
        and any(c == "weibo" for c, _, _ in p.targets)
    ]
    assert figures.published == len(expected)
    assert list(figures.by_channel) == ["weibo:main"]
    assert [a.target for a in figures.accounts] == ["weibo:main"]
    with pytest.raises(NotFound):
        await compute_figures(
            db, parse_period("2025"), zone=seed.ZONE, office_key="nope", now=seed.NOW
        )


async def test_empty_database(db: Database) -> None:
    figures = await compute_figures(db, parse_period("2025-03"), zone=seed.ZONE, now=seed.NOW)
    assert figures.published == 0 and figures.average_disclosure_days is None
    assert figures.cases is not None and figures.cases.reply_rate is None
    assert figures.by_month == {"2025-03": {c: 0 for c in seed.CATEGORIES}}


@pytest.mark.parametrize(
    "text,label,first,after",
    [
        ("2025", "2025", "2025-01-01", "2026-01-01"),
        ("2025-q4", "2025-Q4", "2025-10-01", "2026-01-01"),
        ("2025Q1", "2025-Q1", "2025-01-01", "2025-04-01"),
        ("2025-12", "2025-12", "2025-12-01", "2026-01-01"),
        ("2025-2", "2025-02", "2025-02-01", "2025-03-01"),
    ],
)
def test_periods(text: str, label: str, first: str, after: str) -> None:
    period = parse_period(text)
    assert (period.label, period.first.isoformat(), period.after.isoformat()) == (
        label,
        first,
        after,
    )


@pytest.mark.parametrize(
    "text",
    ["", "25", "2025-13", "2025-Q5", "1999", "2025-00", "２０２５", "2025; DROP TABLE", "9" * 5000],
)
def test_bad_periods(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_period(text)


@pytest.mark.parametrize(
    "values,q,expected",
    [
        ([], 90, None),
        ([3], 90, 3.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9.0),
        ([5, 1, 2], 50, 2.0),
    ],
)
def test_percentile(values: list[int], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


async def test_repeal_is_dated_by_the_correction_not_the_last_edit(db: Database) -> None:
    data = seed.build()
    await seed.insert(db, data)
    repealed, in_force = seed.fixed_normative_documents()
    assert [p.title for p in data.pubs[-2:]] == [repealed.title, in_force.title]

    async def figures(label: str) -> tuple[int, int, int]:
        f = await compute_figures(db, parse_period(label), zone=seed.ZONE, now=seed.NOW)
        return f.normative_issued, f.normative_repealed, f.normative_in_force

    others = [p for p in data.pubs[:-2] if live(p) and p.kind == "disclosure" and p.document_number]

    def expected(label: str) -> tuple[int, int, int]:
        start, end = PERIODS.get(label) or LABELS[label]
        return (
            sum(1 for p in others if start <= p.published_at < end)  # type: ignore[operator]
            + sum(1 for p in (repealed, in_force) if start <= p.published_at < end),  # type: ignore[operator]
            sum(
                1
                for p in others
                if p.validity in ("repealed", "expired") and start <= p.updated_at < end
            )
            + (1 if start <= seed.REPEALED_AT < end else 0),
            sum(
                1
                for p in others
                if p.validity in ("in_force", "amended") and p.published_at < end  # type: ignore[operator]
            )
            + (1 if in_force.published_at < end else 0),  # type: ignore[operator]
        )

    for label in ("2025-07", "2025-12", "2025-Q1", "2025-03"):
        assert await figures(label) == expected(label), label
    # The repealed document counts in July (its correction), not December (its last edit).
    assert (await figures("2025-07"))[1] >= 1
    assert (await figures("2025-12"))[1] == expected("2025-12")[1]


LABELS = {
    "2025-12": (datetime(2025, 11, 30, 16, tzinfo=UTC), datetime(2025, 12, 31, 16, tzinfo=UTC)),
    "2025-Q1": (datetime(2024, 12, 31, 16, tzinfo=UTC), datetime(2025, 3, 31, 16, tzinfo=UTC)),
    "2025-03": (datetime(2025, 2, 28, 16, tzinfo=UTC), datetime(2025, 3, 31, 16, tzinfo=UTC)),
}


@pytest.mark.parametrize("label", list(PERIODS))
async def test_comment_figures_per_account(db: Database, label: str) -> None:
    data = seed.build()
    await seed.insert(db, data)
    start, end = PERIODS[label]
    expected: dict[str, list[int]] = {}
    for c in data.comments:
        if start <= c.written_at < end:
            row = expected.setdefault(f"{c.platform}:{c.account}", [0, 0, 0])
            row[0] += 1
            row[1] += c.hidden
            row[2] += c.replied and not c.hidden
    assert sum(r[0] for r in expected.values()) > 0  # the seed has comments in the period
    figures = await compute_figures(db, parse_period(label), zone=seed.ZONE, now=seed.NOW)
    got = {c.target: [c.received, c.hidden, c.answered] for c in figures.comments}
    assert got == expected
    for c in figures.comments:
        received, hidden, answered = expected[c.target]
        assert c.answer_rate == answered / (received - hidden)
    one = await compute_figures(
        db, parse_period(label), zone=seed.ZONE, now=seed.NOW, account="weibo:main"
    )
    assert [c.target for c in one.comments] == (["weibo:main"] if "weibo:main" in expected else [])
    by_office = await compute_figures(
        db, parse_period(label), zone=seed.ZONE, now=seed.NOW, office_key="main"
    )
    assert {c.target: [c.received, c.hidden, c.answered] for c in by_office.comments} == expected
