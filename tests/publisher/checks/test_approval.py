"""Checks run again at final approval; blocking findings need an audited override."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from publisher import audit, workflow
from publisher.checks.approval import ChecksFailed
from publisher.checks.findings import Finding
from publisher.checks.lists import CheckLists
from publisher.checks.run import run_checks
from publisher.db import Database
from publisher.errors import ValidationError
from publisher.models import AuditEntry, Delivery, Publication, Review
from publisher.staff import StaffMember
from tests.publisher.helpers import core, create_draft

Members = dict[str, StaffMember]
LEAKY = "请联系经办人，手机13812345678。"


async def _to_final_step(db: Database, config: Any, members: Members, pid: int) -> None:
    async with db.transaction() as session:
        await workflow.submit(session, pid, audit.CLI)
    for name in ("reviewer1", "reviewer2"):
        async with db.transaction() as session:
            await workflow.review(session, config, pid, members[name], approve=True, comment="ok")


async def test_blocking_finding_refuses_approval_and_writes_nothing(
    db: Database, staff_members: Members
) -> None:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"], body=LEAKY)
    await _to_final_step(db, config, staff_members, draft.id)
    with pytest.raises(ChecksFailed) as caught:
        async with db.transaction() as session:
            await workflow.review(
                session, config, draft.id, staff_members["approver"], approve=True
            )
    assert isinstance(caught.value, ValidationError) and caught.value.field == "checks"
    # The derived summary repeats the body: both places are reported.
    assert [(f.field, f.code) for f in caught.value.findings] == [
        ("summary", "personal_mobile"),
        ("body", "personal_mobile"),
    ]
    assert "[body " in caught.value.message and "个人信息" in caught.value.message
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
        assert publication is not None and publication.state == "in_review"
        assert publication.review_step == 2 and publication.index_number is None
        assert (await session.execute(select(func.count()).select_from(Delivery))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(Review))).scalar_one() == 2


async def test_override_with_reason_is_audited(db: Database, staff_members: Members) -> None:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"], body=LEAKY)
    await _to_final_step(db, config, staff_members, draft.id)
    with pytest.raises(ChecksFailed):
        async with db.transaction() as session:
            await workflow.review(
                session,
                config,
                draft.id,
                staff_members["approver"],
                approve=True,
                checks_override="   ",
            )
    async with db.transaction() as session:
        publication = await workflow.review(
            session,
            config,
            draft.id,
            staff_members["approver"],
            approve=True,
            checks_override="该号码为单位公开的办事电话",
        )
    assert publication.state == "queued"
    async with db.sessions() as session:
        entry = (
            await session.execute(
                select(AuditEntry).where(AuditEntry.action == "publication.checks_override")
            )
        ).scalar_one()
    assert entry.actor == "approver" and entry.detail["reason"] == "该号码为单位公开的办事电话"
    assert [f["field"] for f in entry.detail["findings"]] == ["summary", "body"]


async def test_installed_hook_with_lists_is_used(db: Database, staff_members: Members) -> None:
    seen: list[int] = []

    async def hook(session: Any, publication: Any) -> Sequence[Finding]:
        seen.append(publication.id)
        return run_checks(publication, CheckLists(banned_words=("国家级最佳",)))

    config = dataclasses.replace(core(), content_checks=hook)
    draft = await create_draft(
        db, config, staff_members["editor"], body="本产品荣获国家级最佳称号。"
    )
    await _to_final_step(db, config, staff_members, draft.id)
    with pytest.raises(ChecksFailed) as caught:
        async with db.transaction() as session:
            await workflow.review(
                session, config, draft.id, staff_members["approver"], approve=True
            )
    assert seen == [draft.id]
    assert {f.code for f in caught.value.findings} == {"banned_word"}


async def test_warnings_do_not_block_and_rejection_runs_no_checks(
    db: Database, staff_members: Members
) -> None:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"], body="要认真布署,抓好落实。")
    await _to_final_step(db, config, staff_members, draft.id)
    async with db.transaction() as session:
        publication = await workflow.review(
            session, config, draft.id, staff_members["approver"], approve=True
        )
    assert publication.state == "queued"
    leaky = await create_draft(db, config, staff_members["editor"], body=LEAKY)
    await _to_final_step(db, config, staff_members, leaky.id)
    async with db.transaction() as session:
        rejected = await workflow.review(
            session, config, leaky.id, staff_members["approver"], approve=False, comment="请脱敏"
        )
    assert rejected.state == "draft"
