"""The publication workflow: create, edit, submit, review in 1-3 steps, schedule, approve
(writing the outbox in the same transaction), correct and withdraw.

Every function runs inside the caller's transaction and raises a typed error
(ValidationError, WorkflowError, PermissionDenied, NotFound) for anything it refuses, so a
refusal leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from publisher import audit, queue
from publisher.checks.approval import enforce_at_approval
from publisher.config import CoreConfig
from publisher.errors import NotFound, PermissionDenied, ValidationError, WorkflowError
from publisher.inputs import PublicationInput
from publisher.markup import derive_summary, html_to_text, summary_limit
from publisher.models import (
    Delivery,
    DeliveryAction,
    DeliveryState,
    IndexSerial,
    Kind,
    Office,
    Publication,
    PublicationState,
    PublicationVersion,
    Review,
    Role,
)
from publisher.orm import utcnow
from publisher.staff import StaffMember
from publisher.timing import after_quiet_hours

# Which role may decide each review step, by the number of steps configured.
STEP_ROLES: dict[int, tuple[Role, ...]] = {
    1: (Role.APPROVER,),
    2: (Role.REVIEWER, Role.APPROVER),
    3: (Role.REVIEWER, Role.REVIEWER, Role.APPROVER),
}
STEP_NAMES = {1: "first review", 2: "second review", 3: "final approval"}
URGENT_PRIORITY = 100
# Small allowance for clock skew between the client that chose a time and this server.
_PAST_TOLERANCE = timedelta(minutes=2)
_VERSIONED_FIELDS = (
    "title",
    "title_en",
    "body_html",
    "body_html_en",
    "body_source",
    "summary",
    "category",
    "issuing_body",
    "document_number",
    "written_on",
    "subject",
    "genre",
    "audience",
    "keywords",
    "source",
    "column_key",
    "validity",
    "explanation_url",
    "channels",
    "publish_at",
    "urgent",
    "push",
    "kind",
    "solicitation_opens_at",
    "solicitation_closes_at",
    "solicitation_basis",
)


def step_name(step: int, total: int) -> str:
    """The human name of review step ``step`` (1-based) out of ``total``."""
    if step == total:
        return STEP_NAMES[3]
    return STEP_NAMES[step]


async def get_publication(
    session: AsyncSession, publication_id: int, *, for_update: bool = False
) -> Publication:
    """Load a publication or raise NotFound."""
    stmt = select(Publication).where(Publication.id == publication_id)
    if for_update and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    publication = (await session.execute(stmt)).scalar_one_or_none()
    if publication is None:
        raise NotFound(f"no publication {publication_id}")
    return publication


async def office_by_key(session: AsyncSession, key: str) -> Office:
    """Load an office by its key or raise NotFound."""
    office = (await session.execute(select(Office).where(Office.key == key))).scalar_one_or_none()
    if office is None:
        raise NotFound(f"no office {key!r}")
    return office


def _targets(config: CoreConfig, office: Office, requested: list[str] | None) -> list[str]:
    available = config.targets_by_office.get(office.key, ("website",))
    if requested is None:
        return list(available)
    unknown = [t for t in requested if t not in available]
    if unknown:
        raise ValidationError(
            "channels",
            f"{', '.join(unknown)} not configured for office {office.key}; "
            f"available: {', '.join(available)}",
        )
    if "website" not in requested:
        # Every WeChat article and Weibo post links to the item's website page.
        raise ValidationError("channels", "website is required: social posts link to it")
    return requested


def _check_publish_at(publish_at: datetime | None, now: datetime) -> None:
    if publish_at is not None and publish_at < now - _PAST_TOLERANCE:
        raise ValidationError("publish_at", "a publication date can never be set in the past")


def _check_summary(summary: str | None, body_html: str) -> None:
    if summary is None:
        return
    limit = summary_limit(len(html_to_text(body_html)))
    if len(summary) > limit:
        raise ValidationError("summary", f"at most {limit} characters for a body of this length")


def _apply(publication: Publication, data: PublicationInput, config: CoreConfig) -> None:
    publication.kind = data.kind
    publication.title = data.title
    publication.title_en = data.title_en
    publication.body_html = data.body_html
    publication.body_html_en = data.body_html_en
    publication.body_source = data.body_source
    publication.summary = data.summary or derive_summary(data.body_html)
    publication.category = data.category
    publication.issuing_body = data.issuing_body
    publication.document_number = data.document_number
    publication.written_on = data.written_on
    publication.subject = data.subject
    publication.genre = data.genre
    publication.audience = data.audience
    publication.keywords = list(data.keywords)
    publication.source = data.source
    publication.column_key = data.column_key
    publication.validity = data.validity
    publication.explanation_url = data.explanation_url
    publication.publish_at = data.publish_at
    publication.urgent = data.urgent
    publication.push = data.push
    publication.solicitation_opens_at = data.solicitation_opens_at
    publication.solicitation_closes_at = data.solicitation_closes_at
    publication.solicitation_basis = data.solicitation_basis


def _snapshot_fields(publication: Publication) -> dict[str, Any]:
    snap: dict[str, Any] = {}
    for name in _VERSIONED_FIELDS:
        value = getattr(publication, name)
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        snap[name] = value
    return snap


def _save_version(session: AsyncSession, publication: Publication, actor: audit.Actor) -> None:
    session.add(
        PublicationVersion(
            publication_id=publication.id,
            version=publication.version,
            snapshot=_snapshot_fields(publication),
            edited_by=actor.user_id,
            edited_by_label=actor.label,
            edited_at=utcnow(),
        )
    )


async def create(
    session: AsyncSession,
    config: CoreConfig,
    office: Office,
    data: PublicationInput,
    actor: audit.Actor,
    *,
    member: StaffMember | None = None,
    now: datetime | None = None,
) -> Publication:
    """Store a new draft (version 1)."""
    now = now or utcnow()
    if member is not None:
        member.require(office.id, Role.EDITOR)
    _check_publish_at(data.publish_at, now)
    _check_summary(data.summary, data.body_html)
    publication = Publication(
        office_id=office.id,
        state=PublicationState.DRAFT.value,
        version=1,
        review_steps=config.review_steps,
        review_step=0,
        author_id=actor.user_id,
        author_label=actor.label,
        created_at=now,
        updated_at=now,
    )
    _apply(publication, data, config)
    publication.channels = _targets(config, office, data.channels)
    session.add(publication)
    await session.flush()
    _save_version(session, publication, actor)
    audit.record(
        session,
        actor,
        "publication.create",
        "publication",
        publication.id,
        office_id=office.id,
        title=publication.title,
        kind=publication.kind,
    )
    return publication


async def edit(
    session: AsyncSession,
    config: CoreConfig,
    publication_id: int,
    data: PublicationInput,
    actor: audit.Actor,
    *,
    member: StaffMember | None = None,
    now: datetime | None = None,
) -> Publication:
    """Save a new version of a draft."""
    now = now or utcnow()
    publication = await get_publication(session, publication_id, for_update=True)
    if member is not None:
        member.require(publication.office_id, Role.EDITOR)
    if publication.state != PublicationState.DRAFT.value:
        raise WorkflowError(
            f"publication {publication.id} is {publication.state}; only drafts can be edited "
            "(use a correction for published items)"
        )
    _check_publish_at(data.publish_at, now)
    _check_summary(data.summary, data.body_html)
    office = await session.get(Office, publication.office_id)
    assert office is not None
    _apply(publication, data, config)
    publication.channels = _targets(config, office, data.channels)
    publication.version += 1
    publication.updated_at = now
    _save_version(session, publication, actor)
    audit.record(
        session,
        actor,
        "publication.edit",
        "publication",
        publication.id,
        office_id=publication.office_id,
        version=publication.version,
    )
    return publication


async def submit(
    session: AsyncSession,
    publication_id: int,
    actor: audit.Actor,
    *,
    member: StaffMember | None = None,
    now: datetime | None = None,
) -> Publication:
    """Send a draft to its first review step."""
    now = now or utcnow()
    publication = await get_publication(session, publication_id, for_update=True)
    if member is not None:
        member.require(publication.office_id, Role.EDITOR)
    if publication.state != PublicationState.DRAFT.value:
        raise WorkflowError(f"publication {publication.id} is {publication.state}, not a draft")
    _check_publish_at(publication.publish_at, now)
    publication.state = PublicationState.IN_REVIEW.value
    publication.review_step = 0
    publication.rejection_reason = None
    publication.updated_at = now
    audit.record(
        session,
        actor,
        "publication.submit",
        "publication",
        publication.id,
        office_id=publication.office_id,
        version=publication.version,
    )
    return publication


async def review(
    session: AsyncSession,
    config: CoreConfig,
    publication_id: int,
    member: StaffMember,
    *,
    approve: bool,
    comment: str = "",
    origin: str = "",
    now: datetime | None = None,
    checks_override: str = "",
) -> Publication:
    """Decide the current review step. The final approval runs the content checks again
    (blocking findings refuse it unless ``checks_override`` gives a reason, which is
    audited) and writes the deliveries."""
    now = now or utcnow()
    actor = member.actor(origin)
    publication = await get_publication(session, publication_id, for_update=True)
    if publication.state != PublicationState.IN_REVIEW.value:
        raise WorkflowError(f"publication {publication.id} is {publication.state}, not in review")
    total = publication.review_steps
    step = publication.review_step + 1
    role = STEP_ROLES[total][step - 1]
    if member.user_id == publication.author_id:
        raise PermissionDenied("nobody reviews or approves their own draft")
    member.require(publication.office_id, role)
    earlier = (
        (
            await session.execute(
                select(Review.reviewer_id).where(
                    Review.publication_id == publication.id,
                    Review.version == publication.version,
                    Review.decision == "approve",
                )
            )
        )
        .scalars()
        .all()
    )
    if member.user_id in earlier:
        raise PermissionDenied("each review step needs a different reviewer")
    comment = comment.strip()
    if not approve and not comment:
        raise ValidationError("reason", "a rejection needs a reason")
    if len(comment) > 2000:
        raise ValidationError("comment", "at most 2,000 characters")
    session.add(
        Review(
            publication_id=publication.id,
            version=publication.version,
            step=step,
            reviewer_id=member.user_id,
            decision="approve" if approve else "reject",
            comment=comment,
            decided_at=now,
        )
    )
    name = step_name(step, total)
    if not approve:
        publication.state = PublicationState.DRAFT.value
        publication.review_step = 0
        publication.rejection_reason = comment
        publication.updated_at = now
        audit.record(
            session,
            actor,
            "publication.reject",
            "publication",
            publication.id,
            office_id=publication.office_id,
            step=step,
            step_name=name,
            reason=comment,
        )
        return publication
    publication.review_step = step
    publication.updated_at = now
    audit.record(
        session,
        actor,
        "publication.approve_step",
        "publication",
        publication.id,
        office_id=publication.office_id,
        step=step,
        step_name=name,
        comment=comment,
    )
    if step == total:
        if config.approval_rules is not None:
            await config.approval_rules(session, publication)
        await enforce_at_approval(
            session, config.content_checks, publication, actor, checks_override
        )
        await _approve(session, config, publication, actor, now)
    return publication


async def _approve(
    session: AsyncSession,
    config: CoreConfig,
    publication: Publication,
    actor: audit.Actor,
    now: datetime,
) -> None:
    if publication.publish_at is not None and publication.publish_at < now - _PAST_TOLERANCE:
        raise ValidationError(
            "publish_at", "the scheduled time has passed; reschedule before approving"
        )
    office = await session.get(Office, publication.office_id)
    assert office is not None
    when = max(publication.publish_at or now, now)
    publication.approved_at = now
    publication.published_at = when
    if publication.index_number is None:
        publication.index_number = await next_index_number(session, office, when, config)
    publication.state = (
        PublicationState.SCHEDULED.value if when > now else PublicationState.QUEUED.value
    )
    await enqueue_publication(session, config, publication, when)
    audit.record(
        session,
        actor,
        "publication.approve",
        "publication",
        publication.id,
        office_id=publication.office_id,
        index_number=publication.index_number,
        publish_at=when.isoformat(),
        channels=list(publication.channels),
    )


async def enqueue_publication(
    session: AsyncSession, config: CoreConfig, publication: Publication, when: datetime
) -> int:
    """Write one publish delivery per target (and a push per WeChat account if asked)."""
    priority = URGENT_PRIORITY if publication.urgent else 0
    written = 0
    for target in publication.channels:
        channel, _, account = target.partition(":")
        account = account or "main"
        written += await queue.enqueue(
            session,
            publication_id=publication.id,
            channel=channel,
            account=account,
            action=DeliveryAction.PUBLISH.value,
            priority=priority,
            not_before=when,
        )
        if channel == "wechat" and publication.push and not publication.imported:
            push_at = when
            if not publication.urgent:
                push_at = after_quiet_hours(
                    when, config.timezone, config.quiet_hours_start, config.quiet_hours_end
                )
            written += await queue.enqueue(
                session,
                publication_id=publication.id,
                channel=channel,
                account=account,
                action=DeliveryAction.PUSH.value,
                priority=priority,
                not_before=push_at,
            )
    return written


async def next_index_number(
    session: AsyncSession, office: Office, when: datetime, config: CoreConfig
) -> str:
    """``{org_code}/{YYYYMM}-{serial:05d}``: the office's next serial for that month."""
    period = when.astimezone(config.timezone).strftime("%Y%m")
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    while True:
        # One atomic upsert hands out the serial: two approvals at once get different ones.
        stmt = (
            builder(IndexSerial)
            .values(office_id=office.id, period=period, last_serial=1)
            .on_conflict_do_update(
                index_elements=["office_id", "period"],
                set_={"last_serial": IndexSerial.last_serial + 1},
            )
            .returning(IndexSerial.last_serial)
        )
        serial = (await session.execute(stmt)).scalar_one()
        if serial > 99999:
            raise WorkflowError(f"index number series {period} of {office.key} is exhausted")
        candidate = f"{office.org_code}/{period}-{serial:05d}"
        # Imported catalogs may already hold numbers of this series: skip over them.
        taken = await session.execute(
            select(Publication.id).where(Publication.index_number == candidate)
        )
        if taken.first() is None:
            return candidate


