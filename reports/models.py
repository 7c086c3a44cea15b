"""Tables of the reports package: the editable lists the content checks use."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base, utcnow


class ListKind(enum.StrEnum):
    """Which list an entry belongs to, and what its ``value`` means."""

    BANNED = "banned"  # value unused
    SENSITIVE = "sensitive"  # value unused
    ALLOWED = "allowed"  # value unused: a longer word that contains a banned/sensitive one
    TYPO = "typo"  # term = the wrong form, value = the right one
    LEADER = "leader"  # term = name, value = title, current = still in post
    SEVERITY = "severity"  # term = finding code, value = error | warning | off


class CheckListEntry(Base):
    """One entry of an editable check list (banned words, typos, office holders ...)."""

    __tablename__ = "reports_check_entries"
    __table_args__ = (
        UniqueConstraint("kind", "term", "value"),
        CheckConstraint(
            "kind IN ('banned', 'sensitive', 'allowed', 'typo', 'leader', 'severity')",
            name="kind_valid",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    term: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(String(200), default="")
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
