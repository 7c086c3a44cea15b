"""The core tables: offices, staff, publications with their versions and reviews, media,
the delivery queue (outbox), alerts and the append-only audit log."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from publisher.orm import Base, JSONType, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class StrEnum(enum.StrEnum):
    """An enum whose values are stored as plain strings."""


class Kind(StrEnum):
    DISCLOSURE = "disclosure"
    PRESS_RELEASE = "press_release"
    PRESS_CONFERENCE = "press_conference"
    SOLICITATION = "solicitation"
    COLUMN_ITEM = "column_item"


class Category(StrEnum):
    """The "5+1" proactive-disclosure categories."""

    DECISION = "decision"
    IMPLEMENTATION = "implementation"
    MANAGEMENT = "management"
    SERVICE = "service"
    RESULTS = "results"
    KEY_AREA = "key_area"


class Validity(StrEnum):
    IN_FORCE = "in_force"
    AMENDED = "amended"
    REPEALED = "repealed"
    EXPIRED = "expired"


class PublicationState(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    SCHEDULED = "scheduled"  # approved, waiting for its publication time
    QUEUED = "queued"  # approved and due: deliveries under way
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Role(StrEnum):
    EDITOR = "editor"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    RESPONDER = "responder"
    ADMIN = "admin"


class DeliveryAction(StrEnum):
    PUBLISH = "publish"
    PUSH = "push"  # WeChat mass send to followers
    UPDATE = "update"  # a correction
    RETRACT = "retract"  # a withdrawal


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed; committed before the remote call
    CONFIRMING = "confirming"  # the platform accepted it; its final status is awaited
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"


def _enum_check(column: str, enum_cls: type[StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum_cls)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_valid")


class Office(Base):
    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    org_code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", lazy="selectin", cascade="all, delete-orphan"
    )

    def roles_in(self, office_id: int) -> set[Role]:
        """The roles this user holds in one office."""
        return {Role(m.role) for m in self.memberships if m.office_id == office_id}


class Membership(Base):
    """A staff member's role in one office; one row per role."""

    __tablename__ = "memberships"
    __table_args__ = (_enum_check("role", Role),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)

    user: Mapped[User] = relationship(back_populates="memberships")


class IndexSerial(Base):
    """The last serial handed out per office and month, for index numbers."""

    __tablename__ = "index_serials"

    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(6), primary_key=True)  # YYYYMM
    last_serial: Mapped[int] = mapped_column(Integer, default=0)


class Publication(Base):
    __tablename__ = "publications"
    __table_args__ = (
        _enum_check("kind", Kind),
        _enum_check("category", Category),
        _enum_check("state", PublicationState),
        _enum_check("validity", Validity),
        Index("ix_publications_office_state", "office_id", "state"),
        Index("ix_publications_published_at", "published_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    # Assigned once, at final approval, from the publication date; never changes after.
    index_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16), default=PublicationState.DRAFT.value)
    version: Mapped[int] = mapped_column(Integer, default=1)

    title: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str | None] = mapped_column(String(500))
    body_html: Mapped[str] = mapped_column(Text)
    body_html_en: Mapped[str | None] = mapped_column(Text)
    body_source: Mapped[str | None] = mapped_column(Text)  # Markdown as written, if any
    summary: Mapped[str] = mapped_column(Text, default="")

    category: Mapped[str] = mapped_column(String(24))
    issuing_body: Mapped[str] = mapped_column(String(200))
    document_number: Mapped[str | None] = mapped_column(String(100))
    written_on: Mapped[date | None] = mapped_column(Date)
    subject: Mapped[str | None] = mapped_column(String(100))
    genre: Mapped[str | None] = mapped_column(String(50))
    audience: Mapped[str | None] = mapped_column(String(100))
    keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    source: Mapped[str | None] = mapped_column(String(200))
    column_key: Mapped[str | None] = mapped_column(String(64))
    validity: Mapped[str] = mapped_column(String(16), default=Validity.IN_FORCE.value)
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("publications.id"))
    explanation_id: Mapped[int | None] = mapped_column(ForeignKey("publications.id"))
    explanation_url: Mapped[str | None] = mapped_column(String(1000))

    solicitation_opens_at: Mapped[datetime | None] = mapped_column()
    solicitation_closes_at: Mapped[datetime | None] = mapped_column()
    solicitation_basis: Mapped[str | None] = mapped_column(String(24))  # major_decision | normative

    # Targets as "website", "wechat:main", "weibo:main".
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    publish_at: Mapped[datetime | None] = mapped_column()
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    push: Mapped[bool] = mapped_column(Boolean, default=False)
    review_steps: Mapped[int] = mapped_column(Integer, default=3)
    review_step: Mapped[int] = mapped_column(Integer, default=0)  # steps passed so far
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    imported: Mapped[bool] = mapped_column(Boolean, default=False)

    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column()
    published_at: Mapped[datetime | None] = mapped_column()  # the official publication date
    withdrawn_at: Mapped[datetime | None] = mapped_column()
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)


