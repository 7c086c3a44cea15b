"""Website and search benchmark over a generated catalog (default 400,000 items).

Measures, on SQLite and PostgreSQL:
- site search latency p50/p95 for 2-, 3- and 6-character Chinese queries (the full
  ``website.search.search`` call: candidates, ranking, snippets);
- one incremental publish (the website channel's ``publish``: catalog entry + search index
  in one transaction) and one incremental static-export update, at 1,000 and at N items;
- the full static export rate (pages per second) on the 1,000-item catalog;
- the process's peak memory.

The catalog is built with bulk inserts and cached between runs: the SQLite file under
``--cache`` (default /tmp/govcast-bench-website) and the PostgreSQL database
``govcast_bench_website_<N>`` (kept; rebuilt when its row count is wrong).

    .venv/bin/python bench/website/run.py                 # 400,000 items, both databases
    .venv/bin/python bench/website/run.py --items 2000 --db sqlite --rounds 2   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from channels.models import WebsiteEntry  # noqa: E402
from channels.website import WebsiteChannel  # noqa: E402
from govcast import migrate  # noqa: E402
from govcast.settings import load_settings  # noqa: E402
from publisher.config import CoreConfig  # noqa: E402
from publisher.db import Database  # noqa: E402
from publisher.markup import sanitize_html  # noqa: E402
from publisher.media import MediaStore  # noqa: E402
from publisher.models import Office, Publication  # noqa: E402
from publisher.outcomes import DeliveryContext  # noqa: E402
from publisher.views import snapshot_of  # noqa: E402
from website import search as site_search  # noqa: E402
from website.export import Exporter  # noqa: E402

ORG = "11340000MB0000000X"
PG_ADMIN = os.environ.get("GOVCAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CATEGORIES = ["decision", "implementation", "management", "service", "results", "key_area"]
GENRES = ["通知", "公告", "决定", "意见", "办法", "通告", "报告", "方案"]
BODIES = [
    "市人民政府办公室",
    "市医疗保障局",
    "市人力资源和社会保障局",
    "市教育局",
    "市交通运输局",
    "市生态环境局",
    "市住房和城乡建设局",
    "市财政局",
    "市卫生健康委员会",
    "市应急管理局",
]
TOPICS = [
    "城乡居民医保",
    "社保卡",
    "住房公积金",
    "义务教育",
    "安全生产",
    "营商环境",
    "新能源汽车",
    "垃圾分类",
    "养老服务",
    "就业创业",
    "住房保障",
    "公共交通",
    "生态环境保护",
    "疫苗接种",
    "农村公路",
    "防汛抗旱",
    "食品安全",
    "医保报销",
    "社保缴费",
    "乡村振兴",
    "老旧小区改造",
    "不动产登记",
    "残疾人补贴",
    "最低生活保障",
    "高校毕业生",
    "退役军人",
    "中小企业",
    "税费减免",
    "消防安全",
    "文物保护",
    "体育设施",
    "地名命名",
    "人口普查",
    "统计公报",
    "政府采购",
]
ACTIONS = ["实施", "调整", "管理", "工作", "检查", "宣传", "改革", "补贴发放", "专项整治", "考核"]
SENTENCES = [
    "为进一步做好{t}{a}，根据有关法律法规，结合我市实际，制定本{g}。",
    "各县区、各部门要高度重视{t}，切实加强组织领导，确保各项措施落到实处。",
    "{t}{a}自{y}年{m}月{d}日起施行，请广大市民和企业相互转告。",
    "咨询电话：12345，办理地点为市政务服务中心二楼{n}号窗口。",
    "{y}年全市{t}工作取得明显成效，群众满意度达到{p}%。",
    "对未按规定执行的单位，将依法依规予以通报并责令限期整改。",
]
QUERIES = {
    2: ["社保", "医保", "教育", "交通", "养老", "就业", "住房", "消防"],
    3: ["公积金", "社保卡", "新能源", "残疾人", "不动产", "中小企", "退役军", "防汛抗"],
    6: [
        "城乡居民医保",
        "住房公积金管",
        "义务教育实施",
        "安全生产专项",
        "营商环境改革",
        "垃圾分类宣传",
        "老旧小区改造",
        "最低生活保障",
    ],
}


def generate(n: int, seed: int = 20261128) -> list[dict[str, Any]]:
    """Deterministic catalog rows, oldest first over ten years."""
    rng = random.Random(seed)
    start = datetime(2016, 12, 1, tzinfo=UTC)
    span = (datetime(2026, 11, 20, tzinfo=UTC) - start).total_seconds()
    serials: dict[str, int] = {}
    rows = []
    for i in range(n):
        when = start + timedelta(seconds=span * (i + rng.random()) / n)
        period = when.astimezone(UTC).strftime("%Y%m")
        serials[period] = serials.get(period, 0) + 1
        topic, action, genre = rng.choice(TOPICS), rng.choice(ACTIONS), rng.choice(GENRES)
        body_sentences = [
            s.format(
                t=rng.choice(TOPICS) if k else topic,
                a=action,
                g=genre,
                y=when.year,
                m=rng.randint(1, 12),
                d=rng.randint(1, 28),
                n=rng.randint(1, 40),
                p=rng.randint(85, 99),
            )
            for k, s in enumerate(rng.sample(SENTENCES, 4))
        ]
        issuer = rng.choice(BODIES)
        docno = (
            f"六{issuer[1:3]}〔{when.year}〕{rng.randint(1, 300)}号" if rng.random() < 0.4 else None
        )
        rows.append(
            {
                "title": f"关于{topic}{action}的{genre}",
                "body": "".join(body_sentences),
                "category": rng.choice(CATEGORIES),
                "kind": "press_release" if rng.random() < 0.15 else "disclosure",
                "genre": genre,
                "issuing_body": "六安" + issuer,
                "document_number": docno,
                "published_at": when,
                "index_number": f"{ORG}/{period}-{serials[period]:05d}",
                "keywords": [topic],
            }
        )
    return rows


async def build(db: Database, rows: list[dict[str, Any]], base_url: str) -> None:
    """Bulk-insert the catalog: publications, live website entries, the search index."""
    async with db.transaction() as session:
        office = (await session.execute(select(Office))).scalar_one_or_none()
        if office is None:
            office = Office(key="main", name="示例市人民政府办公室", org_code=ORG)
            session.add(office)
            await session.flush()
        office_id = office.id
    batch = 5000
    next_id = 1
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        now = datetime.now(UTC)
        pubs, entries, docs, fts = [], [], [], []
        for offset, row in enumerate(chunk):
            pid = next_id + offset
            url = f"{base_url}/disclosure/{row['index_number']}"
            pubs.append(
                {
                    "id": pid,
                    "office_id": office_id,
                    "index_number": row["index_number"],
                    "kind": row["kind"],
                    "state": "published",
                    "title": row["title"],
                    "body_html": f"<p>{row['body']}</p>",
                    "summary": row["body"][:100],
                    "category": row["category"],
                    "issuing_body": row["issuing_body"],
                    "document_number": row["document_number"],
                    "genre": row["genre"],
                    "keywords": row["keywords"],
                    "channels": ["website"],
                    "imported": True,
                    "published_at": row["published_at"],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            entries.append(
                {
                    "publication_id": pid,
                    "office_id": office_id,
                    "index_number": row["index_number"],
                    "url": url,
                    "state": "live",
                    "revision": 1,
                    "published_at": row["published_at"],
                    "updated_at": now,
                }
            )
            meta = [
                x
                for x in (
                    row["document_number"],
                    row["issuing_body"],
                    row["genre"],
                    *row["keywords"],
                )
                if x
            ]
            head = site_search.tokens(" ".join([row["title"], row["index_number"], *meta]))
            body = site_search.tokens(row["body"])
            key = site_search.rank_key(row["published_at"], pid)
            doc = {
                "pid": pid,
                "rk": key,
                "ix": row["index_number"],
                "url": url,
                "title": row["title"],
                "kind": row["kind"],
                "cat": row["category"],
                "year": row["published_at"].year,
                "col": None,
                "genre": row["genre"],
                "pub": row["published_at"],
                "text": row["body"],
            }
            if db.is_postgresql:
                doc["tsv"] = site_search.pg_tsvector(head, body)
            else:
                doc["pub"] = row["published_at"].replace(tzinfo=None)
                fts.append(
                    {
                        "rk": key,
                        "title": " ".join(head),
                        "body": " ".join(body),
                        "facets": site_search.facet_tokens(
                            row["category"], row["published_at"].year, row["kind"]
                        ),
                    }
                )
            docs.append(doc)
        next_id += len(chunk)
        async with db.transaction() as session:
            await session.execute(insert(Publication), pubs)
            await session.execute(insert(WebsiteEntry), entries)
            tsv = ", CAST(:tsv AS tsvector)" if db.is_postgresql else ""
            await session.execute(
                text(
                    "INSERT INTO website_search_docs (publication_id, rank_key, index_number,"
                    " url, title, kind, category, year, column_key, genre, published_at, text"
                    + (", tsv" if tsv else "")
                    + ") VALUES (:pid, :rk, :ix, :url, :title,"
                    " :kind, :cat, :year, :col, :genre, :pub, :text" + tsv + ")"
                ),
                docs,
            )
            if fts:
                await session.execute(
                    text(
                        "INSERT INTO website_search_fts (rowid, title, body, facets)"
                        " VALUES (:rk, :title, :body, :facets)"
                    ),
                    fts,
                )
        if start and start % 50_000 == 0:
            print(f"  ... {start} items", flush=True)
    if db.is_postgresql:
        async with db.engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('publications', 'id'),"
                    " (SELECT max(id) FROM publications))"
                )
            )
            await conn.commit()
        async with db.engine.connect() as conn:
            await (await conn.get_raw_connection()).driver_connection.execute("ANALYZE")  # type: ignore[union-attr]


async def _count(db: Database) -> int:
    try:
        async with db.engine.connect() as conn:
            return int(
                (await conn.execute(text("SELECT count(*) FROM website_search_docs"))).scalar_one()
            )
    except Exception:
        return -1


async def prepare(kind: str, n: int, cache: Path, base_url: str) -> str:
    """A database URL holding the n-item catalog (built once, then reused)."""
    if kind == "sqlite":
        path = cache / f"catalog-{n}.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        if path.exists():
            db = Database(url)
            ok = await _count(db) == n
            await db.dispose()
            if ok:
                # A cached catalog follows schema changes (e.g. the search index's).
                await asyncio.to_thread(migrate.upgrade, url)
                return url
            path.unlink()
        cache.mkdir(parents=True, exist_ok=True)
    else:
        name = f"govcast_bench_website_{n}"
        url = (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            + f"/{name}"
        )
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                db = Database(url)
                ok = await _count(db) == n
                await db.dispose()
                if ok:
                    await asyncio.to_thread(migrate.upgrade, url)
                    return url
                await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    print(f"building {kind} catalog of {n} items (cached afterwards) ...", flush=True)
    started = time.perf_counter()
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    await build(db, generate(n), base_url)
    await db.dispose()
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_search(db: Database, rounds: int) -> dict[int, tuple[float, float, float]]:
    results = {}
    for length, queries in QUERIES.items():
        for q in queries:  # warm-up: caches as a running server would have them
            await site_search.search(db, q)
        samples: list[float] = []
        totals = []
        for _ in range(rounds):
            for q in queries:
                started = time.perf_counter()
                found = await site_search.search(db, q)
                samples.append((time.perf_counter() - started) * 1000)
                totals.append(found.total)
        results[length] = (pct(samples, 0.5), pct(samples, 0.95), statistics.mean(totals))
    return results


async def bench_deep_page(db: Database, rounds: int, offset: int) -> tuple[float, float]:
    """p50/p95 ms of a 2-character query's page beyond the first candidate block."""
    samples: list[float] = []
    for _ in range(rounds):
        for q in QUERIES[2]:
            started = time.perf_counter()
            await site_search.search(db, q, offset=offset)
            samples.append((time.perf_counter() - started) * 1000)
    return pct(samples, 0.5), pct(samples, 0.95)


