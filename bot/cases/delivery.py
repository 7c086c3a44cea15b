"""Messages to citizens (replies, rejections) through the channel the case came from,
exactly once: an outbox row per message, claimed with a lease, marked ``sending`` and
committed before the remote call. A row whose outcome is unknown (crash mid-call, an
ambiguous platform answer) is never re-sent automatically — a WeChat customer-service
message cannot be looked up afterwards — it becomes ``unknown`` and staff get an alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update

from bot.cases.models import Case, CaseChannel, CaseMessage
from bot.comments import service as comments
from channels.wechat_api import AmbiguousError
from publisher.db import Database
from publisher.models import Alert
from publisher.orm import utcnow
from publisher.outcomes import ConfigurationError, DeliveryError, PermanentError, TransientError

log = logging.getLogger("govcast.bot.cases")

WECHAT_WINDOW = timedelta(hours=48)
# WeChat: 45015 = outside the 48-hour window, 45047 = too many messages in it.
OUT_OF_WINDOW = {45015, 45047}
WEIBO_COMMENT_LIMIT = 140
MAX_ATTEMPTS = 8


class WeChatMessaging(Protocol):
    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]: ...

    async def send_template(
        self, openid: str, template_id: str, data: Any, url: str | None = None
    ) -> dict[str, Any]: ...


class WeiboCommenting(Protocol):
    async def comment_reply(self, cid: str, id: str, comment: str) -> dict[str, Any]: ...


# (channel name, account) -> the account's API object; raises ConfigurationError if absent.
ApiLookup = Callable[[str, str], Any]


@dataclass(frozen=True)
class DeliveryOptions:
    base_url: str
    wechat_template_id: str = ""
    lease_seconds: float = 60.0
    batch: int = 20


@dataclass(frozen=True)
class Sent:
    method: str
    remote_id: str = ""


def track_url(base_url: str, number: str) -> str:
    """The citizen's case page."""
    return f"{base_url.rstrip('/')}/cases/track?number={number}"


def weibo_text(text: str, url: str) -> str:
    """A comment reply within Weibo's 140 characters, pointing at the full reply."""
    room = WEIBO_COMMENT_LIMIT - len(url) - 2
    body = text if len(text) <= room else text[: max(0, room - 1)] + "…"
    return f"{body} {url}"


async def send_one(
    case: Case, message: CaseMessage, apis: ApiLookup, options: DeliveryOptions, now: datetime
) -> Sent:
    """Deliver one message through the case's channel (I/O only); typed errors."""
    channel = CaseChannel(case.channel)
    if channel == CaseChannel.WECHAT:
        openid = str(case.reply_address.get("openid", ""))
        if not openid:
            raise PermanentError("case has no WeChat OpenID to reply to")
        api: WeChatMessaging = apis("wechat", case.account)
        last = case.last_citizen_message_at
        if last is not None and now - last < WECHAT_WINDOW:
            try:
                result = await api.send_custom_text(openid, message.text)
                return Sent("wechat_custom", str(result.get("msgid", "")))
            except PermanentError as exc:
                if exc.code not in OUT_OF_WINDOW:
                    raise
        if not options.wechat_template_id:
            raise ConfigurationError(
                "cases.wechat_template_id is not set: replies outside the 48-hour window "
                "need a template message"
            )
        result = await api.send_template(
            openid,
            options.wechat_template_id,
            {
                "first": f"您的留言 {case.number} 有新进展",
                "keyword1": case.number,
                "keyword2": message.text[:180],
                "remark": "点击查看详情并评价 / open to read and rate",
            },
            url=track_url(options.base_url, case.number),
        )
        return Sent("wechat_template", str(result.get("msgid", "")))
    if channel == CaseChannel.WEIBO:
        cid = str(case.reply_address.get("comment_id", ""))
        status_id = str(case.reply_address.get("status_id", ""))
        if not cid or not status_id:
            raise PermanentError("case has no Weibo comment to reply to")
        weibo: WeiboCommenting = apis("weibo", case.account)
        result = await weibo.comment_reply(
            cid, status_id, weibo_text(message.text, track_url(options.base_url, case.number))
        )
        return Sent("weibo_comment", str(result.get("id", "")))
    if channel == CaseChannel.WEB:
        return Sent("web_page")  # the citizen reads it on the case page
    return Sent("staff")  # phone and mail: staff pass the reply on themselves


