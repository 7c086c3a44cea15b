"""The append-only audit log: who did what, when, from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from publisher.models import AuditEntry
from publisher.orm import utcnow


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, the command line, or the system itself."""

    label: str
    user_id: int | None = None
    origin: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        """An automatic actor (worker, scheduler)."""
        return cls(label=label, origin="system")


CLI = Actor(label="cli", origin="cli")


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: int | str,
    *,
    office_id: int | None = None,
    **detail: Any,
) -> None:
    """Append one entry in the caller's transaction (it commits or rolls back with it)."""
    session.add(
        AuditEntry(
            at=utcnow(),
            actor_id=actor.user_id,
            actor=actor.label,
            origin=actor.origin[:100],
            office_id=office_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            detail=detail,
        )
    )
