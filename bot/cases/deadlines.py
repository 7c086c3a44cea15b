"""Deadline reminders before the reply is due and escalation after, to the responder and
the department head (office admins when nobody is assigned): notification rows staff see,
written once per case, person and stage however often the tick runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.calendar import WorkCalendar, working_days_between
from bot.cases.models import Case, CaseNotification, Department
from bot.cases.service import OPEN_STATES, CaseRules, _dialect_insert, due_date
from publisher.models import Membership, Role
from publisher.orm import utcnow

DUE_SOON = "due_soon"
OVERDUE = "overdue"


def stage_of(case: Case, rules: CaseRules, calendar: WorkCalendar, now: datetime) -> str | None:
    """``overdue``, ``due_soon`` (within the reminder window, in working days) or None."""
    if now >= case.deadline_at:
        return OVERDUE
    left = working_days_between(
        now, case.deadline_at - timedelta(microseconds=1), calendar, rules.zone
    )
    return DUE_SOON if left <= rules.remind_working_days_before else None


async def _recipients(session: AsyncSession, case: Case, stage: str) -> set[int]:
    users: set[int] = set()
    if case.responder_id is not None:
        users.add(case.responder_id)
    if case.department and (stage == OVERDUE or case.responder_id is None):
        head = (
            await session.execute(
                select(Department.head_user_id).where(
                    Department.office_id == case.office_id, Department.name == case.department
                )
            )
        ).scalar_one_or_none()
        if head is not None:
            users.add(head)
    if not users:
        admins = await session.execute(
            select(Membership.user_id).where(
                Membership.office_id == case.office_id, Membership.role == Role.ADMIN.value
            )
        )
        users.update(admins.scalars())
    return users


async def remind(
    session: AsyncSession,
    rules: CaseRules,
    calendar: WorkCalendar,
    *,
    now: datetime | None = None,
) -> int:
    """Write due reminders and overdue escalations; returns how many were new."""
    now = now or utcnow()
    # A generous bound in calendar days keeps the scan to cases near their deadline.
    horizon = now + timedelta(days=rules.remind_working_days_before * 3 + 14)
    cases = (
        await session.execute(
            select(Case).where(Case.state.in_(OPEN_STATES), Case.deadline_at <= horizon)
        )
    ).scalars()
    builder = _dialect_insert(session)
    written = 0
    for case in list(cases):
        stage = stage_of(case, rules, calendar, now)
        if stage is None:
            continue
        due = due_date(case, rules.zone).isoformat()
        text = (
            f"案件 {case.number} 已超过答复期限（{due}），请尽快办理。"
            f"Case {case.number} is overdue."
            if stage == OVERDUE
            else f"案件 {case.number} 将于 {due} 到期。Case {case.number} is due on {due}."
        )
        for user_id in sorted(await _recipients(session, case, stage)):
            result = await session.execute(
                builder(CaseNotification)
                .values(case_id=case.id, user_id=user_id, stage=stage, message=text, created_at=now)
                .on_conflict_do_nothing(index_elements=["case_id", "user_id", "stage"])
            )
            written += max(0, getattr(result, "rowcount", 0) or 0)
    return written


async def notifications_for(
    session: AsyncSession, user_id: int, *, unread_only: bool = True, limit: int = 100
) -> list[CaseNotification]:
    """A staff member's case notifications, newest first."""
    stmt = select(CaseNotification).where(CaseNotification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(CaseNotification.read_at.is_(None))
    stmt = stmt.order_by(CaseNotification.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