async def schedule(
    session: AsyncSession,
    publication_id: int,
    member: StaffMember,
    *,
    publish_at: datetime | None,
    urgent: bool | None = None,
    push: bool | None = None,
    origin: str = "",
    now: datetime | None = None,
) -> Publication:
    """Change when (and how urgently) a publication goes out, before it has gone out."""
    now = now or utcnow()
    publication = await get_publication(session, publication_id, for_update=True)
    _check_publish_at(publication_at := publish_at, now)
    state = PublicationState(publication.state)
    if state in (PublicationState.DRAFT, PublicationState.IN_REVIEW):
        member.require(publication.office_id, Role.EDITOR, Role.APPROVER)
    elif state == PublicationState.SCHEDULED:
        member.require(publication.office_id, Role.APPROVER)
    else:
        raise WorkflowError(
            f"publication {publication.id} is {state.value}; too late to reschedule"
        )
    publication.publish_at = publication_at
    if urgent is not None:
        publication.urgent = urgent
    if push is not None and state != PublicationState.SCHEDULED:
        publication.push = push
    if state == PublicationState.SCHEDULED:
        when = max(publication_at or now, now)
        publication.published_at = when
        publication.state = (
            PublicationState.SCHEDULED.value if when > now else PublicationState.QUEUED.value
        )
        await queue.reschedule_pending(
            session, publication.id, when, URGENT_PRIORITY if publication.urgent else 0
        )
    publication.updated_at = now
    audit.record(
        session,
        member.actor(origin),
        "publication.schedule",
        "publication",
        publication.id,
        office_id=publication.office_id,
        publish_at=publication_at.isoformat() if publication_at else None,
        urgent=publication.urgent,
        push=publication.push,
    )
    return publication


