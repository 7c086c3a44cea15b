"""Case handling: intake, accept/reject, assign, notes, transfer, extension, reply, rating,
close and publication. Every step is checked against the actor's roles and written to the
audit log in the caller's transaction. The staff console calls these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.calendar import (
    WorkCalendar,
    add_months,
    add_working_days,
    working_days_between,
)
from bot.cases.masking import mask_text
from bot.cases.models import (
    CalendarDay,
    Case,
    CaseChannel,
    CaseEvent,
    CaseKind,
    CaseMessage,
    CaseSerial,
    CaseState,
    Department,
)
from govcast.settings import Settings
from publisher import audit
from publisher.errors import NotFound, ValidationError, WorkflowError
from publisher.models import Office, Role, User
from publisher.orm import utcnow
from publisher.staff import StaffMember

log = logging.getLogger("govcast.bot.cases")

MAX_TEXT = 5000
MAX_REPLY = 10000
OPEN_STATES = (CaseState.RECEIVED.value, CaseState.ACCEPTED.value, CaseState.ASSIGNED.value)
KIND_NAMES = {
    CaseKind.CONSULTATION: ("咨询", "consultation"),
    CaseKind.COMPLAINT: ("投诉", "complaint"),
    CaseKind.SUGGESTION: ("建议", "suggestion"),
    CaseKind.HELP: ("求助", "help"),
}
STATE_NAMES = {
    CaseState.RECEIVED: ("已收到，待受理", "received"),
    CaseState.ACCEPTED: ("已受理", "accepted"),
    CaseState.REJECTED: ("不予受理", "rejected"),
    CaseState.ASSIGNED: ("办理中", "being handled"),
    CaseState.REPLIED: ("已答复", "replied"),
    CaseState.RATED: ("已评价", "rated"),
    CaseState.CLOSED: ("已办结", "closed"),
}
NUMBER_RE = re.compile(r"GC\d{8}-(?:\d{1,6}-)?\d{4,6}")


@dataclass(frozen=True)
class CaseRules:
    """Time limits and reasons from the ``[cases]`` settings, plus the office's zone."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    reply_working_days: int = 5
    extension_working_days: int = 5
    max_total_working_days: int = 15
    max_months: int = 3
    remind_working_days_before: int = 1
    reject_reasons: tuple[str, ...] = ("无实质内容", "广告信息", "涉诉涉法", "重复留言")
    departments: tuple[str, ...] = ()
    wechat_window_hours: int = 48

    @classmethod
    def from_settings(cls, settings: Settings) -> CaseRules:
        """The rules of this deployment."""
        c = settings.cases
        return cls(
            zone=settings.office.zone,
            reply_working_days=c.reply_working_days,
            extension_working_days=c.extension_working_days,
            max_total_working_days=c.max_total_working_days,
            max_months=c.max_months,
            remind_working_days_before=c.remind_working_days_before,
            reject_reasons=c.reject_reasons,
            departments=c.departments,
        )


@dataclass(frozen=True)
class NewCase:
    """What intake knows about a new case."""

    kind: str
    channel: str
    text: str
    account: str = ""
    sender: str = ""  # the citizen's id on the channel (OpenID, Weibo uid); never logged
    reply_address: dict[str, Any] = field(default_factory=dict)
    consent_publish: bool = False
    title: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    remote_id: str | None = None
    origin_hash: str | None = None
    publication_id: int | None = None


# --- helpers -------------------------------------------------------------------------------


async def load_calendar(session: AsyncSession) -> WorkCalendar:
    """The editable holiday calendar from the database."""
    rows = (await session.execute(select(CalendarDay.day, CalendarDay.kind))).all()
    return WorkCalendar.from_rows((r[0], r[1]) for r in rows)


def citizen_key(channel: str, account: str, sender: str) -> str:
    """A stable, non-reversible key for one citizen on one channel account."""
    return hashlib.sha256(f"{channel}:{account}:{sender}".encode()).hexdigest()


