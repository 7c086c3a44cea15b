"""Tables of citizens' cases: the holiday calendar, cases and their events, case numbers,
the reply outbox, staff notifications, WeChat intake conversations, solicitation opinions
and adoption reports, and the Weibo comment cursor."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId, StrEnum
from publisher.orm import Base, JSONType, utcnow


class CaseKind(StrEnum):
    CONSULTATION = "consultation"  # 咨询
    COMPLAINT = "complaint"  # 投诉
    SUGGESTION = "suggestion"  # 建议
    HELP = "help"  # 求助


class CaseChannel(StrEnum):
    WECHAT = "wechat"
    WEB = "web"
    WEIBO = "weibo"
    STAFF_PHONE = "staff-phone"
    STAFF_MAIL = "staff-mail"


class CaseState(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ASSIGNED = "assigned"
    REPLIED = "replied"
    RATED = "rated"
    CLOSED = "closed"


def _check(column: str, values: type[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


class CalendarDay(Base):
    """One exception to Monday-Friday: an official holiday or a worked weekend day."""

    __tablename__ = "case_calendar_days"
    __table_args__ = (CheckConstraint("kind IN ('holiday', 'workday')", name="kind_valid"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(50), default="")


class Department(Base):
    """A department cases are assigned to, with its head (who gets escalations)."""

    __tablename__ = "case_departments"
    __table_args__ = (UniqueConstraint("office_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    name: Mapped[str] = mapped_column(String(100))
    head_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class CaseSerial(Base):
    """The last case serial handed out per office and day."""

    __tablename__ = "case_serials"

    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # YYYYMMDD
    last_serial: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    """One citizen's question, complaint, suggestion or request for help."""

    __tablename__ = "cases"
    __table_args__ = (
        _check("kind", CaseKind),
        _check("channel", CaseChannel),
        _check("state", CaseState),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
        Index("ix_cases_office_state_deadline", "office_id", "state", "deadline_at"),
        Index("ix_cases_citizen", "citizen_key"),
        Index("ix_cases_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64), default="")
    # Where the reply goes: {"openid": ...} / {"comment_id": ..., "status_id": ...} / {}.
    reply_address: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # sha256 of "channel:account:sender" so "my cases" finds a citizen's cases.
    citizen_key: Mapped[str | None] = mapped_column(String(64))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    # Unique id of the remote message (Weibo comment): no duplicate case after a restart.
    remote_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    origin_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    publication_id: Mapped[int | None] = mapped_column(ForeignKey("publications.id"), index=True)

    title: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    contact_name: Mapped[str] = mapped_column(String(100), default="")
    contact_phone: Mapped[str] = mapped_column(String(40), default="")
    consent_publish: Mapped[bool] = mapped_column(Boolean, default=False)

    state: Mapped[str] = mapped_column(String(16), default=CaseState.RECEIVED.value)
    reject_reason: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(100))
    responder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column()
    limit_working_days: Mapped[int] = mapped_column(Integer, default=5)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    last_citizen_message_at: Mapped[datetime | None] = mapped_column()

    reply_text: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column()
    replied_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rating: Mapped[int | None] = mapped_column(Integer)
    rated_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()

    # Publication on /cases/: masked texts proposed, then confirmed by staff.
    public_question: Mapped[str | None] = mapped_column(Text)
    public_answer: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseEvent(Base):
    """One step in a case's life, shown in the staff timeline (internal or public)."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    internal: Mapped[bool] = mapped_column(Boolean, default=True)


class CaseMessage(Base):
    """An outbox row: one message to a citizen, sent once through the case's channel.

    ``sending`` is committed before the remote call; a row found in ``sending`` after its
    lease ran out has an unknown outcome and is never sent again automatically (a customer
    service message cannot be looked up): it becomes ``unknown`` and staff are alerted.
    """

    __tablename__ = "case_messages"
    __table_args__ = (
        UniqueConstraint("case_id", "purpose"),
        Index("ix_case_messages_claim", "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))  # receipt | reply | rejected | ...
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    method: Mapped[str | None] = mapped_column(String(32))
    remote_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class CaseNotification(Base):
    """A deadline reminder or escalation for one staff member; once per case and stage."""

    __tablename__ = "case_notifications"
    __table_args__ = (UniqueConstraint("case_id", "user_id", "stage"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))  # due_soon | overdue
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column()


class IntakeConversation(Base):
    """Where one WeChat user is in the guided intake (or an opinion on a solicitation)."""

    __tablename__ = "case_intake_conversations"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    openid: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Opinion(Base):
    """A citizen's opinion on an open solicitation."""

    __tablename__ = "case_opinions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    contact_name: Mapped[str] = mapped_column(String(100), default="")
    origin_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    remote_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdoptionReport(Base):
    """What was adopted from a solicitation's opinions, and why the rest was not."""

    __tablename__ = "case_adoption_reports"

    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), primary_key=True)
    summary: Mapped[str] = mapped_column(Text)
    # [{"opinion": "...", "adopted": true, "reason": "..."}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class WeiboCursor(Base):
    """The newest comment id already turned into a case, per Weibo account."""

    __tablename__ = "case_weibo_cursors"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    since_id: Mapped[str] = mapped_column(String(40), default="0")
    polled_at: Mapped[datetime | None] = mapped_column()


class UsedChallenge(Base):
    """A CAPTCHA challenge already answered: each one is good for one submission."""

    __tablename__ = "case_used_challenges"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
