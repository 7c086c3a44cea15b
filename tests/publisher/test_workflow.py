"""The review workflow refuses every illegal transition with a clear error."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from publisher import audit, workflow
from publisher.db import Database
from publisher.errors import PermissionDenied, ValidationError, WorkflowError
from publisher.models import AuditEntry, Publication, PublicationVersion, Review
from publisher.orm import utcnow
from publisher.staff import StaffMember
from tests.publisher.helpers import approve_through, core, create_draft, sample

Members = dict[str, StaffMember]


async def _review(
    db: Database,
    pid: int,
    member: StaffMember,
    approve: bool = True,
    comment: str = "ok",
    steps: int = 3,
) -> Publication:
    async with db.transaction() as session:
        return await workflow.review(
            session, core(review_steps=steps), pid, member, approve=approve, comment=comment
        )


async def _submit(db: Database, pid: int) -> None:
    async with db.transaction() as session:
        await workflow.submit(session, pid, audit.CLI)


async def test_three_steps_record_reviewer_time_and_comment(
    db: Database, staff_members: Members
) -> None:
    draft = await create_draft(db, core(), staff_members["editor"])
    await _submit(db, draft.id)
    first = await _review(db, draft.id, staff_members["reviewer1"], comment="文字无误")
    assert first.state == "in_review" and first.review_step == 1
    second = await _review(db, draft.id, staff_members["reviewer2"], comment="事实依据充分")
    assert second.review_step == 2 and second.index_number is None
    final = await _review(db, draft.id, staff_members["approver"], comment="同意发布")
    assert final.state == "queued"
    assert re.fullmatch(r"11340000MB0000000X/\d{6}-00001", final.index_number or "")
    async with db.sessions() as session:
        reviews = list((await session.execute(select(Review).order_by(Review.step))).scalars())
        actions = [
            a.action
            for a in (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()
        ]
    assert [(r.step, r.reviewer_id, r.comment) for r in reviews] == [
        (1, staff_members["reviewer1"].user_id, "文字无误"),
        (2, staff_members["reviewer2"].user_id, "事实依据充分"),
        (3, staff_members["approver"].user_id, "同意发布"),
    ]
    assert all(r.decided_at is not None for r in reviews)
    assert actions == [
        "publication.create",
        "publication.submit",
        "publication.approve_step",
        "publication.approve_step",
        "publication.approve_step",
        "publication.approve",
    ]


@pytest.mark.parametrize("steps,sequence", [(1, ["approver"]), (2, ["reviewer1", "approver"])])
async def test_configurable_number_of_steps(
    db: Database, staff_members: Members, steps: int, sequence: list[str]
) -> None:
    config = core(review_steps=steps)
    draft = await create_draft(db, config, staff_members["editor"])
    await _submit(db, draft.id)
    for name in sequence:
        publication = await _review(db, draft.id, staff_members[name], steps=steps)
    assert publication.state == "queued"


async def test_nobody_approves_their_own_draft(db: Database, staff_members: Members) -> None:
    approver = staff_members["approver"]
    config = core(review_steps=1)
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        draft = await workflow.create(session, config, office, sample(), approver.actor())
    await _submit(db, draft.id)
    with pytest.raises(PermissionDenied, match="own draft"):
        await _review(db, draft.id, approver, steps=1)


async def test_each_step_needs_the_right_role_and_a_different_person(
    db: Database, staff_members: Members
) -> None:
    draft = await create_draft(db, core(), staff_members["editor"])
    await _submit(db, draft.id)
    with pytest.raises(PermissionDenied, match="reviewer"):
        await _review(db, draft.id, staff_members["editor2"])
    with pytest.raises(PermissionDenied, match="reviewer"):
        await _review(db, draft.id, staff_members["responder"])
    await _review(db, draft.id, staff_members["reviewer1"])
    with pytest.raises(PermissionDenied, match="different reviewer"):
        await _review(db, draft.id, staff_members["reviewer1"])
    await _review(db, draft.id, staff_members["reviewer2"])
    # The final approval needs the approver role: a reviewer cannot give it.
    with pytest.raises(PermissionDenied, match="approver"):
        await _review(db, draft.id, staff_members["reviewer1"])
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
    assert (
        publication is not None
        and publication.review_step == 2
        and publication.state == "in_review"
    )


async def test_rejection_returns_the_draft_with_its_reason(
    db: Database, staff_members: Members
) -> None:
    draft = await create_draft(db, core(), staff_members["editor"])
    await _submit(db, draft.id)
    await _review(db, draft.id, staff_members["reviewer1"])
    with pytest.raises(ValidationError, match="reason"):
        await _review(db, draft.id, staff_members["reviewer2"], approve=False, comment="  ")
    rejected = await _review(
        db, draft.id, staff_members["reviewer2"], approve=False, comment="文号有误"
    )
    assert rejected.state == "draft" and rejected.review_step == 0
    assert rejected.rejection_reason == "文号有误"
    # After editing and resubmitting, review starts again at the first step.
    async with db.transaction() as session:
        edited = await workflow.edit(
            session,
            core(),
            draft.id,
            sample(document_number="示医保〔2026〕3号"),
            staff_members["editor"].actor(),
            member=staff_members["editor"],
        )
    assert edited.version == 2
    await _submit(db, draft.id)
    again = await _review(db, draft.id, staff_members["reviewer1"])
    assert again.review_step == 1


@pytest.mark.parametrize(
    "action", ["review", "edit_in_review", "withdraw_draft", "submit_twice", "correct_draft"]
)
async def test_illegal_transitions_are_refused(
    db: Database, staff_members: Members, action: str
) -> None:
    draft = await create_draft(db, core(), staff_members["editor"])
    async with db.transaction() as session:
        if action == "review":
            with pytest.raises(WorkflowError, match="not in review"):
                await workflow.review(
                    session, core(), draft.id, staff_members["reviewer1"], approve=True
                )
        elif action == "edit_in_review":
            await workflow.submit(session, draft.id, audit.CLI)
            with pytest.raises(WorkflowError, match="only drafts can be edited"):
                await workflow.edit(session, core(), draft.id, sample(), audit.CLI)
        elif action == "withdraw_draft":
            with pytest.raises(WorkflowError, match="never published"):
                await workflow.withdraw(session, draft.id, audit.CLI, reason="x")
        elif action == "submit_twice":
            await workflow.submit(session, draft.id, audit.CLI)
            with pytest.raises(WorkflowError, match="not a draft"):
                await workflow.submit(session, draft.id, audit.CLI)
        elif action == "correct_draft":
            with pytest.raises(WorkflowError, match="nothing to correct"):
                await workflow.correct(
                    session, core(), draft.id, sample(), staff_members["approver"], reason="x"
                )


async def test_withdrawing_twice_is_refused(db: Database, staff_members: Members) -> None:
    draft = await create_draft(db, core(), staff_members["editor"])
    await approve_through(db, core(), staff_members, draft.id)
    async with db.transaction() as session:
        with pytest.raises(ValidationError, match="reason"):
            await workflow.withdraw(session, draft.id, audit.CLI, reason=" ")
    async with db.transaction() as session:
        with pytest.raises(PermissionDenied):
            await workflow.withdraw(
                session, draft.id, audit.CLI, reason="错误", member=staff_members["editor"]
            )
    async with db.transaction() as session:
        await workflow.withdraw(session, draft.id, audit.CLI, reason="错误")
    async with db.transaction() as session:
        with pytest.raises(WorkflowError, match="already withdrawn"):
            await workflow.withdraw(session, draft.id, audit.CLI, reason="错误")


async def test_publication_date_can_never_be_in_the_past(
    db: Database, staff_members: Members
) -> None:
    past = (utcnow() - timedelta(days=1)).isoformat()
    with pytest.raises(ValidationError, match="past"):
        await create_draft(db, core(), staff_members["editor"], publish_at=past)
    draft = await create_draft(db, core(), staff_members["editor"])
    async with db.transaction() as session:
        with pytest.raises(ValidationError, match="past"):
            await workflow.schedule(
                session,
                draft.id,
                staff_members["editor"],
                publish_at=utcnow() - timedelta(hours=3),
            )
    # A schedule that lapses while in review must be set again before approval.
    soon = utcnow() + timedelta(seconds=1)
    async with db.transaction() as session:
        await workflow.schedule(session, draft.id, staff_members["editor"], publish_at=soon)
    await _submit(db, draft.id)
    await _review(db, draft.id, staff_members["reviewer1"])
    await _review(db, draft.id, staff_members["reviewer2"])
    with pytest.raises(ValidationError, match="has passed"):
        async with db.transaction() as session:
            await workflow.review(
                session,
                core(),
                draft.id,
                staff_members["approver"],
                approve=True,
                now=soon + timedelta(minutes=10),
            )
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
    # Nothing half-written: the failed approval left no index number and no deliveries.
    assert publication is not None and publication.index_number is None
    assert publication.state == "in_review" and publication.review_step == 2


async def test_index_numbers_are_sequential_unique_and_never_change(
    db: Database, staff_members: Members
) -> None:
    config = core()
    numbers = []
    for _ in range(3):
        draft = await create_draft(db, config, staff_members["editor"])
        numbers.append((await approve_through(db, config, staff_members, draft.id)).index_number)
    serials = [int(n.rsplit("-", 1)[1]) for n in numbers if n]
    assert serials == [1, 2, 3]
    assert len(set(numbers)) == 3
    # A correction keeps the catalog identity.
    async with db.transaction() as session:
        first = (
            await session.execute(select(Publication).where(Publication.index_number == numbers[0]))
        ).scalar_one()
        corrected = await workflow.correct(
            session,
            config,
            first.id,
            sample(title="更正后的标题"),
            staff_members["approver"],
            reason="标题",
        )
    assert corrected.index_number == numbers[0]


async def test_every_edit_is_kept_as_a_version(db: Database, staff_members: Members) -> None:
    draft = await create_draft(db, core(), staff_members["editor"])
    for title in ["第二稿", "第三稿"]:
        async with db.transaction() as session:
            await workflow.edit(
                session, core(), draft.id, sample(title=title), staff_members["editor"].actor()
            )
    async with db.sessions() as session:
        versions = list(
            (
                await session.execute(
                    select(PublicationVersion)
                    .where(PublicationVersion.publication_id == draft.id)
                    .order_by(PublicationVersion.version)
                )
            ).scalars()
        )
    assert [(v.version, v.snapshot["title"]) for v in versions] == [
        (1, "关于2026年城乡居民医保集中缴费的通知"),
        (2, "第二稿"),
        (3, "第三稿"),
    ]


async def test_channels_must_be_configured_and_include_the_website(
    db: Database, staff_members: Members
) -> None:
    with pytest.raises(ValidationError, match="not configured"):
        await create_draft(
            db, core(), staff_members["editor"], channels=["website", "weibo:nosuch"]
        )
    with pytest.raises(ValidationError, match="website is required"):
        await create_draft(db, core(), staff_members["editor"], channels=["fake:main"])


async def test_summary_length_rule(db: Database, staff_members: Members) -> None:
    with pytest.raises(ValidationError, match="at most 300"):
        await create_draft(db, core(), staff_members["editor"], summary="摘" * 301)
    draft = await create_draft(db, core(), staff_members["editor"])
    assert draft.summary.startswith("城乡居民医保2026年度集中缴费期为")
