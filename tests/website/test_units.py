"""Pure parts and small services of the website: alt-text check, columns, hits, i18n."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from channels.website import images_without_alt
from publisher.db import Database
from tests.website.helpers import add_item
from website import columns
from website.hits import HitCounter
from website.i18n import MESSAGES, translate
from website.models import HitCount


@pytest.mark.parametrize(
    ("html", "missing"),
    [
        ('<p><img src="a.png" alt="示意图"></p>', []),
        ('<img src="a.png">', ["a.png"]),
        ('<img alt="" src="b.png">', ["b.png"]),
        ("<img src='c.png' alt='  '>", ["c.png"]),
        ("<IMG SRC=d.png ALT=图>", []),
        ("<p>没有图片</p>", []),
    ],
)
def test_images_without_alt(html: str, missing: list[str]) -> None:
    assert images_without_alt(html) == missing


def test_every_message_has_both_languages() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
        assert zh != en or key in ("lang_switch",), key
    assert translate("en", "page_of", page=1, pages=2, total=30) == "Page 1 of 2 (30 items)"
    assert translate("zh", "no-such-key") == "no-such-key"


def test_assess_column_freshness() -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    news = columns.COLUMNS_BY_KEY["news"]
    assert not columns.assess(news, now - timedelta(days=13), 5, now).overdue
    stale = columns.assess(news, now - timedelta(days=15), 5, now)
    assert stale.overdue and not stale.empty and stale.interval_days == 14
    empty = columns.assess(columns.COLUMNS_BY_KEY["policy"], None, 0, now)
    assert empty.overdue and empty.empty


async def test_stale_columns_lists_overdue_and_empty(db: Database) -> None:
    now = datetime.now(UTC)
    await add_item(
        db, 1, title="新闻一", kind="press_release", published_at=now - timedelta(days=20)
    )
    await add_item(db, 2, title="政策一", category="decision", published_at=now - timedelta(days=3))
    await add_item(
        db,
        3,
        title="撤回的新闻",
        kind="press_release",
        state="withdrawn",
        published_at=now - timedelta(days=1),
    )
    status = {s.key: s for s in await columns.column_status(db, now)}
    assert status["news"].overdue and status["news"].items == 1  # withdrawn item not counted
    assert not status["policy"].overdue
    stale = {s.key for s in await columns.stale_columns(db, now)}
    assert "news" in stale and "policy" not in stale and "annual_report" in stale


async def test_hits_are_batched_and_anonymous(db: Database) -> None:
    item = await add_item(db, 1, title="计数")
    counter = HitCounter(max_pending=2)
    for _ in range(5):
        counter.hit(item.id)
    counter.hit(10**9)
    counter.hit(10**9 + 1)  # beyond max_pending distinct items: dropped, memory bounded
    assert len(counter.pending) == 2
    async with db.sessions() as session:
        assert (await session.execute(select(HitCount))).first() is None  # no write per view
    counter.pending.pop(10**9)
    assert await counter.flush(db) == 1
    counter.hit(item.id)
    assert await counter.total(db, item.id) == 6
    assert await counter.flush(db) == 1
    assert await counter.flush(db) == 0
    async with db.sessions() as session:
        row = (await session.execute(select(HitCount))).scalar_one()
    assert row.hits == 6 and set(HitCount.__table__.columns.keys()) == {
        "publication_id",
        "hits",
        "updated_at",
    }
