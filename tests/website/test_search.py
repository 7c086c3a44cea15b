"""Site search on real SQLite and real PostgreSQL with realistic Chinese catalog data."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

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
    # One result per page: only one block of (one) candidate is walked; counting stops at
    # 2 and the total beyond it is an estimate, never below the cap.
    capped = await s.search(db, "关于", limit=1)
    assert capped.total >= 2 and not capped.total_exact
    # Title matches are candidates of their own: an older title hit is still found.
    assert capped.items and all("关于" in h.title for h in capped.items)
    exact = await s.search(db, "社保卡")
    assert exact.total == 1 and exact.total_exact


# --- candidate walk, phrase confirmation, ranking blocks and pagination -------------------


async def _items(db: Database, rows: list[tuple[str, str, datetime]], start: int = 100) -> None:
    for serial, (title, body, when) in enumerate(rows, start=start):
        await add_item(db, serial, title=title, body=body, published_at=when)


async def test_phrase_confirmation_drops_bigram_only_matches(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 社保卡 = 社保 + 保卡: these newer items hold both bigrams, never the phrase.
    decoys = [
        (f"通知{i}", "参加社保的人员注意：银行保卡服务暂停。", datetime(2026, 9, i + 1, tzinfo=UTC))
        for i in range(5)
    ]
    await _items(db, decoys)
    await add_item(
        db,
        200,
        title="办理指南",
        body="新版社保卡已开始发放。",
        published_at=datetime(2019, 5, 1, tzinfo=UTC),
    )
    # Candidates come in blocks of 2: the walk must go on past the rejected ones.
    monkeypatch.setattr(s, "CANDIDATES", 2)
    found = await s.search(db, "社保卡")
    assert [h.title for h in found.items] == ["办理指南"]
    assert found.total == 1 and found.total_exact
    assert "<mark>社保卡</mark>" in found.items[0].snippet_html
    # Reversed order is another phrase; each bigram alone still matches everywhere.
    assert (await s.search(db, "卡保社")).total == 0
    assert (await s.search(db, "保卡")).total == 6


async def test_relevance_title_beats_newer_passing_mention(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    mentions = [
        (f"工作动态{i}", "会议还提到了养老服务。", now - timedelta(days=i + 1)) for i in range(4)
    ]
    await _items(db, mentions)
    await add_item(
        db,
        300,
        title="关于养老服务补贴的通知",
        body="补贴标准见附件。",
        published_at=now - timedelta(days=200),
    )
    await add_item(
        db,
        301,
        title="养老服务机构名单（旧）",
        body="名单。",
        published_at=now - timedelta(days=365 * 9),
    )
    # The title match is older than the two newest candidates: found through the title
    # walk, and ranked first (title x3 outweighs 200 days of age).
    monkeypatch.setattr(s, "CANDIDATES", 2)
    found = await s.search(db, "养老服务", limit=3)
    assert found.items[0].title == "关于养老服务补贴的通知"
    # Then the newest passing mentions, newest first.
    assert [h.title for h in found.items[1:]] == ["工作动态0", "工作动态1"]
    scores = [h.score for h in found.items]
    assert scores == sorted(scores, reverse=True)
    everything = await s.search(db, "养老服务", limit=10)
    assert everything.total == 6 and everything.total_exact
    titles = [h.title for h in everything.items]
    assert sorted(titles) == sorted(
        [t for t, _, _ in mentions] + ["关于养老服务补贴的通知", "养老服务机构名单（旧）"]
    )


async def test_pagination_beyond_the_candidate_block(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    rows = [
        (f"公告{i}", "关于住房公积金提取的说明。", now - timedelta(days=40 * i)) for i in range(7)
    ]
    rows.append(("住房公积金缴存基数调整", "见正文。", now - timedelta(days=300)))
    rows.append(("无关", "本周天气晴。", now - timedelta(days=5)))
    await _items(db, rows)
    monkeypatch.setattr(s, "CANDIDATES", 3)
    seen: list[str] = []
    for offset in range(0, 10, 2):
        page = await s.search(db, "公积金", limit=2, offset=offset)
        assert page.total == 8 and page.total_exact
        seen.extend(h.title for h in page.items)
    # Every match exactly once across pages, though the walk ranks 3 at a time.
    assert len(seen) == 8 and len(set(seen)) == 8 and "无关" not in seen
    # The old title match is ranked with the first block, the rest newest first.
    assert seen[0] == "住房公积金缴存基数调整"
    assert seen[1:] == [f"公告{i}" for i in range(7)]
    # The same page asked for directly ranks as it did while paging.
    assert [h.title for h in (await s.search(db, "公积金", limit=2, offset=4)).items] == seen[4:6]
    beyond = await s.search(db, "公积金", limit=2, offset=20)
    assert beyond.items == [] and beyond.total == 8


async def test_total_beyond_the_cap_is_an_estimate(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    await _items(
        db, [(f"医保动态{i}", "医保报销。", now - timedelta(days=3 * i)) for i in range(12)]
    )
    if db.is_postgresql:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE website_search_docs")
            await conn.commit()
        monkeypatch.setattr(s, "_STATS", {})
    monkeypatch.setattr(s, "CANDIDATES", 2)
    monkeypatch.setattr(s, "TOTAL_CAP", 5)
    found = await s.search(db, "医保", limit=2)
    assert len(found.items) == 2 and not found.total_exact
    # PostgreSQL estimates from its statistics (every row holds 医保); SQLite from the
    # time span of the newest 5 matches (one every 3 days) against the catalog's.
    if db.is_postgresql:
        assert found.total == 12
    else:
        assert 10 <= found.total <= 16
    # A phrase of several bigrams: confirmed candidates only, and an estimate beyond the cap.
    phrase = await s.search(db, "医保报销", limit=2)
    assert len(phrase.items) == 2 and not phrase.total_exact and phrase.total >= 5


def test_buckets_tile_the_key_space() -> None:
    for now in (datetime(2026, 11, 28, 13, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)):
        buckets = s.pg_buckets(now)
        assert buckets[0].hi is None and buckets[-1].lo is None
        for newer, older in itertools.pairwise(buckets):
            assert newer.lo == older.hi
        lo = buckets[1].lo
        assert lo is not None and s.rank_key(now, 1) >= lo
        assert buckets[1].lexeme == f"@m{now.year}{now.month:02d}"
        assert len(buckets) == 1 + 12 + now.month + s.YEAR_BUCKETS + 1


async def test_items_of_every_age_and_filters(db: Database) -> None:
    now = datetime.now(UTC)
    ages = [
        ("将来", now + timedelta(days=60)),  # scheduled ahead: the "future" slice
        ("本月", now - timedelta(minutes=5)),
        ("上月", now - timedelta(days=35)),
        ("去年", now - timedelta(days=400)),
        ("五年前", now - timedelta(days=5 * 365)),
        ("三十年前", now - timedelta(days=30 * 365)),
    ]
    for serial, (label, when) in enumerate(ages, start=400):
        await add_item(
            db,
            serial,
            title=f"{label}的通知",
            body="防汛抗旱工作安排。",
            category="service" if serial % 2 else "decision",
            published_at=when,
        )
    found = await s.search(db, "防汛抗旱")
    assert found.total == 6 and found.total_exact
    assert sorted(h.title for h in found.items) == sorted(f"{a}的通知" for a, _ in ages)
    service = await s.search(db, "防汛抗旱", category="service")
    assert {h.category for h in service.items} == {"service"} and service.total == 3
    old = ages[4][1]
    in_year = await s.search(db, "防汛", year=old.year)
    assert [h.title for h in in_year.items] == ["五年前的通知"]
    assert (await s.search(db, "防汛", year=1990)).total == 0


async def test_long_and_hostile_queries(db: Database) -> None:
    await _load(db)
    # Many distinct bigrams: only the rarest few go to the index, the phrase is confirmed.
    long_query = "关于2026年城乡居民医保集中缴费的通知"
    found = await s.search(db, long_query)
    assert [h.title for h in found.items] == [long_query]
    assert (await s.search(db, long_query + "补充")).total == 0
    # At most 8 terms count: 缴费 as the 21st is ignored.
    assert (await s.search(db, " ".join(["医保"] * 20) + " 缴费")).total == 2
    assert (await s.search(db, "集中缴费 " + " ".join(["医保"] * 20))).total == 1
    for hostile in ("'); DROP TABLE website_search_docs; --", "a:* | !b", "@m202611", "#service"):
        assert (await s.search(db, hostile)).total == 0
    # The index's own marks are punctuation to the tokenizer: ~医保 is just 医保.
    assert (await s.search(db, "~医保")).total == (await s.search(db, "医保")).total == 2


# PostgreSQL only: the filter lexemes exist only in its tsvector (SQLite's FTS5 index has
# its own test above).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_rows_carry_filter_lexemes(database_url: str, db: Database) -> None:
    assert db.is_postgresql
    await add_item(
        db,
        1,
        title="社保卡办理",
        body="正文。",
        category="service",
        published_at=datetime(2025, 3, 1, tzinfo=UTC),
    )
    async with db.engine.connect() as conn:
        tsv = (await conn.exec_driver_sql("SELECT tsv::text FROM website_search_docs")).scalar_one()
        for lexeme in ("'@m202503'", "'@y2025'", "'#service'", "'~社保'", "'~保卡'"):
            assert lexeme in tsv
        assert "'~正文'" not in tsv  # body tokens are not title marks
        await conn.exec_driver_sql(
            "UPDATE website_search_docs SET published_at = '2024-12-31T12:00:00Z',"
            " category = 'decision'"
        )
        await conn.commit()
        moved = (
            await conn.exec_driver_sql("SELECT tsv::text FROM website_search_docs")
        ).scalar_one()
    assert "'@m202412'" in moved and "'@m202503'" not in moved and "'#decision'" in moved
    assert moved.count("'~社保'") == 1
    assert (await s.search(db, "社保卡")).total == 1
