"""The part of the settings the core needs, handed to it explicitly by the shell."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class CoreConfig:
    """Workflow, queue and publishing parameters of one deployment."""

    website_base_url: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    review_steps: int = 3
    max_body_chars: int = 200_000
    quiet_hours_start: time = time(22, 0)
    quiet_hours_end: time = time(7, 0)
    # Channel targets ("website", "wechat:main", ...) available to each office key.
    targets_by_office: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Content checks at final approval: (session, publication) -> findings, usually with
    # the office's editable lists. None runs the list-free checks (publisher.checks).
    content_checks: Callable[[Any, Any], Awaitable[Sequence[Any]]] | None = None
    # Extra rules at final approval: (session, publication) -> None, raising ValidationError
    # (e.g. a solicitation's minimum window, installed by the shell from bot.cases).
    approval_rules: Callable[[Any, Any], Awaitable[None]] | None = None

    def item_url(self, index_number: str) -> str:
        """The public address of an item on the disclosure platform."""
        return f"{self.website_base_url.rstrip('/')}/disclosure/{index_number}"
