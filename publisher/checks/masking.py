"""One-click masking of personal data in a draft: every text field of the publication,
masked in place as a new version, and written to the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from publisher import audit
from publisher.checks.personal import find_personal_matches, mask_spans
from publisher.errors import WorkflowError
from publisher.models import Publication, PublicationState, Role
from publisher.orm import utcnow
from publisher.staff import StaffMember

# The fields staff write text into; the checks read title, summary and body.
MASKED_FIELDS = ("title", "title_en", "summary", "body_html", "body_html_en", "body_source")
_TAG = re.compile(r"(<[^>]*>)")


@dataclass(frozen=True)
class MaskResult:
    """What was masked: the fields changed and how many pieces of personal data."""

    fields: tuple[str, ...]
    masked: int
    version: int


def mask_text(text: str) -> tuple[str, int]:
    """Plain text with its personal data masked, and how many pieces were masked."""
    matches = find_personal_matches(text)
    if not matches:
        return text, 0
    return mask_spans(text, [(m.start, m.end, m.kind) for m in matches]), len(matches)


def mask_html(html: str) -> tuple[str, int]:
    """HTML with the personal data in its text masked; tags and attributes (image and
    link addresses) are left alone so nothing breaks."""
    parts = _TAG.split(html)
    total = 0
    for i in range(0, len(parts), 2):  # even items are text between tags
        parts[i], count = mask_text(parts[i])
        total += count
    return "".join(parts), total


async def mask_draft(
    session: AsyncSession,
    publication_id: int,
    member: StaffMember,
    origin: str = "",
    now: datetime | None = None,
) -> MaskResult:
    """Mask the personal data in a draft; a new version only when something changed."""
    from publisher.workflow import _save_version, get_publication

    now = now or utcnow()
    publication: Publication = await get_publication(session, publication_id, for_update=True)
    member.require(publication.office_id, Role.EDITOR)
    if publication.state != PublicationState.DRAFT.value:
        raise WorkflowError(
            f"publication {publication.id} is {publication.state}; only drafts can be masked "
            "(use a correction for published items)"
        )
    changed: list[str] = []
    masked = 0
    for name in MASKED_FIELDS:
        value = getattr(publication, name, None)
        if not value:
            continue
        new, count = mask_html(value) if name.startswith("body_html") else mask_text(value)
        if count:
            setattr(publication, name, new)
            changed.append(name)
            masked += count
    if not changed:
        return MaskResult((), 0, publication.version)
    actor = member.actor(origin)
    publication.version += 1
    publication.updated_at = now
    _save_version(session, publication, actor)
    audit.record(
        session,
        actor,
        "publication.mask_personal_data",
        "publication",
        publication.id,
        office_id=publication.office_id,
        version=publication.version,
        fields=changed,
        masked=masked,
    )
    return MaskResult(tuple(changed), masked, publication.version)