async def _claim(db: Database, options: DeliveryOptions, now: datetime) -> list[int]:
    async with db.transaction() as session:
        # Rows left in `sending` by a crashed process: outcome unknown, never re-sent.
        stale = (
            await session.execute(
                select(CaseMessage).where(
                    CaseMessage.state == "sending", CaseMessage.lease_expires_at < now
                )
            )
        ).scalars()
        for row in stale:
            row.state = "unknown"
            row.last_error = "outcome unknown after an interrupted send; check with the citizen"
            session.add(
                Alert(
                    severity="error",
                    kind="case_message_unknown",
                    created_at=now,
                    message=f"案件消息 {row.id}（案件 {row.case_id}）发送结果未知，请人工核实",
                )
            )
        stmt = (
            select(CaseMessage.id)
            .where(CaseMessage.state == "pending", CaseMessage.not_before <= now)
            .order_by(CaseMessage.not_before, CaseMessage.id)
            .limit(options.batch)
        )
        if db.is_postgresql:
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list((await session.execute(stmt)).scalars())
        if ids:
            await session.execute(
                update(CaseMessage)
                .where(CaseMessage.id.in_(ids))
                .values(
                    state="sending",
                    attempts=CaseMessage.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=options.lease_seconds),
                )
            )
    return ids


async def deliver_due(
    db: Database, apis: ApiLookup, options: DeliveryOptions, *, now: datetime | None = None
) -> int:
    """Send every due message once; returns how many were delivered."""
    now = now or utcnow()
    delivered = 0
    for message_id in await _claim(db, options, now):
        async with db.sessions() as session:
            message = await session.get(CaseMessage, message_id)
            case = await session.get(Case, message.case_id) if message else None
        if message is None or case is None:
            continue
        if await _answered_in_inbox(db, case):
            # One reply per Weibo comment: the comments inbox already answered this one.
            await _finish(
                db,
                message_id,
                "dead",
                error=PermanentError(
                    "该微博评论已在评论收件箱答复，办件答复不再发布在评论下，请另行告知",
                    code="comment_answered",
                ),
                now=now,
                alert=True,
            )
            continue
        try:
            sent = await send_one(case, message, apis, options, now)
        except AmbiguousError as exc:
            await _finish(db, message_id, "unknown", error=exc, now=now, alert=True)
        except TransientError as exc:
            if message.attempts >= MAX_ATTEMPTS:
                await _finish(db, message_id, "dead", error=exc, now=now, alert=True)
            else:
                delay = exc.retry_after or min(3600.0, 30.0 * 2**message.attempts)
                await _finish(
                    db,
                    message_id,
                    "pending",
                    error=exc,
                    now=now,
                    not_before=now + timedelta(seconds=delay),
                )
        except DeliveryError as exc:
            await _finish(db, message_id, "dead", error=exc, now=now, alert=True)
        else:
            delivered += 1
            async with db.transaction() as session:
                row = await session.get(CaseMessage, message_id)
                if row is not None:
                    row.state, row.method, row.remote_id = "done", sent.method, sent.remote_id
                    row.sent_at, row.last_error = now, None
                if sent.method == "weibo_comment":
                    # The comment counts as answered in the inbox, which will not answer it.
                    posted = weibo_text(message.text, track_url(options.base_url, case.number))
                    await comments.case_answered(
                        session,
                        case.account,
                        str(case.reply_address.get("comment_id")),
                        posted,
                        now,
                    )
            log.info(
                "case message sent",
                extra={"case_id": case.id, "message_id": message_id, "method": sent.method},
            )
    return delivered


async def _answered_in_inbox(db: Database, case: Case) -> bool:
    """Whether the Weibo comment this case replies under already has the inbox's reply."""
    if case.channel != CaseChannel.WEIBO.value or not case.reply_address.get("comment_id"):
        return False
    async with db.sessions() as session:
        reply = await comments.inbox_reply_of(
            session, case.account, str(case.reply_address["comment_id"])
        )
    return reply is not None


async def _finish(
    db: Database,
    message_id: int,
    state: str,
    *,
    error: DeliveryError,
    now: datetime,
    alert: bool = False,
    not_before: datetime | None = None,
) -> None:
    async with db.transaction() as session:
        row = await session.get(CaseMessage, message_id)
        if row is None:
            return
        row.state = state
        row.last_error = error.message[:2000]
        row.lease_expires_at = None
        if not_before is not None:
            row.not_before = not_before
        if alert:
            session.add(
                Alert(
                    severity="error",
                    kind="case_message",
                    created_at=now,
                    message=(
                        f"案件消息 {row.id}（案件 {row.case_id}）未能送达：{error.message[:500]}"
                    ),
                )
            )
    log.warning(
        "case message not sent",
        extra={"message_id": message_id, "state": state, "error_kind": error.kind},
    )
