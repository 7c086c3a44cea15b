"""The pure retry policy: how long to wait before the next attempt, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, honouring a platform's retry-after."""

    base_seconds: float = 2.0
    max_seconds: float = 900.0
    max_attempts: int = 12

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempt - 1))
        # "Equal jitter": keeps the growth visible while spreading a herd of retries apart.
        delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, 24 * 3600.0)
        return delay

    def exhausted(self, attempts: int) -> bool:
        """Whether a delivery that has made ``attempts`` attempts must stop retrying."""
        return attempts >= self.max_attempts
