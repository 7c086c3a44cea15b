"""The life of a case through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.cases import deadlines, service
from bot.cases.models import Case, CaseEvent, CaseMessage, CaseNotification, CaseState
from publisher.db import Database
from publisher.errors import NotFound, PermissionDenied, ValidationError, WorkflowError
from publisher.models import AuditEntry
from publisher.staff import StaffMember
from tests.bot.cases.helpers import RULES, new_case

# Friday 2026-09-18, 10:00 in Shanghai: 5 working days run over Sunday 20 September
# (a make-up working day) -> Mon 21, Tue 22, Wed 23, Thu 24 = the 5th is Thursday 24th.
FRIDAY = datetime(2026, 9, 18, 2, 0, tzinfo=UTC)


async def test_numbers_are_sequential_per_day_and_unique_under_concurrency(db: Database) -> None:
    first = await new_case(db, FRIDAY)
    second = await new_case(db, FRIDAY + timedelta(hours=1))
    assert first[1] == "GC20260918-0001" and second[1] == "GC20260918-0002"
    next_day = await new_case(db, FRIDAY + timedelta(days=1))
    assert next_day[1] == "GC20260919-0001"
    many = await asyncio.gather(*(new_case(db, FRIDAY) for _ in range(8)))
    assert len({n for _, n, _ in many}) == 8


async def test_deadline_counts_the_make_up_sunday(db: Database) -> None:
    case_id, _, _ = await new_case(db, FRIDAY)
    async with db.sessions() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        assert service.due_date(case, RULES.zone).isoformat() == "2026-09-24"


async def test_whole_life_with_roles_and_audit(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    responder, admin, editor = (
        staff_members["responder"],
        staff_members["admin"],
        staff_members["editor"],
    )
    case_id, number, secret = await new_case(db, FRIDAY)
    t = FRIDAY + timedelta(hours=1)
    async with db.transaction() as session:
        with pytest.raises(NotFound):
            await service.accept(session, editor, case_id, now=t)
        with pytest.raises(PermissionDenied):
            await service.list_cases(session, editor, 1)
    async with db.transaction() as session:
        await service.accept(session, responder, case_id, now=t)
        await service.assign(session, admin, case_id, "城管局", responder.user_id, now=t)
        await service.note(session, responder, case_id, "已联系路灯所", now=t)
        with pytest.raises(ValidationError):
            await service.transfer(session, admin, case_id, "城管局", editor.user_id, "x", now=t)
    async with db.transaction() as session:
        case = await service.extend(
            session,
            responder,
            RULES,
            await service.load_calendar(session),
            case_id,
            "需现场勘查",
            now=t,
        )
        assert case.limit_working_days == 10
        with pytest.raises(ValidationError):
            service.extended_deadline(case, RULES, await service.load_calendar(session), 6)
        await service.transfer(
            session, admin, case_id, "医保局", responder.user_id, "职责调整", now=t
        )
    async with db.transaction() as session:
        case = await service.reply(
            session,
            responder,
            case_id,
            "已修复，联系电话13912345678",
            base_url="http://x",
            now=t + timedelta(days=2),
        )
        assert case.state == CaseState.REPLIED.value
        with pytest.raises(WorkflowError):
            await service.accept(session, responder, case_id, now=t)
    async with db.transaction() as session:
        found = await service.open_with_secret(session, number, secret)
        assert found is not None
        await service.rate(session, found, 5, now=t + timedelta(days=3))
        with pytest.raises(WorkflowError):
            await service.rate(session, found, 4)
    async with db.transaction() as session:
        q, a = service.proposed_publication(await service.get_case(session, admin, case_id))
        assert "13912345678" not in a
        case = await service.publish_case(session, admin, case_id, q, a + " 张伟", now=t)
        assert "张伟" not in (case.public_answer or "")
        await service.close(session, responder, case_id, now=t)
    async with db.sessions() as session:
        actions = list(
            (
                await session.execute(
                    select(AuditEntry.action)
                    .where(AuditEntry.object_type == "case", AuditEntry.object_id == str(case_id))
                    .order_by(AuditEntry.id)
                )
            ).scalars()
        )
        assert actions == [
            "case.receive",
            "case.accept",
            "case.assign",
            "case.note",
            "case.extend",
            "case.transfer",
            "case.reply",
            "case.rate",
            "case.publish",
            "case.close",
        ]
        messages = list((await session.execute(select(CaseMessage))).scalars())
        assert [m.purpose for m in messages] == ["reply"]
        events = await service.events_of(session, admin, case_id)
        assert any(e.action == "note" and e.internal for e in events)


async def test_reject_needs_a_configured_reason_and_tells_the_citizen(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    case_id, _, _ = await new_case(db, FRIDAY)
    async with db.transaction() as session:
        with pytest.raises(ValidationError):
            await service.reject(session, staff_members["responder"], RULES, case_id, "心情不好")
        case = await service.reject(session, staff_members["responder"], RULES, case_id, "广告信息")
        assert case.state == "rejected"
    async with db.sessions() as session:
        message = (await session.execute(select(CaseMessage))).scalar_one()
        assert message.purpose == "rejected" and "广告信息" in message.text


async def test_secrets_and_numbers_do_not_open_other_cases(db: Database) -> None:
    _, number_a, secret_a = await new_case(db, FRIDAY)
    _, number_b, secret_b = await new_case(db, FRIDAY)
    async with db.sessions() as session:
        assert await service.open_with_secret(session, number_a, secret_b) is None
        assert await service.open_with_secret(session, number_b, secret_a) is None
        assert await service.open_with_secret(session, number_a, "") is None
        assert await service.open_with_secret(session, "GC1' OR 1=1", secret_a) is None
        assert await service.open_with_secret(session, number_a, "x" * 100000) is None
        assert (await service.open_with_secret(session, number_a.lower(), secret_a)) is not None


async def test_extension_never_past_three_months(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    case_id, _, _ = await new_case(db, FRIDAY)
    rules = service.CaseRules(max_total_working_days=200, max_months=3)
    async with db.transaction() as session:
        cal = await service.load_calendar(session)
        case = await service.get_case(session, staff_members["admin"], case_id)
        limit, _ = service.extended_deadline(case, rules, cal, 40)
        assert limit == 45
        with pytest.raises(ValidationError, match="3 months"):
            service.extended_deadline(case, rules, cal, 80)


async def test_list_puts_overdue_first(db: Database, staff_members: dict[str, StaffMember]) -> None:
    old_id, _, _ = await new_case(db, FRIDAY - timedelta(days=30))
    new_id, _, _ = await new_case(db, FRIDAY)
    async with db.sessions() as session:
        rows = await service.list_cases(session, staff_members["responder"], 1, now=FRIDAY)
        assert [r.id for r in rows] == [old_id, new_id]
        rows = await service.list_cases(
            session, staff_members["responder"], 1, state="replied", now=FRIDAY
        )
        assert rows == []


async def test_reminders_and_escalation_once_per_stage(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    responder, admin = staff_members["responder"], staff_members["admin"]
    case_id, _, _ = await new_case(db, FRIDAY)
    async with db.transaction() as session:
        await service.ensure_department(session, 1, "城管局", head_user_id=admin.user_id)
        await service.assign(session, admin, case_id, "城管局", responder.user_id, now=FRIDAY)

    async def tick(at: datetime) -> int:
        async with db.transaction() as session:
            return await deadlines.remind(
                session, RULES, await service.load_calendar(session), now=at
            )

    assert await tick(FRIDAY) == 0
    # Wednesday 23 Sept: one working day left (Thursday 24th) -> reminder to the responder.
    wednesday = datetime(2026, 9, 23, 2, tzinfo=UTC)
    assert await tick(wednesday) == 1
    assert await tick(wednesday) == 0
    # Friday 25 Sept (a holiday, too): overdue -> responder and department head.
    assert await tick(datetime(2026, 9, 25, 2, tzinfo=UTC)) == 2
    assert await tick(datetime(2026, 9, 28, 2, tzinfo=UTC)) == 0
    async with db.sessions() as session:
        rows = list((await session.execute(select(CaseNotification))).scalars())
        assert sorted((r.stage, r.user_id) for r in rows) == sorted(
            [
                ("due_soon", responder.user_id),
                ("overdue", responder.user_id),
                ("overdue", admin.user_id),
            ]
        )
        mine = await deadlines.notifications_for(session, admin.user_id)
        assert len(mine) == 1 and "GC20260918" in mine[0].message
        events = list((await session.execute(select(CaseEvent))).scalars())
        assert events


async def test_bad_input_is_refused_and_nothing_is_written(db: Database) -> None:
    for kwargs in ({"text": ""}, {"text": "x" * 6000}, {"channel": "fax"}):
        with pytest.raises(ValidationError):
            await new_case(db, FRIDAY, **kwargs)  # type: ignore[arg-type]
    async with db.sessions() as session:
        assert (await session.execute(select(Case))).first() is None


async def test_inbox_summary_and_item_interaction(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    await new_case(db, FRIDAY - timedelta(days=30))
    await new_case(db, FRIDAY)
    now = datetime(2026, 9, 24, 2, tzinfo=UTC)  # the second case is due at the end of today
    async with db.sessions() as session:
        summary = await service.inbox_summary(session, staff_members["responder"], 1, now=now)
        assert (summary.received, summary.open, summary.overdue, summary.due_within_a_day) == (
            2,
            2,
            1,
            1,
        )
        with pytest.raises(PermissionDenied):
            await service.inbox_summary(session, staff_members["editor"], 1)
        seen = await service.item_interaction(session, 424242)
        assert (seen.hits, seen.feedback) == (0, 0)