async def withdraw(
    session: AsyncSession,
    publication_id: int,
    actor: audit.Actor,
    *,
    reason: str,
    member: StaffMember | None = None,
    now: datetime | None = None,
) -> Publication:
    """Take a publication back everywhere it went (or stop it before it goes)."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise ValidationError("reason", "a withdrawal needs a reason")
    publication = await get_publication(session, publication_id, for_update=True)
    if member is not None:
        member.require(publication.office_id, Role.APPROVER)
    state = PublicationState(publication.state)
    if state == PublicationState.WITHDRAWN:
        raise WorkflowError(f"publication {publication.id} is already withdrawn")
    if state in (PublicationState.DRAFT, PublicationState.IN_REVIEW):
        raise WorkflowError(
            f"publication {publication.id} is a {state.value}; it was never published"
        )
    await queue.cancel_pending(
        session, publication.id, [DeliveryAction.PUBLISH.value, DeliveryAction.PUSH.value]
    )
    reached = (
        await session.execute(
            select(Delivery.channel, Delivery.account).where(
                Delivery.publication_id == publication.id,
                Delivery.action == DeliveryAction.PUBLISH.value,
                Delivery.state.in_(
                    [
                        DeliveryState.SENDING.value,
                        DeliveryState.CONFIRMING.value,
                        DeliveryState.DONE.value,
                    ]
                ),
            )
        )
    ).all()
    for channel, account in reached:
        await queue.enqueue(
            session,
            publication_id=publication.id,
            channel=channel,
            account=account,
            action=DeliveryAction.RETRACT.value,
            priority=URGENT_PRIORITY,
            not_before=now,
        )
    publication.state = PublicationState.WITHDRAWN.value
    publication.withdrawn_at = now
    publication.withdrawal_reason = reason
    publication.updated_at = now
    audit.record(
        session,
        actor,
        "publication.withdraw",
        "publication",
        publication.id,
        office_id=publication.office_id,
        reason=reason,
        retractions=[f"{c}:{a}" for c, a in reached],
    )
    return publication


async def correct(
    session: AsyncSession,
    config: CoreConfig,
    publication_id: int,
    data: PublicationInput,
    member: StaffMember,
    *,
    reason: str,
    origin: str = "",
    now: datetime | None = None,
) -> Publication:
    """Correct a published item: an approver saves a new version and every channel it
    reached gets an update. Catalog identity (index number, date, channels) is kept."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise ValidationError("reason", "a correction needs a reason")
    publication = await get_publication(session, publication_id, for_update=True)
    member.require(publication.office_id, Role.APPROVER)
    if publication.state not in (PublicationState.PUBLISHED.value, PublicationState.QUEUED.value):
        raise WorkflowError(
            f"publication {publication.id} is {publication.state}; nothing to correct"
        )
    _check_summary(data.summary, data.body_html)
    keep = (publication.publish_at, publication.channels, publication.urgent, publication.push)
    _apply(publication, dataclasses.replace(data, channels=None), config)
    publication.publish_at, publication.channels, publication.urgent, publication.push = keep
    publication.version += 1
    publication.updated_at = now
    actor = member.actor(origin)
    _save_version(session, publication, actor)
    reached = (
        await session.execute(
            select(Delivery.channel, Delivery.account).where(
                Delivery.publication_id == publication.id,
                Delivery.action == DeliveryAction.PUBLISH.value,
                Delivery.state.in_(
                    [
                        DeliveryState.PENDING.value,
                        DeliveryState.SENDING.value,
                        DeliveryState.CONFIRMING.value,
                        DeliveryState.DONE.value,
                    ]
                ),
            )
        )
    ).all()
    for channel, account in reached:
        await queue.enqueue(
            session,
            publication_id=publication.id,
            channel=channel,
            account=account,
            action=DeliveryAction.UPDATE.value,
            revision=publication.version,
            priority=URGENT_PRIORITY if publication.urgent else 0,
            not_before=now,
        )
    audit.record(
        session,
        actor,
        "publication.correct",
        "publication",
        publication.id,
        office_id=publication.office_id,
        version=publication.version,
        reason=reason,
    )
    return publication


