"""What a channel call can come back with: a receipt, or a typed error.

Transient errors are retried with backoff (honouring ``retry_after``); permanent errors
dead-letter the delivery and alert staff; configuration errors do the same and name the
setting to fix. A channel never returns a bool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Receipt:
    """Proof of an effect on the remote side."""

    remote_id: str
    remote_url: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # Some effects finish asynchronously (WeChat free publish): the channel has handed the
    # work over and the final status arrives later by event or polling.
    pending: bool = False


class DeliveryError(Exception):
    """Base of channel failures."""

    kind = "error"

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientError(DeliveryError):
    """Worth retrying later: network trouble, 5xx, busy, rate limits."""

    kind = "transient"

    def __init__(
        self, message: str, *, code: str | int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class WaitForWindow(TransientError):
    """A platform quota is spent until its window resets (WeChat's mass-send quota).

    Not a failed attempt: the worker puts the delivery back until ``retry_after`` without
    counting it toward ``max_attempts``, so waiting out a month never dead-letters it.
    """


class PermanentError(DeliveryError):
    """Retrying cannot help: content rejected, not allowed, gone."""

    kind = "permanent"


class ConfigurationError(PermanentError):
    """The deployment is misconfigured (credentials, domains); names what to fix."""

    kind = "config"


@dataclass(frozen=True)
class DeliveryContext:
    """What a channel call knows about the delivery it serves."""

    delivery_id: int
    publication_id: int
    account: str
    action: str
    attempt: int
    # Stable across retries of this delivery: dedup keys such as WeChat's clientmsgid.
    idempotency_key: str
    # What the earlier publish on this account left behind (for retract, update, push).
    remote_id: str | None = None
    remote_receipt: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
