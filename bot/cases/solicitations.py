"""Solicitations (意见征集): the length of the window, opinions while it is open, and the
adoption report at close."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.calendar import WorkCalendar, local_date, working_days_between
from bot.cases.models import AdoptionReport, Opinion
from publisher import audit
from publisher.errors import NotFound, ValidationError, WorkflowError
from publisher.models import Kind, Publication, Role
from publisher.orm import utcnow
from publisher.staff import StaffMember

MAJOR_DECISION_DAYS = 30
NORMATIVE_WORKING_DAYS = 7


def check_window(
    opens_at: datetime | None,
    closes_at: datetime | None,
    basis: str | None,
    calendar: WorkCalendar,
    zone: ZoneInfo,
) -> None:
    """Raise ValidationError unless the window is long enough for its basis: >= 30 days
    for a major decision, >= 7 working days for a normative document (opening day
    excluded, closing day included)."""
    if opens_at is None or closes_at is None:
        raise ValidationError("solicitation", "a solicitation needs an opening and closing time")
    if closes_at <= opens_at:
        raise ValidationError("solicitation_closes_at", "must be after the opening time")
    if basis == "major_decision":
        days = (local_date(closes_at, zone) - local_date(opens_at, zone)).days
        if days < MAJOR_DECISION_DAYS:
            raise ValidationError(
                "solicitation_closes_at",
                f"重大决策征求意见不少于{MAJOR_DECISION_DAYS}日 (major decisions: at least "
                f"{MAJOR_DECISION_DAYS} days; this window has {days})",
            )
    elif basis == "normative":
        days = working_days_between(opens_at, closes_at, calendar, zone)
        if days < NORMATIVE_WORKING_DAYS:
            raise ValidationError(
                "solicitation_closes_at",
                f"规范性文件征求意见不少于{NORMATIVE_WORKING_DAYS}个工作日 (normative documents: "
                f"at least {NORMATIVE_WORKING_DAYS} working days; this window has {days})",
            )
    else:
        raise ValidationError("solicitation_basis", "must be major_decision or normative")


def approval_rule(calendar_loader: Any, zone: ZoneInfo) -> Any:
    """A hook for the core's final approval: checks solicitation windows (others pass)."""

    async def rule(session: AsyncSession, publication: Publication) -> None:
        if publication.kind != Kind.SOLICITATION.value:
            return
        calendar = await calendar_loader(session)
        check_window(
            publication.solicitation_opens_at,
            publication.solicitation_closes_at,
            publication.solicitation_basis,
            calendar,
            zone,
        )

    return rule


async def open_solicitation(
    session: AsyncSession, publication_id: int, now: datetime
) -> Publication:
    """The solicitation if it is published and open now, else a typed error."""
    pub = await session.get(Publication, publication_id)
    if pub is None or pub.kind != Kind.SOLICITATION.value or pub.state != "published":
        raise NotFound(f"no open solicitation {publication_id}")
    opens, closes = pub.solicitation_opens_at, pub.solicitation_closes_at
    if opens is None or closes is None or not opens <= now < closes:
        raise WorkflowError("该意见征集不在征集期内。This solicitation is not open.")
    return pub


async def add_opinion(
    session: AsyncSession,
    publication_id: int,
    text: str,
    channel: str,
    *,
    contact_name: str = "",
    origin_hash: str | None = None,
    remote_id: str | None = None,
    now: datetime | None = None,
) -> Opinion:
    """Record a citizen's opinion while the solicitation is open."""
    now = now or utcnow()
    await open_solicitation(session, publication_id, now)
    text = text.replace("\x00", "").strip()
    if not 1 <= len(text) <= 5000:
        raise ValidationError("text", "1-5000 characters")
    opinion = Opinion(
        publication_id=publication_id,
        channel=channel,
        text=text,
        contact_name=contact_name.strip()[:100],
        origin_hash=origin_hash,
        remote_id=remote_id,
        created_at=now,
    )
    session.add(opinion)
    await session.flush()
    return opinion


async def opinion_count(session: AsyncSession, publication_id: int) -> int:
    """How many opinions a solicitation received."""
    return (
        await session.execute(
            select(func.count())
            .select_from(Opinion)
            .where(Opinion.publication_id == publication_id)
        )
    ).scalar_one()


async def publish_report(
    session: AsyncSession,
    member: StaffMember,
    publication_id: int,
    summary: str,
    items: list[dict[str, Any]],
    *,
    now: datetime | None = None,
    origin: str = "",
) -> AdoptionReport:
    """Store the adoption report (after the window closed); replaces an earlier one."""
    now = now or utcnow()
    pub = await session.get(Publication, publication_id)
    if pub is None or pub.kind != Kind.SOLICITATION.value:
        raise NotFound(f"no solicitation {publication_id}")
    member.require(pub.office_id, Role.EDITOR, Role.RESPONDER)
    if pub.solicitation_closes_at is None or now < pub.solicitation_closes_at:
        raise WorkflowError("the adoption report is published after the window closes")
    summary = summary.strip()
    if not 1 <= len(summary) <= 10000:
        raise ValidationError("summary", "1-10000 characters")
    clean: list[dict[str, Any]] = []
    for i, item in enumerate(items[:1000]):
        opinion, reason = str(item.get("opinion", "")).strip(), str(item.get("reason", "")).strip()
        adopted = item.get("adopted")
        if not opinion or not isinstance(adopted, bool) or (not adopted and not reason):
            raise ValidationError(
                f"items[{i}]", "opinion, adopted (true/false) and, if not adopted, the reason"
            )
        clean.append({"opinion": opinion[:2000], "adopted": adopted, "reason": reason[:2000]})
    report = await session.get(AdoptionReport, publication_id)
    if report is None:
        report = AdoptionReport(publication_id=publication_id, summary=summary)
        session.add(report)
    report.summary, report.items = summary, clean
    report.published_at, report.published_by = now, member.user_id
    audit.record(
        session,
        member.actor(origin),
        "solicitation.report",
        "publication",
        publication_id,
        office_id=pub.office_id,
        items=len(clean),
    )
    return report


def default_closes(opens_at: datetime, days: int = MAJOR_DECISION_DAYS) -> datetime:
    """A closing time ``days`` calendar days after opening."""
    return opens_at + timedelta(days=days)
