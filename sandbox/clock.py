"""The sandbox's injectable clock: real time plus an offset that tests can advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Now, as the sandbox platforms see it; ``advance`` moves it forward."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        """The current sandbox time, UTC-aware."""
        return datetime.now(UTC) + self.offset

    def timestamp(self) -> int:
        """The current sandbox time as Unix seconds."""
        return int(self.now().timestamp())

    def advance(self, seconds: float) -> None:
        """Move the clock forward (tests: token expiry, quota periods)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += timedelta(seconds=seconds)
