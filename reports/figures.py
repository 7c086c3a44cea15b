"""The office's figures for any period: publications by category, kind, channel and
issuing body; normative documents; disclosure timeliness; hits; cases; account activity
and column freshness. Queries here, arithmetic in pure helpers."""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.calendar import WorkCalendar, working_days_between
from bot.cases.models import Case, CaseState
from bot.cases.service import load_calendar
from publisher.db import Database
from publisher.models import (
    Category,
    Delivery,
    DeliveryAction,
    DeliveryState,
    Kind,
    Office,
    Publication,
    PublicationState,
    PublicationVersion,
    Validity,
)
from publisher.orm import utcnow
from reports.periods import Period

log = logging.getLogger("govcast.reports")

LIVE_STATES = (PublicationState.QUEUED.value, PublicationState.PUBLISHED.value)
DISCLOSURE_LIMIT_WORKING_DAYS = 20
REPLY_LIMIT_WORKING_DAYS = 5
SILENT_AFTER = timedelta(days=14)
SOCIAL_CHANNELS = ("wechat", "weibo")


@dataclass(frozen=True)
class LateItem:
    """A publication disclosed more than 20 working days after it was created."""

    publication_id: int
    title: str
    index_number: str | None
    created_at: datetime
    published_at: datetime
    working_days: int


@dataclass(frozen=True)
class AccountActivity:
    """Posts of one WeChat or Weibo account."""

    target: str  # "wechat:main"
    posts: int
    last_post_at: datetime | None
    silent: bool  # nothing for 2 weeks before the period's end (or now)
    posts_per_week: float


@dataclass(frozen=True)
class CaseFigures:
    """Citizens' messages received in the period and how they were answered."""

    received: int
    rejected: int
    answered: int
    reply_rate: float | None  # answered / (received - rejected)
    median_reply_days: float | None
    p90_reply_days: float | None
    within_5_share: float | None  # of the answered, replied within 5 working days
    satisfaction: float | None  # mean rating 1-5
    rated: int
    reply_days: tuple[int, ...] = ()


@dataclass(frozen=True)
class CommentFigure:
    """Comments under one account's WeChat articles or Weibo posts in a period."""

    target: str  # "wechat:main", "weibo:main"
    received: int
    hidden: int  # spam or abuse, hidden by staff: nothing to answer
    answered: int  # a reply was written (and is shown under the comment)

    @property
    def answer_rate(self) -> float | None:
        """Answered share of the comments that call for an answer (hidden ones don't)."""
        open_ = self.received - self.hidden
        return self.answered / open_ if open_ else None


def comment_totals(rows: Sequence[CommentFigure]) -> CommentFigure:
    """All accounts together."""
    return CommentFigure(
        "all",
        sum(r.received for r in rows),
        sum(r.hidden for r in rows),
        sum(r.answered for r in rows),
    )


@dataclass(frozen=True)
class ColumnFigure:
    """One website column's freshness."""

    key: str
    items: int
    last_published_at: datetime | None
    stale: bool
    empty: bool


@dataclass(frozen=True)
class Figures:
    """Everything the console, the annual report and the charts show for one period."""

    period: Period
    office_key: str | None
    account: str | None
    published: int
    by_category: dict[str, int]
    by_kind: dict[str, int]
    by_channel: dict[str, int]
    by_issuing_body: dict[str, int]
    by_month: dict[str, dict[str, int]]
    press_conferences: int
    normative_issued: int
    normative_repealed: int
    normative_in_force: int
    average_disclosure_days: float | None
    late_items: list[LateItem]
    hits: int | None
    top_hits: list[tuple[int, str, int]]
    cases: CaseFigures | None
    accounts: list[AccountActivity]
    columns: list[ColumnFigure] | None
    notes: list[str] = field(default_factory=list)
    comments: list[CommentFigure] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def case_figures_of(
    rows: Sequence[tuple[str, datetime, datetime | None, int | None]],
    calendar: WorkCalendar,
    zone: ZoneInfo,
) -> CaseFigures:
    """Pure: figures from (state, received_at, replied_at, rating) of the period's cases."""
    received = len(rows)
    rejected = sum(1 for state, *_ in rows if state == CaseState.REJECTED.value)
    days = [
        working_days_between(got, replied, calendar, zone)
        for _state, got, replied, _r in rows
        if replied is not None
    ]
    ratings = [r for *_rest, r in rows if r is not None]
    valid = received - rejected
    return CaseFigures(
        received=received,
        rejected=rejected,
        answered=len(days),
        reply_rate=len(days) / valid if valid else None,
        median_reply_days=float(statistics.median(days)) if days else None,
        p90_reply_days=percentile(days, 90),
        within_5_share=(
            sum(1 for d in days if d <= REPLY_LIMIT_WORKING_DAYS) / len(days) if days else None
        ),
        satisfaction=sum(ratings) / len(ratings) if ratings else None,
        rated=len(ratings),
        reply_days=tuple(days),
    )