def hash_secret(secret: str) -> str:
    """The stored form of a case secret."""
    return hashlib.sha256(f"govcast-case:{secret}".encode()).hexdigest()


def secret_matches(case: Case, secret: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    stored = case.secret_hash or ""
    return bool(stored) and hmac.compare_digest(stored, hash_secret(secret[:200]))


def _clean_text(value: str, name: str, limit: int) -> str:
    text = value.replace("\x00", "").strip()
    if not text:
        raise ValidationError(name, "must not be empty")
    if len(text) > limit:
        raise ValidationError(name, f"at most {limit} characters")
    return text


def _dialect_insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def next_case_number(
    session: AsyncSession, office_id: int, when: datetime, zone: ZoneInfo
) -> str:
    """``GC{YYYYMMDD}-{serial:04d}`` (the office id is added for offices other than 1)."""
    period = when.astimezone(zone).strftime("%Y%m%d")
    builder = _dialect_insert(session)
    # One atomic upsert hands out the serial, as for index numbers.
    stmt = (
        builder(CaseSerial)
        .values(office_id=office_id, period=period, last_serial=1)
        .on_conflict_do_update(
            index_elements=["office_id", "period"],
            set_={"last_serial": CaseSerial.last_serial + 1},
        )
        .returning(CaseSerial.last_serial)
    )
    serial: int = (await session.execute(stmt)).scalar_one()
    middle = "" if office_id == 1 else f"{office_id}-"
    return f"GC{period}-{middle}{serial:04d}"


def _event(
    session: AsyncSession,
    case: Case,
    actor: audit.Actor,
    action: str,
    text: str = "",
    *,
    internal: bool = True,
    now: datetime,
) -> CaseEvent:
    event = CaseEvent(
        case_id=case.id, at=now, actor=actor.label, action=action, text=text, internal=internal
    )
    session.add(event)
    audit.record(
        session,
        actor,
        f"case.{action}",
        "case",
        case.id,
        office_id=case.office_id,
        number=case.number,
        state=case.state,
    )
    case.updated_at = now
    return event


def _require_state(case: Case, *states: CaseState) -> None:
    if case.state not in {s.value for s in states}:
        raise WorkflowError(f"case {case.number} is {case.state}; not allowed now")


def enqueue_message(
    session: AsyncSession, case: Case, purpose: str, text: str, now: datetime
) -> None:
    """Queue one message to the citizen (the outbox delivers it exactly once)."""
    session.add(
        CaseMessage(case_id=case.id, purpose=purpose, text=text, not_before=now, created_at=now)
    )


# --- intake --------------------------------------------------------------------------------


async def receive(
    session: AsyncSession,
    rules: CaseRules,
    calendar: WorkCalendar,
    office_id: int,
    new: NewCase,
    *,
    actor: audit.Actor | None = None,
    now: datetime | None = None,
) -> tuple[Case, str]:
    """Record a new case; returns it with its secret (shown once, stored hashed)."""
    now = now or utcnow()
    try:
        kind = CaseKind(new.kind)
    except ValueError:
        raise ValidationError("kind", "consultation, complaint, suggestion or help") from None
    try:
        channel = CaseChannel(new.channel)
    except ValueError:
        raise ValidationError("channel", "unknown channel") from None
    text = _clean_text(new.text, "text", MAX_TEXT)
    if len(new.title) > 200 or len(new.contact_name) > 100 or len(new.contact_phone) > 40:
        raise ValidationError("contact", "title <= 200, name <= 100, phone <= 40 characters")
    secret = secrets.token_urlsafe(12)
    case = Case(
        office_id=office_id,
        number=await next_case_number(session, office_id, now, rules.zone),
        kind=kind.value,
        channel=channel.value,
        account=new.account,
        reply_address=dict(new.reply_address),
        citizen_key=citizen_key(channel.value, new.account, new.sender) if new.sender else None,
        secret_hash=hash_secret(secret),
        remote_id=new.remote_id,
        origin_hash=new.origin_hash,
        publication_id=new.publication_id,
        title=new.title.strip(),
        text=text,
        contact_name=new.contact_name.strip(),
        contact_phone=new.contact_phone.strip(),
        consent_publish=new.consent_publish,
        state=CaseState.RECEIVED.value,
        received_at=now,
        deadline_at=add_working_days(now, rules.reply_working_days, calendar, rules.zone),
        limit_working_days=rules.reply_working_days,
        last_citizen_message_at=now if channel == CaseChannel.WECHAT else None,
        updated_at=now,
    )
    session.add(case)
    await session.flush()
    who = actor or audit.Actor(label=f"citizen:{channel.value}", origin=channel.value)
    _event(session, case, who, "receive", internal=False, now=now)
    log.info("case received", extra={"case_id": case.id, "channel": channel.value})
    return case, secret


# --- staff reads ---------------------------------------------------------------------------


async def get_case(
    session: AsyncSession, member: StaffMember, case_id: int, *, for_update: bool = False
) -> Case:
    """One case the member may see (responder or admin in its office)."""
    stmt = select(Case).where(Case.id == case_id)
    if for_update and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None or not member.has(found.office_id, Role.RESPONDER):
        raise NotFound(f"no case {case_id}")
    return found


async def list_cases(
    session: AsyncSession,
    member: StaffMember,
    office_id: int,
    *,
    state: str | None = None,
    department: str | None = None,
    due_before: datetime | None = None,
    overdue_first: bool = True,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> list[Case]:
    """Cases of an office, filtered; open overdue ones first, then by deadline."""
    member.require(office_id, Role.RESPONDER)
    now = now or utcnow()
    stmt = select(Case).where(Case.office_id == office_id)
    if state:
        stmt = stmt.where(Case.state == state)
    if department:
        stmt = stmt.where(Case.department == department)
    if due_before:
        stmt = stmt.where(Case.deadline_at < due_before)
    if overdue_first:
        is_open_overdue = sql_case(
            ((Case.state.in_(OPEN_STATES)) & (Case.deadline_at <= now), 0), else_=1
        )
        stmt = stmt.order_by(is_open_overdue, Case.deadline_at, Case.id)
    else:
        stmt = stmt.order_by(Case.received_at.desc(), Case.id.desc())
    stmt = stmt.limit(max(1, min(limit, 500))).offset(max(0, offset))
    return list((await session.execute(stmt)).scalars())


async def events_of(session: AsyncSession, member: StaffMember, case_id: int) -> list[CaseEvent]:
    """The timeline of a case (internal notes included) for staff."""
    await get_case(session, member, case_id)
    rows = await session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
    )
    return list(rows.scalars())


# --- staff actions -------------------------------------------------------------------------


async def accept(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Accept a received case for handling."""
    now = now or utcnow()
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.RECEIVED)
    case.state = CaseState.ACCEPTED.value
    _event(session, case, member.actor(origin), "accept", internal=False, now=now)
    return case


async def reject(
    session: AsyncSession,
    member: StaffMember,
    rules: CaseRules,
    case_id: int,
    reason: str,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Reject a received case with one of the configured reasons, told to the citizen."""
    now = now or utcnow()
    if reason not in rules.reject_reasons:
        raise ValidationError("reason", f"one of: {', '.join(rules.reject_reasons)}")
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.RECEIVED, CaseState.ACCEPTED)
    case.state = CaseState.REJECTED.value
    case.reject_reason = reason
    case.closed_at = now
    _event(session, case, member.actor(origin), "reject", reason, internal=False, now=now)
    enqueue_message(
        session,
        case,
        "rejected",
        f"您的留言（编号 {case.number}）不予受理，原因：{reason}。"
        f"Your message {case.number} was not accepted: {reason}.",
        now,
    )
    return case


async def _responder(session: AsyncSession, office_id: int, user_id: int) -> User:
    user = await session.get(User, user_id)
    if (
        user is None
        or not user.is_active
        or not (user.roles_in(office_id) & {Role.RESPONDER, Role.ADMIN})
    ):
        raise ValidationError("responder", "must be an active responder of this office")
    return user


async def ensure_department(
    session: AsyncSession, office_id: int, name: str, head_user_id: int | None = None
) -> Department:
    """The department row with this name (created on first use)."""
    name = _clean_text(name, "department", 100)
    found = (
        await session.execute(
            select(Department).where(Department.office_id == office_id, Department.name == name)
        )
    ).scalar_one_or_none()
    if found is None:
        found = Department(office_id=office_id, name=name, head_user_id=head_user_id)
        session.add(found)
        await session.flush()
    elif head_user_id is not None:
        found.head_user_id = head_user_id
    return found


async def assign(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    department: str,
    responder_id: int,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Assign an accepted case to a department and a responder."""
    now = now or utcnow()
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.RECEIVED, CaseState.ACCEPTED)
    await ensure_department(session, case.office_id, department)
    user = await _responder(session, case.office_id, responder_id)
    case.department = department.strip()
    case.responder_id = user.id
    case.state = CaseState.ASSIGNED.value
    _event(
        session, case, member.actor(origin), "assign", f"{case.department} / {user.name}", now=now
    )
    return case


async def transfer(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    department: str,
    responder_id: int,
    reason: str,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Move an assigned case to another department or responder (the deadline stays)."""
    now = now or utcnow()
    reason = _clean_text(reason, "reason", 1000)
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.ASSIGNED)
    await ensure_department(session, case.office_id, department)
    user = await _responder(session, case.office_id, responder_id)
    before = f"{case.department} / {case.responder_id}"
    case.department = department.strip()
    case.responder_id = user.id
    _event(
        session,
        case,
        member.actor(origin),
        "transfer",
        f"{before} -> {case.department} / {user.name}: {reason}",
        now=now,
    )
    return case


async def note(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    text: str,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> CaseEvent:
    """Add an internal note (never shown to the citizen)."""
    now = now or utcnow()
    text = _clean_text(text, "note", MAX_TEXT)
    case = await get_case(session, member, case_id)
    event = _event(session, case, member.actor(origin), "note", text, now=now)
    await session.flush()
    return event


def extended_deadline(
    case: Case, rules: CaseRules, calendar: WorkCalendar, days: int
) -> tuple[int, datetime]:
    """The new limit and deadline after ``days`` more working days; raise if not allowed."""
    if days <= 0:
        raise ValidationError("days", "must be at least 1")
    total = case.limit_working_days + days
    if total > rules.max_total_working_days:
        raise ValidationError(
            "days", f"the limit cannot exceed {rules.max_total_working_days} working days"
        )
    deadline = add_working_days(case.received_at, total, calendar, rules.zone)
    if deadline > add_months(case.received_at, rules.max_months, rules.zone):
        raise ValidationError("days", f"never more than {rules.max_months} months")
    return total, deadline


async def extend(
    session: AsyncSession,
    member: StaffMember,
    rules: CaseRules,
    calendar: WorkCalendar,
    case_id: int,
    reason: str,
    days: int | None = None,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Extend the deadline (with a reason) within the configured maximum."""
    now = now or utcnow()
    reason = _clean_text(reason, "reason", 1000)
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.RECEIVED, CaseState.ACCEPTED, CaseState.ASSIGNED)
    total, deadline = extended_deadline(
        case, rules, calendar, rules.extension_working_days if days is None else days
    )
    case.limit_working_days = total
    case.deadline_at = deadline
    case.extension_reason = reason
    _event(
        session,
        case,
        member.actor(origin),
        "extend",
        f"{total} working days: {reason}",
        internal=False,
        now=now,
    )
    return case


def reply_message(case: Case, text: str, base_url: str) -> str:
    """The reply as the citizen receives it, with how to rate it."""
    how = (
        '回复“评价 1-5”为本次答复打分。Reply "评价 1-5" to rate this answer.'
        if case.channel == CaseChannel.WECHAT.value
        else f"评价 / rate: {base_url.rstrip('/')}/cases/track?number={case.number}"
    )
    return f"【{case.number} 答复】{text}\n{how}"


async def reply(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    text: str,
    *,
    base_url: str = "",
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Answer the case; the answer is queued for delivery through its channel."""
    now = now or utcnow()
    text = _clean_text(text, "reply", MAX_REPLY)
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.ACCEPTED, CaseState.ASSIGNED)
    if case.responder_id is not None and case.responder_id != member.user_id:
        member.require(case.office_id, Role.ADMIN)
    case.reply_text = text
    case.replied_at = now
    case.replied_by = member.user_id
    case.state = CaseState.REPLIED.value
    _event(session, case, member.actor(origin), "reply", internal=False, now=now)
    enqueue_message(session, case, "reply", reply_message(case, text, base_url), now)
    return case


async def close(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Archive a replied (or rated) case."""
    now = now or utcnow()
    case = await get_case(session, member, case_id, for_update=True)
    _require_state(case, CaseState.REPLIED, CaseState.RATED)
    case.state = CaseState.CLOSED.value
    case.closed_at = now
    _event(session, case, member.actor(origin), "close", now=now)
    return case


def proposed_publication(case: Case, known_names: list[str] | None = None) -> tuple[str, str]:
    """The question and answer with personal data masked, for staff to confirm."""
    names = [n for n in [case.contact_name, *(known_names or [])] if n]
    return mask_text(case.text, names), mask_text(case.reply_text or "", names)


async def publish_case(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    question: str,
    answer: str,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Staff confirm the (masked) question and answer; the case appears on /cases/."""
    now = now or utcnow()
    case = await get_case(session, member, case_id, for_update=True)
    if not case.consent_publish:
        raise WorkflowError(f"case {case.number}: the citizen did not consent to publication")
    _require_state(case, CaseState.REPLIED, CaseState.RATED, CaseState.CLOSED)
    # Masking runs again on what staff confirm: an edit cannot bring personal data back.
    names = [case.contact_name] if case.contact_name else []
    case.public_question = mask_text(_clean_text(question, "question", MAX_TEXT), names)
    case.public_answer = mask_text(_clean_text(answer, "answer", MAX_REPLY), names)
    case.published_at = now
    _event(session, case, member.actor(origin), "publish", now=now)
    return case


async def unpublish_case(
    session: AsyncSession,
    member: StaffMember,
    case_id: int,
    *,
    origin: str = "",
    now: datetime | None = None,
) -> Case:
    """Take a case off /cases/."""
    now = now or utcnow()
    case = await get_case(session, member, case_id, for_update=True)
    case.published_at = None
    _event(session, case, member.actor(origin), "unpublish", now=now)
    return case


# --- citizens ------------------------------------------------------------------------------


async def case_by_number(session: AsyncSession, number: str) -> Case | None:
    """The case with this number, or None (malformed numbers included)."""
    number = number.strip().upper()
    if not NUMBER_RE.fullmatch(number):
        return None
    return (await session.execute(select(Case).where(Case.number == number))).scalar_one_or_none()


async def open_with_secret(session: AsyncSession, number: str, secret: str) -> Case | None:
    """The case only if the secret matches (constant-time), else None."""
    case = await case_by_number(session, number)
    if case is None:
        # Spend the same hashing work, so numbers cannot be probed by timing.
        hmac.compare_digest(hash_secret(secret[:200]), hash_secret(""))
        return None
    return case if secret_matches(case, secret) else None


async def cases_of_citizen(session: AsyncSession, key: str, limit: int = 10) -> list[Case]:
    """A citizen's own cases, newest first."""
    rows = await session.execute(
        select(Case).where(Case.citizen_key == key).order_by(Case.id.desc()).limit(limit)
    )
    return list(rows.scalars())


async def rate(
    session: AsyncSession, case: Case, rating: int, *, now: datetime | None = None
) -> Case:
    """The citizen's satisfaction (1-5) with the reply; once."""
    now = now or utcnow()
    if not 1 <= rating <= 5:
        raise ValidationError("rating", "must be 1 to 5")
    _require_state(case, CaseState.REPLIED)
    case.rating = rating
    case.rated_at = now
    case.state = CaseState.RATED.value
    actor = audit.Actor(label=f"citizen:{case.channel}", origin=case.channel)
    _event(session, case, actor, "rate", str(rating), internal=False, now=now)
    return case


def status_text(case: Case, calendar: WorkCalendar, rules: CaseRules) -> str:
    """A one-message status for the citizen (zh-CN with English)."""
    zh, en = STATE_NAMES[CaseState(case.state)]
    lines = [f"编号 {case.number}：{zh}（{en}）"]
    if case.state in OPEN_STATES:
        lines.append(f"答复期限 / due: {due_date(case, rules.zone).isoformat()}")
    if case.state == CaseState.REJECTED.value and case.reject_reason:
        lines.append(f"原因 / reason: {case.reject_reason}")
    if case.reply_text and case.state in (
        CaseState.REPLIED.value,
        CaseState.RATED.value,
        CaseState.CLOSED.value,
    ):
        lines.append(f"答复 / reply: {case.reply_text[:500]}")
    return "\n".join(lines)


def due_date(case: Case, zone: ZoneInfo) -> date:
    """The last local day on which the reply is in time."""
    return (case.deadline_at.astimezone(zone) - timedelta(microseconds=1)).date()


def reply_working_days(case: Case, calendar: WorkCalendar, zone: ZoneInfo) -> int | None:
    """Working days from receipt to reply, or None when not replied."""
    if case.replied_at is None:
        return None
    return working_days_between(case.received_at, case.replied_at, calendar, zone)


async def office_id_by_key(session: AsyncSession, key: str) -> int:
    """The id of a configured office."""
    found = (await session.execute(select(Office.id).where(Office.key == key))).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no office {key!r}")
    return found


async def feedback_count(session: AsyncSession, publication_id: int) -> int:
    """How many cases were left as feedback on one publication (Mayor's E-Reading)."""
    return (
        await session.execute(
            select(func.count()).select_from(Case).where(Case.publication_id == publication_id)
        )
    ).scalar_one()


@dataclass(frozen=True)
class ItemInteraction:
    """What staff see of one Mayor's E-Reading item: page views and feedback."""

    publication_id: int
    hits: int
    feedback: int


async def item_interaction(session: AsyncSession, publication_id: int) -> ItemInteraction:
    """Hits (the website's counter) and feedback cases of one publication."""
    from website.models import HitCount

    hits = (
        await session.execute(
            select(HitCount.hits).where(HitCount.publication_id == publication_id)
        )
    ).scalar_one_or_none()
    return ItemInteraction(
        publication_id, int(hits or 0), await feedback_count(session, publication_id)
    )


@dataclass(frozen=True)
class InboxSummary:
    """Counts for the staff inbox badges."""

    received: int
    open: int
    overdue: int
    due_within_a_day: int


async def inbox_summary(
    session: AsyncSession, member: StaffMember, office_id: int, *, now: datetime | None = None
) -> InboxSummary:
    """Cases waiting for acceptance, open, overdue and due within 24 hours."""
    member.require(office_id, Role.RESPONDER)
    now = now or utcnow()
    base = select(func.count()).select_from(Case).where(Case.office_id == office_id)
    open_ = base.where(Case.state.in_(OPEN_STATES))

    async def count(stmt: Any) -> int:
        return int((await session.execute(stmt)).scalar_one())

    return InboxSummary(
        received=await count(base.where(Case.state == CaseState.RECEIVED.value)),
        open=await count(open_),
        overdue=await count(open_.where(Case.deadline_at <= now)),
        due_within_a_day=await count(
            open_.where(Case.deadline_at > now, Case.deadline_at <= now + timedelta(days=1))
        ),
    )
