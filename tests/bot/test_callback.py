"""The callback end to end over HTTP, in all three modes, against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.keywords import add_rule
from bot.models import DeferredReply, Follower, InboundMessageRecord
from bot.router import Context, Router, TextReply
from bot.service import build_dispatcher
from bot.web import BOT
from govcast import runtime
from govcast.settings import Settings
from publisher.db import Database
from tests.bot.helpers import (
    GH,
    WeChatSide,
    bot_app,
    bot_settings,
    event_xml,
    reply_content,
    sign,
    text_xml,
)

MODES = ["plain", "compatible", "safe"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mode: str) -> Settings:
    return bot_settings(tmp_path, database_url, mode)


async def _client(aiohttp_client: Any, settings: Settings, db: Database) -> TestClient:
    return await aiohttp_client(bot_app(settings, db))  # type: ignore[no-any-return]


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, db: Database) -> TestClient:
    return await _client(aiohttp_client, settings, db)


async def post(client: TestClient, xml: str, mode: str, **kw: Any) -> tuple[int, str]:
    query, body = WeChatSide().push(xml, mode, **kw)
    resp = await client.post("/wechat/main", params=query, data=body.encode())
    return resp.status, await resp.text()


def opened(body: str, mode: str) -> str:
    return WeChatSide().open_reply(body) if mode != "plain" else body


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def counting_router(calls: list[str], delay: float = 0.0) -> Router:
    router = Router(name="test-counter")

    @router.message()
    async def handle(ctx: Context) -> TextReply:
        calls.append(ctx.message.content)
        if delay:
            await asyncio.sleep(delay)
        return TextReply(f"第{len(calls)}次处理：{ctx.message.content}")

    return router


def use_router(client: TestClient, router: Router) -> None:
    service = client.server.app[BOT]
    service.dispatcher = build_dispatcher(service.settings, service.rules, [router])


# --- verification and modes --------------------------------------------------------------------


async def test_url_verification_echoes(client: TestClient) -> None:
    ts, nonce = str(int(time.time())), "12345"
    params = {
        "timestamp": ts,
        "nonce": nonce,
        "echostr": "hello123",
        "signature": sign("spamtest", ts, nonce),
    }
    resp = await client.get("/wechat/main", params=params)
    assert resp.status == 200
    assert await resp.text() == "hello123"
    params["signature"] = "0" * 40
    assert (await client.get("/wechat/main", params=params)).status == 401


async def test_keyword_reply_in_each_mode(client: TestClient, db: Database, mode: str) -> None:
    async with db.transaction() as session:
        await add_rule(
            session,
            match="exact",
            pattern="医保",
            reply_text="医保缴费请访问 <a>市医保局</a> ]]> 网站",
        )
    status, body = await post(client, text_xml("医保", 1001), mode)
    assert status == 200
    if mode != "plain":
        assert "<Encrypt>" in body and "医保" not in body
    xml = opened(body, mode)
    assert f"<FromUserName><![CDATA[{GH}]]></FromUserName>" in xml
    assert "<ToUserName><![CDATA[o_citizen_1]]></ToUserName>" in xml
    assert (
        reply_content(xml).replace("]]]]><![CDATA[>", "]]>")
        == "医保缴费请访问 <a>市医保局</a> ]]> 网站"
    )
    assert await count(db, InboundMessageRecord) == 1


async def test_compatible_mode_accepts_plain_pushes(
    aiohttp_client: Any, tmp_path: Path, database_url: str, db: Database
) -> None:
    settings = bot_settings(tmp_path, database_url, "compatible")
    client = await _client(aiohttp_client, settings, db)
    status, body = await post(client, text_xml("随便问问", 1002), "plain")
    assert status == 200 and "<xml>" in body and "<Encrypt>" not in body


async def test_unknown_text_searches_and_answers_helpfully(client: TestClient, mode: str) -> None:
    status, body = await post(client, text_xml("一个不存在的话题", 1003), mode)
    assert status == 200
    assert "暂未找到相关的公开信息" in opened(body, mode)


# --- exactly once --------------------------------------------------------------------------------


async def test_three_tries_one_handling_identical_replies(
    client: TestClient, db: Database, mode: str
) -> None:
    calls: list[str] = []
    use_router(client, counting_router(calls))
    xml = text_xml("你好", 2001)
    replies = [opened((await post(client, xml, mode))[1], mode) for _ in range(3)]
    assert calls == ["你好"]
    assert replies[0] == replies[1] == replies[2]
    assert "第1次处理" in replies[0]
    assert await count(db, InboundMessageRecord) == 1


async def test_concurrent_retries_handle_once(client: TestClient, mode: str) -> None:
    calls: list[str] = []
    use_router(client, counting_router(calls, delay=0.2))
    xml = text_xml("并发", 2002)
    results = await asyncio.gather(*[post(client, xml, mode) for _ in range(3)])
    assert calls == ["并发"]
    texts = [opened(body, mode) if body != "success" else body for _, body in results]
    assert all(status == 200 for status, _ in results)
    handled = [t for t in texts if t != "success"]
    assert handled and all(t == handled[0] for t in handled)


async def test_two_app_instances_share_dedup(
    aiohttp_client: Any, settings: Settings, db: Database, mode: str
) -> None:
    # A second process: its own app, its own engine, the same database.
    other_db = runtime.database(settings)
    try:
        first = await _client(aiohttp_client, settings, db)
        second = await _client(aiohttp_client, settings, other_db)
        calls: list[str] = []
        use_router(first, counting_router(calls))
        use_router(second, counting_router(calls))
        xml = text_xml("跨进程", 2003)
        bodies = []
        for client in (first, second, first):
            status, body = await post(client, xml, mode)
            assert status == 200
            bodies.append(opened(body, mode))
        assert calls == ["跨进程"]
        assert bodies[0] == bodies[1] == bodies[2]
    finally:
        await other_db.dispose()


async def test_events_dedup_by_sender_and_time(client: TestClient, db: Database, mode: str) -> None:
    xml = event_xml("subscribe", create=int(time.time()))
    first = opened((await post(client, xml, mode))[1], mode)
    second = opened((await post(client, xml, mode))[1], mode)
    assert first == second and "欢迎关注" in first
    assert await count(db, InboundMessageRecord) == 1
    async with db.sessions() as session:
        follower = (await session.scalars(select(Follower))).one()
    assert follower.subscribed
    status, body = await post(client, event_xml("unsubscribe", create=int(time.time()) + 1), mode)
    assert status == 200 and body == "success"
    async with db.sessions() as session:
        follower = (await session.scalars(select(Follower))).one()
    assert not follower.subscribed and follower.unsubscribed_at is not None


# --- in time ---------------------------------------------------------------------------------------


class FakeAPI:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        self.sent.append(("text", (openid, text)))
        return {"errcode": 0}

    async def send_custom_news(self, openid: str, articles: Any) -> dict[str, Any]:
        self.sent.append(("news", (openid, articles)))
        return {"errcode": 0}

    async def send_template(
        self, openid: str, template_id: str, data: Any, url: Any = None
    ) -> dict[str, Any]:
        self.sent.append(("template", (openid, template_id, data)))
        return {"errcode": 0}


async def test_slow_handler_answers_success_and_delivers_later(
    aiohttp_client: Any, tmp_path: Path, database_url: str, db: Database
) -> None:
    settings = bot_settings(tmp_path, database_url, "safe", **{"bot.reply_budget_seconds": 0.3})
    client = await _client(aiohttp_client, settings, db)
    api = FakeAPI()
    client.server.app[BOT].api_for = lambda account: api
    calls: list[str] = []
    use_router(client, counting_router(calls, delay=1.0))
    xml = text_xml("慢慢来", 3001)
    status, body = await post(client, xml, "safe")
    assert status == 200 and body == "success"
    # A retry while the handler still runs gets `success` too, never a second handling.
    assert (await post(client, xml, "safe"))[1] == "success"
    for _ in range(600):  # generous: a loaded machine may take seconds
        async with db.sessions() as session:
            row = (await session.scalars(select(DeferredReply))).one_or_none()
        if api.sent and row is not None and row.state == "sent":
            break
        await asyncio.sleep(0.05)
    assert calls == ["慢慢来"]
    assert api.sent == [("text", ("o_citizen_1", "第1次处理：慢慢来"))]
    async with db.sessions() as session:
        row = (await session.scalars(select(DeferredReply))).one()
    assert row.state == "sent" and row.via == "custom"


async def test_handler_error_gets_a_polite_apology(client: TestClient, mode: str) -> None:
    router = Router(name="broken")

    @router.message()
    async def boom(ctx: Context) -> TextReply:
        raise RuntimeError("database on fire")

    use_router(client, router)
    status, body = await post(client, text_xml("出错", 3002), mode)
    assert status == 200
    text = opened(body, mode)
    assert "抱歉" in text and "暂时无法提供服务" not in text and "fire" not in text


async def test_menu_clicks_answer(client: TestClient, mode: str) -> None:
    extra = "<EventKey><![CDATA[latest_releases]]></EventKey>"
    status, body = await post(
        client, event_xml("CLICK", create=int(time.time()), extra=extra), mode
    )
    assert status == 200
    assert "暂无相关内容" in opened(body, mode)
