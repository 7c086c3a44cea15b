"""Site search on real SQLite and real PostgreSQL with realistic Chinese catalog data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from publisher.db import Database
from tests.website.helpers import ORG, add_item
from website import search as s

CATALOG = [
    (
        "关于2026年城乡居民医保集中缴费的通知",
        "城乡居民医保2026年度集中缴费期为10月至12月，请按时缴费。",
        "service",
        "六医保〔2026〕3号",
        datetime(2026, 10, 20, tzinfo=UTC),
    ),
    (
        "六安市社保卡办理指南",
        "社会保障卡（社保卡）可在各区县社保经办窗口办理，携带身份证。",
        "service",
        None,
        datetime(2025, 3, 1, tzinfo=UTC),
    ),
    (
        "六安市人民政府办公室关于印发安全生产工作要点的通知",
        "各县区人民政府：现将安全生产工作要点印发给你们。",
        "decision",
        "六政办〔2024〕12号",
        datetime(2024, 4, 2, tzinfo=UTC),
    ),
    (
        "2026年第一季度财政预算执行情况",
        "一般公共预算收入完成GDP目标的25%，5G基站建设加快。",
        "results",
        None,
        datetime(2026, 4, 10, tzinfo=UTC),
    ),
    (
        "关于医疗保障待遇调整的公告",
        "自2026年1月1日起，医保报销比例提高，社保缴费基数同步调整。",
        "key_area",
        "六医保〔2025〕9号",
        datetime(2025, 12, 20, tzinfo=UTC),
    ),
]


async def _load(db: Database) -> None:
    for serial, (title, body, category, docno, when) in enumerate(CATALOG, start=1):
        await add_item(
            db,
            serial,
            title=title,
            body=body,
            category=category,
            document_number=docno,
            published_at=when,
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("社保", ["社保"]),
        ("医保卡", ["医保", "保卡"]),
        ("六政办〔2024〕12号", ["六政", "政办", "2024", "12", "号"]),
        ("ＧＤＰ增长5G", ["gdp", "增长", "5g"]),
        ("<script>", ["script"]),
        ("", []),
    ],
)
def test_tokens(value: str, expected: list[str]) -> None:
    assert s.tokens(value) == expected


def test_query_literals_cannot_be_injected() -> None:
    phrases = s.parse_query("\" OR title:* ' & ! 社保")
    assert s.fts5_query(phrases) == '("or" AND "title" AND "社保")'
    assert s.pg_tsquery(phrases) == "('or') & ('title') & ('社保')"


def test_snippet_highlights_and_escapes() -> None:
    phrases = s.parse_query("社保")
    plain, marked = s.snippet("<b>办理</b>社保卡需要身份证", phrases)
    assert plain == "<b>办理</b>社保卡需要身份证"
    assert marked == "&lt;b&gt;办理&lt;/b&gt;<mark>社保</mark>卡需要身份证"


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("社保", ["关于医疗保障待遇调整的公告", "六安市社保卡办理指南"]),
        ("医保", ["关于2026年城乡居民医保集中缴费的通知", "关于医疗保障待遇调整的公告"]),
        ("六政办〔2024〕12号", ["六安市人民政府办公室关于印发安全生产工作要点的通知"]),
        ("六政办2024 12号", ["六安市人民政府办公室关于印发安全生产工作要点的通知"]),
        ("gdp 5G", ["2026年第一季度财政预算执行情况"]),
        (f"{ORG}/202404-00003", ["六安市人民政府办公室关于印发安全生产工作要点的通知"]),
        ("集中缴费", ["关于2026年城乡居民医保集中缴费的通知"]),
        ("不存在的词语", []),
        ("service", []),  # a category name is a filter, not a word of the text
        ("类service", []),
        ("2024", ["六安市人民政府办公室关于印发安全生产工作要点的通知"]),
        ("' OR 1=1 --", []),
        ("!!!", []),
    ],
)
async def test_search_finds(db: Database, query: str, titles: list[str]) -> None:
    await _load(db)
    result = await s.search(db, query)
    assert sorted(hit.title for hit in result.items) == sorted(titles)
    assert result.total == len(titles)


async def test_ranking_title_and_recency_filters_pagination(db: Database) -> None:
    await _load(db)
    result = await s.search(db, "医保")
    # Both match in the title; the newer one comes first.
    assert result.items[0].title.startswith("关于2026年城乡居民医保")
    assert "<mark>医保</mark>" in result.items[0].snippet_html
    assert result.items[0].url.endswith(result.items[0].index_number)
    only = await s.search(db, "医保", category="key_area")
    assert [h.title for h in only.items] == ["关于医疗保障待遇调整的公告"]
    year = await s.search(db, "医保", year=2026)
    assert [h.title for h in year.items] == ["关于2026年城乡居民医保集中缴费的通知"]
    page2 = await s.search(db, "医保", limit=1, offset=1)
    assert page2.total == 2 and [h.title for h in page2.items] == ["关于医疗保障待遇调整的公告"]
    hostile = await s.search(db, "医保", category="x' OR 1=1", limit=10**9, offset=-5)
    assert hostile.total == 0
    huge = await s.search(db, "医保" * 10_000)
    assert huge.total == 0


async def test_remove_and_reindex(db: Database) -> None:
    await _load(db)
    result = await s.search(db, "社保卡")
    assert result.total == 1
    async with db.transaction() as session:
        await s.remove_document(session, result.items[0].publication_id)
        await s.remove_document(session, result.items[0].publication_id)
    assert (await s.search(db, "社保卡")).total == 0


async def test_common_terms_cost_is_capped(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await _load(db)
    monkeypatch.setattr(s, "CANDIDATES", 1)
    monkeypatch.setattr(s, "TOTAL_CAP", 2)
    capped = await s.search(db, "关于")
    assert capped.total == 2 and not capped.total_exact
    # Title matches are candidates of their own: an older title hit is still found.
    assert capped.items and all("关于" in h.title for h in capped.items)
    exact = await s.search(db, "社保卡")
    assert exact.total == 1 and exact.total_exact
