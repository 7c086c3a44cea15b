"""Shared helpers of the cases tests: rules, a fake platform API, case creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.cases import service
from bot.cases.calendar import WorkCalendar
from bot.cases.service import CaseRules, NewCase
from publisher.db import Database
from publisher.outcomes import DeliveryError

RULES = CaseRules(departments=("城管局", "医保局"))


@dataclass
class FakeApi:
    """Records what a WeChat/Weibo account API was asked to send; fails on demand."""

    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    script: list[DeliveryError | None] = field(default_factory=list)

    def _next(self) -> None:
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        self._next()
        self.sent.append(("custom", (openid, text)))
        return {"errcode": 0, "msgid": len(self.sent)}

    async def send_template(
        self, openid: str, template_id: str, data: Any, url: str | None = None
    ) -> dict[str, Any]:
        self._next()
        self.sent.append(("template", (openid, template_id, dict(data), url)))
        return {"errcode": 0, "msgid": len(self.sent)}

    async def comment_reply(self, cid: str, id: str, comment: str) -> dict[str, Any]:
        self._next()
        self.sent.append(("weibo_reply", (cid, id, comment)))
        return {"id": f"r{len(self.sent)}"}


async def new_case(
    db: Database,
    when: datetime,
    *,
    channel: str = "web",
    sender: str = "",
    text: str = "路灯坏了很久了",
    consent: bool = True,
    address: dict[str, Any] | None = None,
    account: str = "",
    calendar: WorkCalendar | None = None,
    remote_id: str | None = None,
) -> tuple[int, str, str]:
    """Create a case; returns (id, number, secret)."""
    async with db.transaction() as session:
        cal = calendar or await service.load_calendar(session)
        office_id = await service.office_id_by_key(session, "main")
        case, secret = await service.receive(
            session,
            RULES,
            cal,
            office_id,
            NewCase(
                kind="complaint",
                channel=channel,
                text=text,
                sender=sender,
                consent_publish=consent,
                reply_address=address or {},
                account=account,
                remote_id=remote_id,
                contact_name="张伟",
            ),
            now=when,
        )
        return case.id, case.number, secret