def account_activity(
    target: str,
    posts_in_period: int,
    last_post_at: datetime | None,
    as_of: datetime,
    period_days: float,
) -> AccountActivity:
    """Pure: an account's activity; silent when nothing went out in the last 2 weeks."""
    weeks = max(period_days, 1.0) / 7
    return AccountActivity(
        target=target,
        posts=posts_in_period,
        last_post_at=last_post_at,
        silent=last_post_at is None or as_of - last_post_at > SILENT_AFTER,
        posts_per_week=round(posts_in_period / weeks, 2),
    )


async def compute_figures(
    db: Database,
    period: Period,
    *,
    zone: ZoneInfo,
    office_key: str | None = None,
    account: str | None = None,
    accounts: Sequence[str] = (),
    now: datetime | None = None,
) -> Figures:
    """All figures of ``period`` (optionally one office, or one channel account)."""
    now = now or utcnow()
    start, end = period.bounds(zone)
    as_of = min(now, end)
    notes: list[str] = []
    async with db.sessions() as session:
        office_id = await _office_id(session, office_key)
        calendar = await load_calendar(session)
        if not calendar.holidays and not calendar.workdays:
            calendar = WorkCalendar.official()
            notes.append("节假日表为空，按内置法定节假日安排计算工作日")
        live = (
            Publication.state.in_(LIVE_STATES),
            Publication.published_at.is_not(None),
            Publication.published_at <= now,
        )
        stmt = select(
            Publication.id,
            Publication.kind,
            Publication.category,
            Publication.issuing_body,
            Publication.document_number,
            Publication.created_at,
            Publication.published_at,
            Publication.imported,
            Publication.title,
            Publication.index_number,
        ).where(*live, Publication.published_at >= start, Publication.published_at < end)
        if office_id is not None:
            stmt = stmt.where(Publication.office_id == office_id)
        if account is not None:
            channel, _, key = account.partition(":")
            stmt = stmt.where(
                Publication.id.in_(
                    select(Delivery.publication_id).where(
                        Delivery.channel == channel,
                        Delivery.account == (key or "main"),
                        Delivery.action == DeliveryAction.PUBLISH.value,
                        Delivery.state == DeliveryState.DONE.value,
                    )
                )
            )
        rows = (await session.execute(stmt)).all()

        by_category = {c.value: 0 for c in Category}
        by_kind = {k.value: 0 for k in Kind}
        bodies: Counter[str] = Counter()
        by_month = {m: {c.value: 0 for c in Category} for m in period.months()}
        normative_issued = 0
        delays: list[int] = []
        late: list[LateItem] = []
        for row in rows:
            by_category[row.category] = by_category.get(row.category, 0) + 1
            by_kind[row.kind] = by_kind.get(row.kind, 0) + 1
            bodies[row.issuing_body] += 1
            month = row.published_at.astimezone(zone).strftime("%Y-%m")
            by_month.setdefault(month, {c.value: 0 for c in Category})[row.category] += 1
            if row.kind == Kind.DISCLOSURE.value and row.document_number:
                normative_issued += 1
            if row.imported:
                continue  # created here only as a copy: its creation date is not real
            days = working_days_between(row.created_at, row.published_at, calendar, zone)
            delays.append(days)
            if days > DISCLOSURE_LIMIT_WORKING_DAYS:
                late.append(
                    LateItem(
                        row.id, row.title, row.index_number, row.created_at, row.published_at, days
                    )
                )

        normative = (
            Publication.kind == Kind.DISCLOSURE.value,
            Publication.document_number.is_not(None),
        )
        office_filter = () if office_id is None else (Publication.office_id == office_id,)
        repealed = await _repealed_between(session, start, end, *normative, *office_filter, *live)
        in_force = await _count(
            session,
            *normative,
            *office_filter,
            *live,
            Publication.validity.in_([Validity.IN_FORCE.value, Validity.AMENDED.value]),
            Publication.published_at < end,
        )
        by_channel = await _deliveries_by_target(session, start, end, office_id, account)
        activity = await _accounts(session, start, end, as_of, office_id, accounts, account)
        hits, top = await _hits(session, [r.id for r in rows])
        cases = await _cases(session, start, end, office_id, calendar, zone)
        comments = await _comments(session, start, end, office_id, account)
    columns = await _columns(db, now)
    if columns is None:
        notes.append("网站栏目统计暂不可用")
    return Figures(
        period=period,
        office_key=office_key,
        account=account,
        published=len(rows),
        by_category=by_category,
        by_kind=by_kind,
        by_channel=by_channel,
        by_issuing_body=dict(bodies.most_common()),
        by_month=dict(sorted(by_month.items())),
        press_conferences=by_kind.get(Kind.PRESS_CONFERENCE.value, 0),
        normative_issued=normative_issued,
        normative_repealed=repealed,
        normative_in_force=in_force,
        average_disclosure_days=round(sum(delays) / len(delays), 2) if delays else None,
        late_items=sorted(late, key=lambda i: -i.working_days),
        hits=hits,
        top_hits=top,
        cases=cases,
        accounts=activity,
        columns=columns,
        notes=notes,
        comments=comments,
    )