async def bench_publish(
    db: Database, settings: Any, samples: int, export_dir: Path
) -> tuple[float, float]:
    """Median ms of one website-channel publish and of one incremental export update."""
    config = CoreConfig(website_base_url=settings.website.base_url)
    store = MediaStore(export_dir / "media", 10_000_000)
    channel = WebsiteChannel(db)
    exporter = Exporter(settings, db, export_dir)
    publish_ms, export_ms = [], []
    async with db.sessions() as session:
        office_id = (await session.execute(select(Office.id))).scalars().first()
    for i in range(samples):
        now = datetime.now(UTC)
        async with db.transaction() as session:
            pub = Publication(
                office_id=office_id,
                index_number=f"{ORG}/209912-{i + 1:05d}-{os.getpid()}"[:64],
                kind="disclosure",
                state="queued",
                title=f"关于基准测试社保卡发放的通知{i}",
                body_html=sanitize_html(
                    "<p>" + "城乡居民医保缴费与社保卡发放工作安排。" * 20 + "</p>"
                ),
                summary="基准",
                category="service",
                issuing_body="六安市人民政府办公室",
                channels=["website"],
                published_at=now,
            )
            session.add(pub)
            await session.flush()
            pid = pub.id
        async with db.sessions() as session:
            snap = await snapshot_of(session, config, store, pid)
        rendition = channel.render(snap, "main")
        ctx = DeliveryContext(
            delivery_id=0,
            publication_id=pid,
            account="main",
            action="publish",
            attempt=1,
            idempotency_key=f"bench-{pid}",
        )
        started = time.perf_counter()
        await channel.publish(rendition, ctx)
        publish_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await exporter.apply(pid)
        export_ms.append((time.perf_counter() - started) * 1000)
    # Leave the cached catalog as it was.
    async with db.transaction() as session:
        await session.execute(
            text(
                "DELETE FROM website_search_fts WHERE rowid IN"
                " (SELECT rank_key FROM website_search_docs WHERE index_number LIKE :p)"
            )
            if db.is_sqlite
            else text("SELECT 1"),
            {"p": f"{ORG}/209912-%"},
        )
        await session.execute(
            text("DELETE FROM website_search_docs WHERE index_number LIKE :p"),
            {"p": f"{ORG}/209912-%"},
        )
        await session.execute(
            text("DELETE FROM website_entries WHERE index_number LIKE :p"), {"p": f"{ORG}/209912-%"}
        )
        await session.execute(
            text("DELETE FROM publications WHERE index_number LIKE :p"), {"p": f"{ORG}/209912-%"}
        )
    return statistics.median(publish_ms), statistics.median(export_ms)


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=400_000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--publishes", type=int, default=15)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/govcast-bench-website"))
    args = parser.parse_args()
    settings = load_settings(env={})
    base_url = settings.website.base_url.rstrip("/")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"website bench: {args.items} items, {args.rounds} rounds x 8 queries per length")
    for kind in kinds:
        small_url = await prepare(kind, args.small, args.cache, base_url)
        large_url = await prepare(kind, args.items, args.cache, base_url)
        rss_before = rss_mb()
        large = Database(large_url)
        found = await bench_search(large, args.rounds)
        for length, (p50, p95, total) in found.items():
            print(
                f"{kind:10s} search {length}-char  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
                f"  (mean total {total:,.0f} of {args.items:,}, estimated beyond"
                f" {site_search.TOTAL_CAP:,})"
            )
        p50, p95 = await bench_deep_page(large, args.rounds, 500)
        print(
            f"{kind:10s} search 2-char page 51 (offset 500)  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
        )
        with tempfile.TemporaryDirectory() as tmp:
            small = Database(small_url)
            s_pub, s_exp = await bench_publish(small, settings, args.publishes, Path(tmp) / "s")
            l_pub, l_exp = await bench_publish(large, settings, args.publishes, Path(tmp) / "l")
            print(
                f"{kind:10s} publish (entry+index) median {s_pub:6.1f} ms at {args.small:,}"
                f"  {l_pub:6.1f} ms at {args.items:,}"
            )
            print(
                f"{kind:10s} incremental export   median {s_exp:6.1f} ms at {args.small:,}"
                f"  {l_exp:6.1f} ms at {args.items:,}"
            )
            started = time.perf_counter()
            stats = await Exporter(settings, small, Path(tmp) / "full").full()
            seconds = time.perf_counter() - started
            print(
                f"{kind:10s} full static export of {args.small:,} items: {stats.pages} pages in"
                f" {seconds:.1f} s = {stats.pages / seconds:.0f} pages/s"
            )
            shutil.rmtree(Path(tmp) / "full", ignore_errors=True)
            await small.dispose()
        await large.dispose()
        print(
            f"{kind:10s} memory: RSS {rss_mb():.0f} MB (before this database {rss_before:.0f} MB),"
            f" peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
