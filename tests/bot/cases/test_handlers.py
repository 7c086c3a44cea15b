"""The WeChat side of cases through the bot's dispatcher: guided intake, status, my cases,
rating, and a citizen never seeing another citizen's case."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.cases import service
from bot.cases import web as cases_web
from bot.cases.handlers import router
from bot.router import Context, Dispatcher, InboundMessage, TextReply
from govcast.settings import Settings
from publisher.db import Database
from publisher.staff import StaffMember

NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # Wednesday before National Day
_ids = itertools.count(1)


def _dispatcher() -> Dispatcher:
    dispatcher = Dispatcher()
    fresh = type(router)(name="cases-test")
    fresh.include_router(router)
    dispatcher.include_router(fresh)
    return dispatcher


async def say(
    db: Database,
    settings: Settings,
    openid: str,
    text: str,
    *,
    now: datetime = NOW,
    event: str = "",
    key: str = "",
) -> str | None:
    app = web.Application()
    app[cases_web.CLOCK] = lambda: now
    message = InboundMessage(
        account="main",
        to_user="gh_1",
        openid=openid,
        create_time=int(now.timestamp()),
        msg_type="event" if event else "text",
        msg_id="" if event else str(next(_ids)),
        event=event,
        event_key=key,
        content=text,
    )
    reply = await _dispatcher().feed(Context(message, db=db, settings=settings, app=app))
    assert reply is None or isinstance(reply, TextReply)
    return reply.content if reply else None


async def test_guided_intake_status_and_rating(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember]
) -> None:
    assert "1 咨询" in (await say(db, settings, "oAAA", "留言") or "")
    assert "具体内容" in (await say(db, settings, "oAAA", "2") or "")
    assert "公开" in (await say(db, settings, "oAAA", "小区噪音扰民严重，请处理") or "")
    done = await say(db, settings, "oAAA", "1") or ""
    # Received Wednesday 30 Sept: National Day 1-7 Oct, then Thu 8, Fri 9, Sat 10 (worked),
    # Mon 12, Tue 13 -> due 13 October.
    assert "GC20260930-0001" in done and "2026-10-13" in done
    status = await say(db, settings, "oAAA", "GC20260930-0001") or ""
    assert "已收到" in status
    # Another citizen cannot see it, by number or in "my cases".
    assert "未找到" in (await say(db, settings, "oBBB", "GC20260930-0001") or "")
    assert "还没有留言" in (await say(db, settings, "oBBB", "我的留言") or "")
    assert "GC20260930-0001" in (await say(db, settings, "oAAA", "我的留言") or "")
    async with db.transaction() as session:
        case = await service.case_by_number(session, "GC20260930-0001")
        assert case is not None and case.reply_address == {"openid": "oAAA"}
        assert case.consent_publish is True and case.kind == "complaint"
        await service.accept(session, staff_members["admin"], case.id, now=NOW)
        await service.reply(session, staff_members["admin"], case.id, "已处理", now=NOW)
    assert "没有待评价" in (await say(db, settings, "oBBB", "评价 5") or "")
    assert "5 分" in (await say(db, settings, "oAAA", "评价 5") or "")


async def test_menu_key_cancel_and_unrelated_messages(db: Database, settings: Settings) -> None:
    assert "1 咨询" in (await say(db, settings, "oC", "", event="CLICK", key="leave_message") or "")
    assert "取消" in (await say(db, settings, "oC", "取消") or "")
    # Not a cases message: the cases router passes (here nothing else answers).
    assert await say(db, settings, "oC", "今天天气") is None


async def test_idle_conversation_is_forgotten(db: Database, settings: Settings) -> None:
    await say(db, settings, "oD", "留言")
    later = NOW + timedelta(hours=2)
    assert await say(db, settings, "oD", "3", now=later) is None


async def test_hostile_text(db: Database, settings: Settings) -> None:
    await say(db, settings, "oE", "留言")
    await say(db, settings, "oE", "1")
    reply = await say(db, settings, "oE", "<a href=x>" + "长" * 5000) or ""
    assert "内容需" in reply
    assert "未找到" in (
        (
            await say(db, settings, "oE", "取消")
            and await say(db, settings, "oE", "GC20260930-999999")
        )
        or ""
    )