class PublicationVersion(Base):
    """Every saved edit of a publication, as a full snapshot."""

    __tablename__ = "publication_versions"
    __table_args__ = (UniqueConstraint("publication_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)
    edited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    edited_by_label: Mapped[str] = mapped_column(String(100), default="")
    edited_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    """One reviewer's decision on one step of a publication's review."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    publication_id: Mapped[int] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class Media(Base):
    """An image or attachment in the media store (content-addressed on disk)."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PublicationMedia(Base):
    __tablename__ = "publication_media"

    publication_id: Mapped[int] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), primary_key=True
    )
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="image")  # image | attachment
    position: Mapped[int] = mapped_column(Integer, default=0)
    alt: Mapped[str] = mapped_column(String(300), default="")


_UNSETTLED_SQL = "state IN ('pending', 'sending', 'confirming')"


class Delivery(Base):
    """One outbox row: one action of one publication on one channel account.

    Written in the same transaction as the publication's state change. The unique key
    makes every enqueue idempotent: a publication is published to a channel account once.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("publication_id", "channel", "account", "action", "revision"),
        _enum_check("state", DeliveryState),
        _enum_check("action", DeliveryAction),
        # The claim query's access path: due rows by priority then age.
        Index("ix_deliveries_claim", "state", "not_before", "priority"),
        # Rate limits count recent sends per account. Partial (sent rows only) so that the
        # planner can never pick it for the sequencing probe below, where it would return
        # a whole account's queue per candidate row.
        Index(
            "ix_deliveries_account_sent",
            "channel",
            "account",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
        # The claim's sequencing check ("nothing earlier unsettled on this target") probes
        # this per candidate row. Partial, so it stays as small as the live queue however
        # large the history grows, and the planner has a cheap probe even before the table
        # has statistics (without it, a fresh burst made each claim a quadratic scan).
        Index(
            "ix_deliveries_unsettled_target",
            "publication_id",
            "channel",
            "account",
            "id",
            postgresql_where=text(_UNSETTLED_SQL),
            sqlite_where=text(_UNSETTLED_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16), default=DeliveryAction.PUBLISH.value)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    # True when the row was found in `sending` after its lease ran out: the outcome of the
    # last attempt is unknown and the channel's `find` must settle it before any retry.
    needs_reconcile: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(16))
    remote_id: Mapped[str | None] = mapped_column(String(200))
    remote_url: Mapped[str | None] = mapped_column(String(1000))
    receipt: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()


class Alert(Base):
    """Something staff must see: a dead letter, a configuration fault, a quota wall."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    severity: Mapped[str] = mapped_column(String(16), default="error")
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    publication_id: Mapped[int | None] = mapped_column(ForeignKey("publications.id"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column()


class AuditEntry(Base):
    """Append-only record of every state change and staff action."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(100))  # user name, "cli", "system", "worker"
    origin: Mapped[str] = mapped_column(String(100), default="")  # IP address, "cli", host
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
