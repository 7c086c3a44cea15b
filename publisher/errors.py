"""Typed errors of the publication core. Each carries a message fit to show staff."""

from __future__ import annotations


class GovcastError(Exception):
    """Base of the errors the core raises on purpose."""


class ValidationError(GovcastError):
    """Input that cannot be accepted; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class WorkflowError(GovcastError):
    """An action the publication's current state does not allow."""


class PermissionDenied(GovcastError):
    """The acting user lacks the role or office for this action."""


class NotFound(GovcastError):
    """The named object does not exist (or is outside the user's offices)."""
