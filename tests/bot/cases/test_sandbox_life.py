"""The whole life of cases through the real application and its sandbox: a citizen's
WeChat intake pushed to /wechat/main, replies inside and outside the 48-hour window, a
Weibo comment polled into a case (no duplicate after a restart) and answered on Weibo."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.cases import service
from bot.cases import web as cases_web
from bot.cases.models import Case, CaseEvent, CaseMessage
from bot.keywords import add_rule
from govcast import keys
from govcast.app import create_app
from publisher.db import Database
from publisher.staff import StaffMember
from sandbox.web import CLOCK as SANDBOX_CLOCK
from tests.conftest import make_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, database_url: str, clock: list[datetime]
) -> AsyncIterator[tuple[web.Application, str]]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path,
        database_url,
        **{
            "server.port": port,
            "website.base_url": origin,
            "wechat.accounts.main.api_base_url": f"{origin}/sandbox/wechat/cgi-bin",
            "weibo.accounts.main.api_base_url": f"{origin}/sandbox/weibo/2",
            "cases.wechat_template_id": "TPL_CASE_REPLY",
        },
    )
    app = create_app(settings, {"web"})
    app[cases_web.CLOCK] = lambda: clock[0]
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield app, origin
    finally:
        await server.close()


async def tick(app: web.Application, name: str) -> Any:
    for job in cases_web.ticks(app):
        if job.name == name:
            return await job.run()
    raise AssertionError(name)


async def citizen(http: aiohttp.ClientSession, origin: str, text: str, follower: int = 0) -> str:
    async with http.post(
        f"{origin}/sandbox/wechat/_citizen/send",
        json={"account": "main", "follower": follower, "content": text},
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["shown"])


async def handle(db: Database, admin: StaffMember, number: str, at: datetime) -> None:
    async with db.transaction() as session:
        case = await service.case_by_number(session, number)
        assert case is not None
        await service.accept(session, admin, case.id, now=at)
        await service.assign(session, admin, case.id, "城管局", admin.user_id, now=at)
        await service.reply(
            session, admin, case.id, "路灯已于今日修复，感谢您的监督。", now=at, base_url="http://x"
        )


async def test_wechat_and_weibo_lives(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    admin = staff_members["admin"]
    clock = [datetime.now(UTC)]
    async with (
        running(tmp_path, database_url, clock) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        # --- WeChat: guided intake through the sandbox's signed, encrypted push ---------
        assert "1 咨询" in await citizen(http, origin, "留言")
        await citizen(http, origin, "2")
        await citizen(http, origin, "小区门口路灯坏了一个月了，请尽快修理")
        done = await citizen(http, origin, "1")
        number = done.split("编号 ")[1].split("，")[0]
        assert number.startswith("GC")
        assert "已收到" in await citizen(http, origin, number)
        # Another follower cannot read it.
        assert "未找到" in await citizen(http, origin, number, follower=1)
        await handle(db, admin, number, clock[0])
        assert await tick(app, "cases_send_messages") == 1
        assert await tick(app, "cases_send_messages") == 0
        async with db.sessions() as session:
            methods = [m.method for m in (await session.execute(select(CaseMessage))).scalars()]
        assert methods == ["wechat_custom"]
        assert "5 分" in await citizen(http, origin, "评价 5")

        # --- outside the 48-hour window: a template message -------------------------------
        await citizen(http, origin, "留言", follower=2)
        await citizen(http, origin, "3", follower=2)
        await citizen(http, origin, "建议在公园增设无障碍通道", follower=2)
        second = (await citizen(http, origin, "2", follower=2)).split("编号 ")[1].split("，")[0]
        app[SANDBOX_CLOCK].advance(49 * 3600)
        clock[0] = clock[0] + timedelta(hours=49)
        await handle(db, admin, second, clock[0])
        assert await tick(app, "cases_send_messages") == 1
        async with db.sessions() as session:
            rows = list(
                (await session.execute(select(CaseMessage).order_by(CaseMessage.id))).scalars()
            )
        assert [m.method for m in rows] == ["wechat_custom", "wechat_template"]

        # --- Weibo: a follower's comment on our post becomes one case --------------------
        channels: Any = app[keys.CHANNELS]
        weibo = channels["weibo"].api("main")
        post = await weibo.share(f"关于路灯维修的通知 {origin}/disclosure/x")
        async with http.post(
            f"{origin}/sandbox/weibo/_followers/comment",
            json={
                "account": "main",
                "status_id": str(post["id"]),
                "follower": 3,
                "text": "我家楼下的路灯也不亮，什么时候修？",
            },
        ) as r:
            assert r.status == 200, await r.text()
        assert await tick(app, "cases_weibo_comments") == 1
        assert await tick(app, "cases_weibo_comments") == 0
        # A keyword rule the office has not put on automatic answers is only a suggestion:
        # the comment still becomes a case, with the suggested answer noted for staff.
        async with db.transaction() as session:
            await add_rule(
                session,
                match="contains",
                pattern="医保",
                reply_text="医保缴费请见 http://127.0.0.1/yibao",
            )
        async with http.post(
            f"{origin}/sandbox/weibo/_followers/comment",
            json={
                "account": "main",
                "status_id": str(post["id"]),
                "follower": 4,
                "text": "请问今年医保怎么缴费？",
            },
        ) as r:
            assert r.status == 200, await r.text()
        assert await tick(app, "cases_weibo_comments") == 1
        assert await tick(app, "cases_send_messages") == 0
        shown = await weibo.comments_show(post["id"])
        assert not any("医保缴费请见" in c["text"] for c in shown["comments"])
        async with db.sessions() as session:
            yibao = (
                await session.execute(select(Case).where(Case.text.contains("医保")))
            ).scalar_one()
            notes = (
                await session.execute(select(CaseEvent.text).where(CaseEvent.case_id == yibao.id))
            ).scalars()
            assert any("医保缴费请见" in n for n in notes)
    # A restart: a new application over the same database polls again; still one case.
    async with running(tmp_path, database_url, clock) as (app, origin):
        assert await tick(app, "cases_weibo_comments") == 0
        async with db.sessions() as session:
            weibo_case = (
                await session.execute(
                    select(Case).where(
                        Case.channel == "weibo",
                        Case.state == "received",
                        Case.text.contains("路灯"),
                    )
                )
            ).scalar_one()
        await handle(db, admin, weibo_case.number, clock[0])
        assert await tick(app, "cases_send_messages") == 1
        registry: Any = app[keys.CHANNELS]
        comments = (
            await registry["weibo"].api("main").comments_show(weibo_case.reply_address["status_id"])
        )
        replies = [c for c in comments["comments"] if "路灯已于今日修复" in c["text"]]
        assert len(replies) == 1
