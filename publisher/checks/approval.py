"""The checks at final approval: blocking findings stop it unless an approver overrides
them with a reason, and every override is written to the audit log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from publisher import audit
from publisher.checks.findings import Finding, blocking
from publisher.checks.run import run_checks
from publisher.errors import ValidationError

log = logging.getLogger("govcast.publisher.checks")

# What the shell may install in CoreConfig.content_checks: (session, publication) -> findings,
# typically loading the office's editable lists first.
ContentChecks = Callable[[Any, Any], Awaitable[Sequence[Finding]]]
MAX_OVERRIDE_REASON = 2000


class ChecksFailed(ValidationError):
    """Approval refused: the publication has blocking findings."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        lines = "; ".join(f"[{f.field} {f.start}-{f.end}] {f.message}" for f in list(findings)[:20])
        more = f" (+{len(findings) - 20})" if len(findings) > 20 else ""
        super().__init__(
            "checks",
            f"{len(findings)} blocking finding(s); fix them or override with a reason: "
            f"{lines}{more}",
        )
        self.findings = list(findings)


async def enforce_at_approval(
    session: Any,
    hook: ContentChecks | None,
    publication: Any,
    actor: audit.Actor,
    override_reason: str = "",
) -> list[Finding]:
    """Run the checks again; raise ChecksFailed unless blocking ones are overridden."""
    if hook is not None:
        findings = list(await hook(session, publication))
    else:
        # No lists installed: the list-free checks (personal data, lengths ...) still run.
        findings = run_checks(publication)
    stopping = blocking(findings)
    if not stopping:
        return findings
    reason = override_reason.strip()
    if not reason:
        raise ChecksFailed(stopping)
    if len(reason) > MAX_OVERRIDE_REASON:
        raise ValidationError("checks_override", "at most 2,000 characters")
    audit.record(
        session,
        actor,
        "publication.checks_override",
        "publication",
        publication.id,
        office_id=publication.office_id,
        reason=reason,
        findings=[
            {"code": f.code, "field": f.field, "start": f.start, "end": f.end} for f in stopping
        ],
    )
    log.warning(
        "blocking check findings overridden",
        extra={"publication_id": publication.id, "findings": len(stopping)},
    )
    return findings
