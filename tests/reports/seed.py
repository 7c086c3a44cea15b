"""A seeded data set for the figures tests: publications, deliveries, cases and hits,
described as plain Python records so the tests can compute expectations independently."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.cases.models import Case
from bot.comments.models import Comment, CommentThread
from publisher.db import Database
from publisher.models import Delivery, Office, Publication, PublicationVersion
from website.models import HitCount

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 1, 15, 4, 0, tzinfo=UTC)
CATEGORIES = ["decision", "implementation", "management", "service", "results", "key_area"]
KINDS = ["disclosure", "press_release", "press_conference", "solicitation", "column_item"]
BODIES = ["示例市人民政府办公室", "示例市医疗保障局", "示例市财政局"]
STATES = ["published", "published", "published", "queued", "withdrawn", "draft", "scheduled"]


def _span(a: str, b: str) -> set[date]:
    x, y = date.fromisoformat(a), date.fromisoformat(b)
    return {x + timedelta(days=i) for i in range((y - x).days + 1)}


# The 2025 arrangement, typed in again from the State Council notice (not imported).
HOLIDAYS_2025 = (
    _span("2025-01-01", "2025-01-01")
    | _span("2025-01-28", "2025-02-04")
    | _span("2025-04-04", "2025-04-06")
    | _span("2025-05-01", "2025-05-05")
    | _span("2025-05-31", "2025-06-02")
    | _span("2025-10-01", "2025-10-08")
    | _span("2026-01-01", "2026-01-03")
)
WORKDAYS_2025 = {
    date(2025, 1, 26),
    date(2025, 2, 8),
    date(2025, 4, 27),
    date(2025, 9, 28),
    date(2025, 10, 11),
    date(2026, 1, 4),
}


def working_days(a: datetime, b: datetime) -> int:
    """Working days d with local(a) < d <= local(b), by walking the calendar."""
    da, db = a.astimezone(ZONE).date(), b.astimezone(ZONE).date()
    n = 0
    d = da
    while d < db:
        d += timedelta(days=1)
        if d in WORKDAYS_2025 or (d.weekday() < 5 and d not in HOLIDAYS_2025):
            n += 1
    return n


@dataclass
class PubRec:
    id: int
    title: str
    kind: str
    category: str
    body: str
    state: str
    created_at: datetime
    published_at: datetime | None
    approved_at: datetime | None
    document_number: str | None
    validity: str
    updated_at: datetime
    imported: bool
    targets: list[tuple[str, str, datetime]]  # (channel, account, done_at)
    hits: int
    # Set for a document repealed by a correction: its versions record when.
    repealed_at: datetime | None = None


@dataclass
class CaseRec:
    state: str
    received_at: datetime
    replied_at: datetime | None
    rating: int | None


@dataclass
class CommentRec:
    platform: str
    account: str
    pub: int  # index into Seed.pubs
    written_at: datetime
    hidden: bool
    replied: bool


@dataclass
class Seed:
    pubs: list[PubRec]
    cases: list[CaseRec]
    comments: list[CommentRec] = field(default_factory=list)


def build_comments(pubs: list[PubRec], seed: int = 11) -> list[CommentRec]:
    """Comments under the WeChat articles and Weibo posts of the seeded publications."""
    rng = random.Random(seed)
    out = []
    for n, p in enumerate(pubs):
        for channel, account, done in p.targets:
            if channel == "website":
                continue
            for _ in range(rng.randint(0, 4)):
                out.append(
                    CommentRec(
                        channel,
                        account,
                        n,
                        done + timedelta(hours=rng.randint(1, 24 * 40)),
                        hidden=rng.random() < 0.15,
                        replied=rng.random() < 0.55,
                    )
                )
    return out


def build(seed: int = 7) -> Seed:
    rng = random.Random(seed)
    pubs = []
    year_start = datetime(2024, 12, 1, tzinfo=UTC)
    for i in range(90):
        created = year_start + timedelta(hours=rng.randint(0, 24 * 410))
        delay = timedelta(hours=rng.choice([2, 30, 200, 700, 1200]))
        published = created + delay
        state = rng.choice(STATES)
        if state in ("draft",):
            published_at = None
        else:
            published_at = published
        if state == "scheduled":
            published_at = NOW + timedelta(days=3)
        kind = rng.choice(KINDS)
        targets = []
        if published_at is not None and published_at <= NOW and state != "draft":
            targets.append(("website", "main", published_at + timedelta(minutes=1)))
            if rng.random() < 0.6:
                targets.append(("wechat", "main", published_at + timedelta(minutes=3)))
            if rng.random() < 0.3:
                targets.append(("weibo", "main", published_at + timedelta(minutes=4)))
        pubs.append(
            PubRec(
                id=0,
                title=f"示例公开事项{i:03d}",
                kind=kind,
                category=rng.choice(CATEGORIES),
                body=rng.choice(BODIES),
                state=state,
                created_at=created,
                published_at=published_at,
                approved_at=published_at,
                document_number=f"示政〔2025〕{i}号" if rng.random() < 0.3 else None,
                validity=rng.choice(["in_force", "in_force", "repealed", "expired", "amended"]),
                updated_at=created + timedelta(days=rng.randint(0, 60)),
                imported=rng.random() < 0.1,
                targets=targets,
                hits=rng.randint(0, 500),
            )
        )
    pubs += fixed_normative_documents()
    cases = []
    for _ in range(60):
        got = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 24 * 380))
        state = rng.choice(["received", "rejected", "replied", "rated", "closed", "assigned"])
        replied = (
            got + timedelta(hours=rng.randint(1, 24 * 12))
            if state in ("replied", "rated", "closed")
            else None
        )
        rating = rng.randint(1, 5) if state == "rated" else None
        cases.append(CaseRec(state, got, replied, rating))
    return Seed(pubs, cases, build_comments(pubs))


REPEALED_AT = datetime(2025, 7, 10, 2, 0, tzinfo=UTC)


def fixed_normative_documents() -> list[PubRec]:
    """A normative document repealed in July 2025 (and edited again in December, so its
    ``updated_at`` is not the repeal date) and one in force: the figures always see both."""
    published = datetime(2025, 3, 14, 2, 0, tzinfo=UTC)
    common = {
        "kind": "disclosure",
        "category": "decision",
        "body": BODIES[0],
        "state": "published",
        "approved_at": published,
        "imported": False,
        "hits": 0,
    }
    return [
        PubRec(
            id=0,
            title="示例市城市道路占用挖掘管理办法",
            created_at=published - timedelta(days=2),
            published_at=published,
            document_number="示政规〔2025〕1号",
            validity="repealed",
            updated_at=datetime(2025, 12, 20, 2, 0, tzinfo=UTC),
            targets=[("website", "main", published + timedelta(minutes=1))],
            repealed_at=REPEALED_AT,
            **common,  # type: ignore[arg-type]
        ),
        PubRec(
            id=0,
            title="示例市公共资源交易管理暂行办法",
            created_at=published + timedelta(days=35),
            published_at=published + timedelta(days=37),
            document_number="示政规〔2025〕2号",
            validity="in_force",
            updated_at=published + timedelta(days=37),
            targets=[("website", "main", published + timedelta(days=37, minutes=1))],
            **common,  # type: ignore[arg-type]
        ),
    ]


def repeal_date(p: PubRec) -> datetime:
    """The date the figures must count a repeal at."""
    return p.repealed_at or p.updated_at


async def insert(db: Database, data: Seed) -> None:
    async with db.transaction() as session:
        office = (await session.execute(select(Office).where(Office.key == "main"))).scalar_one()
        for n, rec in enumerate(data.pubs):
            row = Publication(
                office_id=office.id,
                kind=rec.kind,
                state=rec.state,
                title=rec.title,
                body_html="<p>正文。</p>",
                summary="",
                category=rec.category,
                issuing_body=rec.body,
                document_number=rec.document_number,
                validity=rec.validity,
                channels=["website"],
                created_at=rec.created_at,
                updated_at=rec.updated_at,
                approved_at=rec.approved_at,
                published_at=rec.published_at,
                imported=rec.imported,
                index_number=f"11340000MB0000000X/2025-{n:05d}" if rec.published_at else None,
            )
            session.add(row)
            await session.flush()
            rec.id = row.id
            for channel, account, done in rec.targets:
                session.add(
                    Delivery(
                        publication_id=row.id,
                        channel=channel,
                        account=account,
                        state="done",
                        done_at=done,
                        sent_at=done,
                    )
                )
            session.add(HitCount(publication_id=row.id, hits=rec.hits))
            if rec.repealed_at is not None:
                # v1 as published, v2 the correction that repealed it, v3 a later edit.
                for version, (validity, at) in enumerate(
                    [
                        ("in_force", rec.created_at),
                        ("repealed", rec.repealed_at),
                        ("repealed", rec.updated_at),
                    ],
                    start=1,
                ):
                    session.add(
                        PublicationVersion(
                            publication_id=row.id,
                            version=version,
                            snapshot={"title": rec.title, "validity": validity},
                            edited_at=at,
                        )
                    )
        threads: dict[tuple[str, str, int], int] = {}
        for k, cm in enumerate(data.comments):
            rec = data.pubs[cm.pub]
            key = (cm.platform, cm.account, rec.id)
            if key not in threads:
                thread = CommentThread(
                    platform=cm.platform,
                    account=cm.account,
                    target=f"t{rec.id}",
                    publication_id=rec.id,
                )
                session.add(thread)
                await session.flush()
                threads[key] = thread.id
            session.add(
                Comment(
                    thread_id=threads[key],
                    publication_id=rec.id,
                    platform=cm.platform,
                    account=cm.account,
                    remote_id=f"c{k}",
                    text="请问什么时候开始办理？",
                    remote_created_at=cm.written_at,
                    hidden=cm.hidden,
                    reply_text="您好，已于本周开始办理。" if cm.replied else None,
                    replied_at=cm.written_at + timedelta(hours=3) if cm.replied else None,
                )
            )
        for k, c in enumerate(data.cases):
            session.add(
                Case(
                    office_id=office.id,
                    number=f"C2025{k:05d}",
                    kind="consultation",
                    channel="wechat",
                    text="咨询",
                    state=c.state,
                    received_at=c.received_at,
                    deadline_at=c.received_at + timedelta(days=7),
                    replied_at=c.replied_at,
                    rating=c.rating,
                )
            )