async def _office_id(session: AsyncSession, office_key: str | None) -> int | None:
    if office_key is None:
        return None
    office_id = (
        await session.execute(select(Office.id).where(Office.key == office_key))
    ).scalar_one_or_none()
    if office_id is None:
        from publisher.errors import NotFound

        raise NotFound(f"no office {office_key!r}")
    return int(office_id)


ENDED = (Validity.REPEALED.value, Validity.EXPIRED.value)
_CHUNK = 500  # ids per IN (...) query


def repeal_time(versions: Sequence[tuple[str, datetime]]) -> datetime | None:
    """When the document last became repealed or expired, from its versions in order
    (``(validity, edited_at)``); None when its last version is not repealed."""
    since: datetime | None = None
    for validity, edited_at in versions:
        if validity in ENDED:
            since = since or edited_at
        else:
            since = None
    return since


async def _repealed_between(
    session: AsyncSession, start: datetime, end: datetime, *where: Any
) -> int:
    """Normative documents repealed (or expired) in the period. The repeal date is the
    edit that changed the validity, from the version history; ``updated_at`` (which any
    later edit moves) only when there is no history, e.g. imported documents."""
    rows = (
        await session.execute(
            select(Publication.id, Publication.updated_at).where(
                *where, Publication.validity.in_(ENDED)
            )
        )
    ).all()
    history: dict[int, list[tuple[str, datetime]]] = {}
    ids = [r.id for r in rows]
    for i in range(0, len(ids), _CHUNK):
        versions = await session.execute(
            select(
                PublicationVersion.publication_id,
                PublicationVersion.snapshot,
                PublicationVersion.edited_at,
            )
            .where(PublicationVersion.publication_id.in_(ids[i : i + _CHUNK]))
            .order_by(PublicationVersion.publication_id, PublicationVersion.version)
        )
        for row in versions:
            snapshot = cast(dict[str, Any] | None, row.snapshot) or {}
            history.setdefault(int(row.publication_id), []).append(
                (str(snapshot.get("validity", "")), cast(datetime, row.edited_at))
            )
    count = 0
    for row in rows:
        when = repeal_time(history.get(row.id, [])) or row.updated_at
        if start <= when < end:
            count += 1
    return count


async def _count(session: AsyncSession, *where: Any) -> int:
    stmt = select(func.count()).select_from(Publication).where(*where)
    return int((await session.execute(stmt)).scalar_one())


def _done_publish(start: datetime, end: datetime) -> tuple[Any, ...]:
    return (
        Delivery.action == DeliveryAction.PUBLISH.value,
        Delivery.state == DeliveryState.DONE.value,
        Delivery.done_at >= start,
        Delivery.done_at < end,
    )


async def _deliveries_by_target(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    office_id: int | None,
    account: str | None,
) -> dict[str, int]:
    stmt = (
        select(Delivery.channel, Delivery.account, func.count())
        .where(*_done_publish(start, end))
        .group_by(Delivery.channel, Delivery.account)
    )
    if office_id is not None:
        stmt = stmt.join(Publication, Publication.id == Delivery.publication_id).where(
            Publication.office_id == office_id
        )
    out = {}
    for channel, key, count in (await session.execute(stmt)).all():
        target = "website" if channel == "website" else f"{channel}:{key}"
        if account is None or target == account:
            out[target] = int(count)
    return dict(sorted(out.items()))


