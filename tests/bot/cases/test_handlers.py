"""The WeChat side of cases through the bot's dispatcher: guided intake, status, my cases,
rating, and a citizen never seeing another citizen's case."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import event

from bot.cases import service
from bot.cases import web as cases_web
from bot.cases.handlers import router
from bot.router import Context, Dispatcher, InboundMessage, TextReply
from govcast import runtime
from govcast.settings import Settings
from publisher.db import Database
from publisher.staff import StaffMember
from tests.bot.helpers import WeChatSide, bot_app, bot_settings, reply_content, text_xml

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


async def test_intake_begun_in_another_process_continues_here(
    db: Database, settings: Settings
) -> None:
    # A second engine on the same database stands in for another web process.
    other = runtime.database(settings)
    try:
        assert "1 咨询" in (await say(other, settings, "oF", "留言") or "")
        assert "具体内容" in (await say(db, settings, "oF", "2") or "")
        assert "公开" in (await say(other, settings, "oF", "路灯坏了很久了请修") or "")
        assert "GC" in (await say(db, settings, "oF", "1") or "")
        # Finished: the next ordinary text is no longer the intake's, in either process.
        assert await say(other, settings, "oF", "今天天气") is None
        assert await say(db, settings, "oF", "今天天气") is None
    finally:
        await other.dispose()


async def test_concurrent_messages_share_one_state_read(db: Database, settings: Settings) -> None:
    mid_intake = [f"oM{i}" for i in range(5)]
    for openid in mid_intake:
        await say(db, settings, openid, "留言")
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "case_intake_conversations" in statement and " IN " in statement.upper():
            reads.append(statement)

    engine = db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        idle = [f"oI{i}" for i in range(15)]
        replies = await asyncio.gather(
            *(say(db, settings, openid, "2") for openid in [*mid_intake, *idle])
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # Citizens mid-intake get the intake's next step; the others pass on to keywords/search.
    assert all("具体内容" in (reply or "") for reply in replies[:5])
    assert replies[5:] == [None] * 15
    assert len(reads) == 1


async def test_callback_routes_an_intake_begun_in_another_process(
    aiohttp_client: Any, tmp_path: Path, database_url: str, db: Database
) -> None:
    # Through the real callback: on PostgreSQL the state comes with the dedup claim.
    settings = bot_settings(tmp_path, database_url, "plain")
    other = runtime.database(settings)
    try:
        client = await aiohttp_client(bot_app(settings, db))
        await say(other, settings, "oG", "留言", now=datetime.now(UTC))
        query, body = WeChatSide().push(text_xml("2", 7001, openid="oG"), "plain")
        resp = await client.post("/wechat/main", params=query, data=body.encode())
        assert resp.status == 200 and "具体内容" in reply_content(await resp.text())
        # Someone not in an intake goes on to keywords and search instead.
        query, body = WeChatSide().push(text_xml("2", 7002, openid="oH"), "plain")
        resp = await client.post("/wechat/main", params=query, data=body.encode())
        assert resp.status == 200 and "具体内容" not in await resp.text()
    finally:
        await other.dispose()
