"""A 400,000-item search index for the callback benchmark (PostgreSQL), built once.

The website's own tokenizer (``website.search.tokens`` / ``pg_tsvector``) produces the
index rows, bulk-loaded with COPY. The bench database holds the index only, so its foreign
key to ``publications`` is dropped there (nothing else in it is used).
"""

# ruff: noqa: E501

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from website import search

# Words of official notices, weighted Zipf-like so some terms are common and some rare.
WORDS = (
    "医保 社保 缴费 公积金 养老 就业 招聘 教育 入学 户籍 住房 保障 低保 救助 残疾 补贴 税务 发票"
    " 营业执照 企业 开办 审批 许可 备案 环保 污染 治理 交通 道路 公交 停车 燃气 供水 供电 物业 拆迁"
    " 征收 补偿 规划 土地 农业 农村 扶贫 乡村 振兴 文化 旅游 体育 卫生 健康 疫苗 医院 药品 食品 安全"
    " 消防 应急 防汛 气象 地震 统计 公报 预算 决算 审计 采购 招标 政府 会议 常务 市长 副市长 人大 政协"
    " 建议 提案 办理 答复 信访 投诉 热线 12345 政务 公开 年报 依申请 目录 指南 通知 公告 意见 办法"
    " 规定 条例 细则 方案 计划 总结 报告 解读 发布会 新闻 图解 视频 专栏 征集 听证 价格 收费 标准"
    " 学校 幼儿园 老年 托育 妇女 儿童 退役 军人 民族 宗教 外事 侨务 档案 地方志 科技 创新 人才 工业"
    " 园区 项目 投资 招商 金融 市场 监管 质量 计量 知识产权 商标 专利 消费者 权益 房地产 棚户区 改造"
).split()
WEIGHTS = [1.0 / (i + 1) for i in range(len(WORDS))]
# Everyday characters for the rest of a notice's text (synthetic words, rarely topic bigrams).
FILLER = (
    "的一是在不了有和人这中大为上个我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产"
    "种面而方后多定行学所得经十三之进着等度家电力里如水化高自二理起小物现实加量都两体制机当使点从本去"
)
VERSION = "bench-corpus-v2"
KINDS = ("disclosure", "press_release", "press_conference", "column_item", "solicitation")
CATEGORIES = ("decision", "implementation", "management", "service", "results", "key_area")


def item(i: int, rng: random.Random, start: datetime) -> tuple[object, ...]:
    """One index row: (publication_id, rank_key, index_number, url, title, kind, ...)."""
    # A notice is about two topics; the rest of its text is ordinary language.
    head = rng.choices(WORDS, WEIGHTS, k=2)
    title = f"关于{head[0]}{head[1]}工作的通知"
    filler = ["".join(rng.choices(FILLER, k=rng.randint(2, 4))) for _ in range(30)]
    filler[rng.randrange(30)] = head[0]
    filler[rng.randrange(30)] = rng.choices(WORDS, WEIGHTS, k=1)[0]
    body = "，".join(filler) + "。"
    published = start + timedelta(seconds=i * 780)
    pid = i + 1
    index_number = f"11340000MB0000000X/{published.year}-{pid:06d}"
    tsv = search.pg_tsvector(search.tokens(f"{title} {index_number}"), search.tokens(body))
    return (
        pid,
        search.rank_key(published, pid),
        index_number,
        f"/disclosure/{index_number}",
        title,
        KINDS[i % len(KINDS)],
        CATEGORIES[i % len(CATEGORIES)],
        published.year,
        published,
        body,
        tsv,
    )


async def ensure_corpus(pg_url: str, size: int = 400_000, seed: int = 7) -> int:
    """Make sure the bench database holds ``size`` index rows; returns the count."""
    conn = await asyncpg.connect(pg_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM website_search_docs")
        mark = await conn.fetchval(
            "SELECT obj_description('website_search_docs'::regclass, 'pg_class')"
        )
        if have == size and mark == VERSION:
            return int(have)
        t0 = time.perf_counter()
        await conn.execute(
            "ALTER TABLE website_search_docs DROP CONSTRAINT IF EXISTS"
            " fk_website_search_docs_publication_id_publications"
        )
        await conn.execute("TRUNCATE website_search_docs")
        await conn.execute("DROP INDEX IF EXISTS ix_website_search_docs_tsv")
        await conn.execute(
            "CREATE TEMP TABLE staging (publication_id bigint, rank_key bigint, index_number text,"
            " url text, title text, kind text, category text, year int,"
            " published_at timestamptz, text text, tsv text)"
        )
        rng = random.Random(seed)
        start = datetime(2016, 1, 1, tzinfo=UTC)
        batch = 20_000
        for lo in range(0, size, batch):
            rows = [item(i, rng, start) for i in range(lo, min(size, lo + batch))]
            await conn.copy_records_to_table("staging", records=rows)
        await conn.execute(
            "INSERT INTO website_search_docs (publication_id, rank_key, index_number, url, title,"
            " kind, category, year, published_at, text, tsv) SELECT publication_id, rank_key,"
            " index_number, url, title, kind, category, year, published_at, text,"
            " tsv::tsvector FROM staging"
        )
        await conn.execute(
            "CREATE INDEX ix_website_search_docs_tsv ON website_search_docs USING gin (tsv)"
        )
        await conn.execute("ANALYZE website_search_docs")
        await conn.execute(f"COMMENT ON TABLE website_search_docs IS '{VERSION}'")
        print(f"corpus: built {size} items in {time.perf_counter() - t0:.0f} s", flush=True)
        return size
    finally:
        await conn.close()


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(
        asyncio.run(ensure_corpus(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400_000))
    )
