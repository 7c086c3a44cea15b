"""Solicitation windows enforced at approval, opinions while open, the adoption report."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from bot.cases import service, solicitations
from bot.cases.calendar import WorkCalendar
from publisher.db import Database
from publisher.errors import NotFound, ValidationError, WorkflowError
from publisher.models import Publication
from publisher.staff import StaffMember
from tests.publisher.helpers import approve_through, core, create_draft

ZONE = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar.official()


def at(day: str) -> datetime:
    return datetime.fromisoformat(day + "T09:00:00+08:00")


@pytest.mark.parametrize(
    ("opens", "closes", "basis", "ok"),
    [
        ("2026-11-02", "2026-12-02", "major_decision", True),  # 30 days
        ("2026-11-02", "2026-12-01", "major_decision", False),  # 29 days
        ("2026-11-02", "2026-11-11", "normative", True),  # Tue 3 .. Wed 11 = 7 working days
        ("2026-11-02", "2026-11-10", "normative", False),  # 6
        ("2026-09-28", "2026-10-08", "normative", False),  # 29, 30, (holidays), 8 = 3
        ("2026-09-28", "2026-10-12", "normative", False),  # + Fri 9, Sat 10 (worked), Mon 12 = 6
        ("2026-09-28", "2026-10-13", "normative", True),  # + Tue 13 = 7
        ("2026-11-02", "2026-12-30", "other", False),
        ("2026-11-02", "2026-11-01", "major_decision", False),
    ],
)
def test_window_table(opens: str, closes: str, basis: str, ok: bool) -> None:
    if ok:
        solicitations.check_window(at(opens), at(closes), basis, CAL, ZONE)
    else:
        with pytest.raises(ValidationError):
            solicitations.check_window(at(opens), at(closes), basis, CAL, ZONE)


async def _solicitation(db: Database, members: dict[str, StaffMember], days: int) -> int:
    config = dataclasses.replace(
        core(targets=("website",)),
        approval_rules=solicitations.approval_rule(service.load_calendar, ZONE),
    )
    opens = datetime(2026, 11, 2, 1, tzinfo=UTC)
    pub = await create_draft(
        db,
        config,
        members["editor"],
        kind="solicitation",
        solicitation_opens_at=opens,
        solicitation_closes_at=opens + timedelta(days=days),
        solicitation_basis="major_decision",
        channels=["website"],
    )
    await approve_through(db, config, members, pub.id)
    return pub.id


async def test_short_window_is_refused_at_approval(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    with pytest.raises(ValidationError, match="30"):
        await _solicitation(db, staff_members, 20)


async def test_opinions_while_open_and_the_report_after(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    pub_id = await _solicitation(db, staff_members, 31)
    async with db.transaction() as session:
        await session.execute(
            update(Publication).where(Publication.id == pub_id).values(state="published")
        )
    inside = datetime(2026, 11, 10, tzinfo=UTC)
    async with db.transaction() as session:
        await solicitations.add_opinion(session, pub_id, "建议延长缴费期", "web", now=inside)
        with pytest.raises(WorkflowError):
            await solicitations.add_opinion(
                session, pub_id, "太晚了", "web", now=datetime(2026, 12, 10, tzinfo=UTC)
            )
        with pytest.raises(NotFound):
            await solicitations.add_opinion(session, 999999, "x", "web", now=inside)
        with pytest.raises(WorkflowError):
            await solicitations.publish_report(
                session, staff_members["editor"], pub_id, "总结", [], now=inside
            )
        with pytest.raises(ValidationError):
            await solicitations.publish_report(
                session,
                staff_members["editor"],
                pub_id,
                "总结",
                [{"opinion": "x", "adopted": False}],
                now=datetime(2026, 12, 10, tzinfo=UTC),
            )
        report = await solicitations.publish_report(
            session,
            staff_members["editor"],
            pub_id,
            "共收到1条意见，采纳1条。",
            [{"opinion": "建议延长缴费期", "adopted": True, "reason": ""}],
            now=datetime(2026, 12, 10, tzinfo=UTC),
        )
        assert report.items[0]["adopted"] is True
        assert await solicitations.opinion_count(session, pub_id) == 1