async def mark_published_if_settled(session: AsyncSession, publication_id: int) -> bool:
    """Move a queued publication to published once its publish deliveries are settled."""
    return publication_id in await mark_published_if_settled_many(session, [publication_id])


_UNSETTLED = frozenset(
    s.value for s in (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.CONFIRMING)
)


async def mark_published_if_settled_many(
    session: AsyncSession, publication_ids: Iterable[int]
) -> set[int]:
    """The batch form: the ids among ``publication_ids`` that became published."""
    ids = sorted(set(publication_ids))
    if not ids:
        return set()
    # Lock the publications first, in id order: deliveries of one publication finish
    # concurrently, and under READ COMMITTED each would otherwise count the others as
    # still unsettled; a fixed order keeps two workers' batches from deadlocking.
    stmt = (
        select(Publication)
        .where(
            Publication.id.in_(ids),
            Publication.state.in_(
                [PublicationState.QUEUED.value, PublicationState.SCHEDULED.value]
            ),
        )
        .order_by(Publication.id)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    publications = list((await session.execute(stmt)).scalars())
    if not publications:
        return set()
    counts = await queue.publish_states_many(session, [p.id for p in publications])
    published: set[int] = set()
    for publication in publications:
        states = counts.get(publication.id, {})
        unsettled = sum(n for state, n in states.items() if state in _UNSETTLED)
        if unsettled or not states.get(DeliveryState.DONE.value):
            continue
        publication.state = PublicationState.PUBLISHED.value
        publication.updated_at = utcnow()
        audit.record(
            session,
            audit.Actor.system("worker"),
            "publication.published",
            "publication",
            publication.id,
            office_id=publication.office_id,
            deliveries=states,
        )
        published.add(publication.id)
    return published


async def release_due(session: AsyncSession, now: datetime | None = None) -> int:
    """Scheduled publications whose time has come become queued (the scheduler's tick)."""
    now = now or utcnow()
    due = (
        (
            await session.execute(
                select(Publication).where(
                    Publication.state == PublicationState.SCHEDULED.value,
                    Publication.published_at <= now,
                )
            )
        )
        .scalars()
        .all()
    )
    for publication in due:
        publication.state = PublicationState.QUEUED.value
        publication.updated_at = now
    # Reconcile: any queued publication whose deliveries all settled becomes published.
    queued = (
        (
            await session.execute(
                select(Publication.id).where(Publication.state == PublicationState.QUEUED.value)
            )
        )
        .scalars()
        .all()
    )
    for publication_id in queued:
        await mark_published_if_settled(session, publication_id)
    return len(due)


__all__ = [
    "Kind",
    "correct",
    "create",
    "edit",
    "enqueue_publication",
    "get_publication",
    "mark_published_if_settled",
    "next_index_number",
    "office_by_key",
    "release_due",
    "review",
    "schedule",
    "step_name",
    "submit",
    "withdraw",
]