async def _accounts(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    as_of: datetime,
    office_id: int | None,
    configured: Sequence[str],
    account: str | None,
) -> list[AccountActivity]:
    base = select(Delivery.channel, Delivery.account).where(
        Delivery.channel.in_(SOCIAL_CHANNELS),
        Delivery.action == DeliveryAction.PUBLISH.value,
        Delivery.state == DeliveryState.DONE.value,
    )
    if office_id is not None:
        base = base.join(Publication, Publication.id == Delivery.publication_id).where(
            Publication.office_id == office_id
        )
    period_rows = await session.execute(
        base.add_columns(func.count())
        .where(Delivery.done_at >= start, Delivery.done_at < end)
        .group_by(Delivery.channel, Delivery.account)
    )
    posts = {f"{c}:{a}": int(cast(int, n)) for c, a, n in period_rows.all()}
    last_rows = await session.execute(
        base.add_columns(func.max(Delivery.done_at))
        .where(Delivery.done_at <= as_of)
        .group_by(Delivery.channel, Delivery.account)
    )
    last = {f"{c}:{a}": cast("datetime | None", when) for c, a, when in last_rows.all()}
    targets = {t for t in configured if t.split(":", 1)[0] in SOCIAL_CHANNELS}
    targets |= set(posts) | set(last)
    if account is not None:
        targets &= {account}
    days = (min(as_of, end) - start).total_seconds() / 86400
    return [account_activity(t, posts.get(t, 0), last.get(t), as_of, days) for t in sorted(targets)]


async def _hits(
    session: AsyncSession, publication_ids: list[int]
) -> tuple[int | None, list[tuple[int, str, int]]]:
    try:
        from website.models import HitCount
    except ImportError:  # the website package keeps no hit counter in this build
        return None, []
    total = 0
    top: list[tuple[int, str, int]] = []
    # Chunked IN lists: a year can hold 40,000 items.
    for i in range(0, len(publication_ids), 500):
        chunk = publication_ids[i : i + 500]
        rows = await session.execute(
            select(HitCount.publication_id, Publication.title, HitCount.hits)
            .join(Publication, Publication.id == HitCount.publication_id)
            .where(HitCount.publication_id.in_(chunk))
        )
        for pid, title, hits in rows.all():
            total += int(hits)
            top.append((int(pid), str(title), int(hits)))
    top.sort(key=lambda t: (-t[2], t[0]))
    return total, top[:10]


async def _comments(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    office_id: int | None,
    account: str | None,
) -> list[CommentFigure]:
    """Comments received in the period (by when they were written), per account."""
    from bot.comments.models import Comment

    answered = case((and_(Comment.hidden.is_(False), Comment.reply_text.is_not(None)), 1), else_=0)
    hidden = case((Comment.hidden.is_(True), 1), else_=0)
    stmt = (
        select(
            Comment.platform,
            Comment.account,
            func.count(),
            func.sum(hidden),
            func.sum(answered),
        )
        .where(Comment.remote_created_at >= start, Comment.remote_created_at < end)
        .group_by(Comment.platform, Comment.account)
    )
    if office_id is not None:
        stmt = stmt.join(Publication, Publication.id == Comment.publication_id).where(
            Publication.office_id == office_id
        )
    if account is not None:
        channel, _, key = account.partition(":")
        stmt = stmt.where(Comment.platform == channel, Comment.account == (key or "main"))
    rows = (await session.execute(stmt)).all()
    return sorted(
        (
            CommentFigure(f"{platform}:{acct}", int(n), int(h or 0), int(a or 0))
            for platform, acct, n, h, a in rows
        ),
        key=lambda c: c.target,
    )


async def _cases(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    office_id: int | None,
    calendar: WorkCalendar,
    zone: ZoneInfo,
) -> CaseFigures:
    stmt = select(Case.state, Case.received_at, Case.replied_at, Case.rating).where(
        Case.received_at >= start, Case.received_at < end
    )
    if office_id is not None:
        stmt = stmt.where(Case.office_id == office_id)
    rows = [(r[0], r[1], r[2], r[3]) for r in (await session.execute(stmt)).all()]
    return case_figures_of(rows, calendar, zone)


async def _columns(db: Database, now: datetime) -> list[ColumnFigure] | None:
    try:
        from website.columns import column_status
    except ImportError:  # no website columns in this build
        return None
    statuses = await column_status(db, now)
    return [
        ColumnFigure(s.key, s.items, s.last_published_at, s.overdue and not s.empty, s.empty)
        for s in statuses
    ]
