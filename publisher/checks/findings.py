"""What a content check reports: a finding at an exact place, with a severity."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any


class Severity(enum.StrEnum):
    """A blocking error stops approval; a warning is shown; off hides the check."""

    ERROR = "error"
    WARNING = "warning"
    OFF = "off"


@dataclass(frozen=True)
class Finding:
    """One problem at ``field[start:end]`` (character offsets, end exclusive)."""

    code: str
    severity: Severity
    field: str
    start: int
    end: int
    snippet: str
    message: str  # zh-CN, shown to staff
    message_en: str = ""
    suggestion: str = ""  # a replacement when one is known (typo fix, masked value ...)

    @property
    def blocking(self) -> bool:
        """Whether this finding stops approval unless overridden."""
        return self.severity == Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for the API and the audit log)."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def context_snippet(text: str, start: int, end: int, radius: int = 10) -> str:
    """The matched text with a little context either side, for display."""
    head = max(0, start - radius)
    tail = min(len(text), end + radius)
    prefix = "…" if head > 0 else ""
    suffix = "…" if tail < len(text) else ""
    return f"{prefix}{text[head:tail]}{suffix}"


def apply_policy(
    findings: list[Finding], severities: Mapping[str, Severity | str]
) -> list[Finding]:
    """Re-grade findings by code (configurable severity); drop those switched off."""
    out: list[Finding] = []
    for finding in findings:
        wanted = severities.get(finding.code)
        if wanted is not None:
            finding = replace(finding, severity=Severity(wanted))
        if finding.severity != Severity.OFF:
            out.append(finding)
    return out


def blocking(findings: list[Finding]) -> list[Finding]:
    """Only the findings that stop approval."""
    return [f for f in findings if f.blocking]
