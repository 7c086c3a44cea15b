"""Database-backed pieces: keyword rules, deferred replies, retention, dedup batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import deferred
from bot.dedup import Claim, Finish, InboundStore
from bot.keywords import RuleCache, RuleError, add_rule
from bot.models import DeferredReply, Follower, InboundMessageRecord
from bot.router import NewsReply, TextReply
from bot.service import BotService
from govcast.settings import Settings
from publisher.db import Database
from publisher.outcomes import TransientError
from tests.bot.helpers import bot_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return bot_settings(tmp_path, database_url, "safe")


async def test_rules_priority_validity_and_kinds(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as session:
        await add_rule(
            session, match="contains", pattern="社保", reply_text="通用社保", priority=50
        )
        await add_rule(session, match="exact", pattern="社保缴费", reply_text="精确", priority=10)
        await add_rule(
            session,
            match="regex",
            pattern=r"^公积金\d{4}$",
            priority=5,
            reply_news=[{"title": "公积金", "url": "http://example.gov.cn/gjj"}],
        )
        await add_rule(
            session,
            match="exact",
            pattern="过期",
            reply_text="旧的",
            priority=1,
            valid_to=now - timedelta(days=1),
        )
        await add_rule(
            session,
            match="exact",
            pattern="将来",
            reply_text="新的",
            priority=1,
            valid_from=now + timedelta(days=1),
        )
        await add_rule(session, match="exact", pattern="别的号", reply_text="x", account="other")
        with pytest.raises(RuleError):
            await add_rule(session, match="regex", pattern="(a+)+", reply_text="bad")
    cache = RuleCache(db, ttl=60)
    found = await cache.find("main", " 社保缴费 ")
    assert found is not None and found.reply == TextReply("精确")
    found = await cache.find("main", "我想问社保的事")
    assert found is not None and found.reply == TextReply("通用社保")
    found = await cache.find("main", "公积金２０２４")  # full-width digits normalised
    assert found is not None and isinstance(found.reply, NewsReply)
    assert await cache.find("main", "过期") is None
    assert await cache.find("main", "将来") is None
    assert await cache.find("main", "将来", now + timedelta(days=2)) is not None
    assert await cache.find("main", "别的号") is None
    assert await cache.find("other", "别的号") is not None


async def test_group_commit_claims_once_per_key(db: Database) -> None:
    store = InboundStore(db)
    claims = [Claim("main", f"m:{i % 5}", "o", "text", int(time.time())) for i in range(40)]
    won = await asyncio.gather(*[store.claim(c) for c in claims])
    assert sum(won) == 5
    again = await asyncio.gather(*[store.claim(c) for c in claims[:5]])
    assert not any(again)
    await asyncio.gather(
        *[store.finish(Finish("main", f"m:{i}", "done", f"r{i}")) for i in range(5)]
    )
    assert await store.lookup("main", "m:3") == ("done", "r3")
    assert await store.wait_reply("main", "m:3", 0.1) == "r3"
    assert await store.lookup("main", "m:99") is None
    await store.close()


class ScriptedAPI:
    def __init__(self, errors: list[Exception] | None = None) -> None:
        self.errors = errors or []
        self.calls: list[str] = []

    async def _call(self, name: str) -> dict[str, Any]:
        self.calls.append(name)
        if self.errors:
            raise self.errors.pop(0)
        return {"errcode": 0}

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        return await self._call("custom_text")

    async def send_custom_news(self, openid: str, articles: Any) -> dict[str, Any]:
        return await self._call("custom_news")

    async def send_template(
        self, openid: str, template_id: str, data: Any, url: Any = None
    ) -> dict[str, Any]:
        return await self._call("template")


async def _row(db: Database, row_id: int) -> DeferredReply:
    async with db.sessions() as session:
        row = await session.get(DeferredReply, row_id)
    assert row is not None
    return row


async def test_deferred_delivery_paths(
    tmp_path: Path, database_url: str, db: Database, bot_service: Callable[..., BotService]
) -> None:
    settings = bot_settings(tmp_path, database_url, "safe", **{"bot.template_id": "TPL1"})
    api = ScriptedAPI([TransientError("busy", code=-1)])
    service = bot_service(settings, db, api_for=lambda account: api)
    now = datetime.now(UTC)
    recent = await deferred.record(
        db,
        account="main",
        dedup_key="m:1",
        openid="o1",
        reply={"type": "text", "content": "答复"},
        last_inbound_at=now - timedelta(hours=1),
    )
    assert recent is not None
    assert (
        await deferred.record(
            db,
            account="main",
            dedup_key="m:1",
            openid="o1",
            reply={"type": "text", "content": "again"},
            last_inbound_at=now,
        )
        is None
    )
    assert await deferred.deliver(service, recent) == "pending"  # transient: retried later
    assert (await _row(db, recent)).attempts == 1
    assert await deferred.deliver(service, recent) == "sent"
    assert api.calls == ["custom_text", "custom_text"]
    old = await deferred.record(
        db,
        account="main",
        dedup_key="m:2",
        openid="o1",
        reply={"type": "news", "articles": [{"title": "t", "url": "http://x"}]},
        last_inbound_at=now - timedelta(hours=49),
    )
    assert old is not None
    assert await deferred.deliver(service, old) == "sent"
    assert api.calls[-1] == "template" and (await _row(db, old)).via == "template"


async def test_deferred_without_template_or_channel(
    db: Database, settings: Settings, bot_service: Callable[..., BotService]
) -> None:
    now = datetime.now(UTC)
    row = await deferred.record(
        db,
        account="main",
        dedup_key="m:3",
        openid="o1",
        reply={"type": "text", "content": "x"},
        last_inbound_at=now - timedelta(hours=50),
    )
    assert row is not None
    no_channel = bot_service(settings, db)
    assert await deferred.deliver(no_channel, row) == "waiting_channel"
    service = bot_service(settings, db, api_for=lambda account: ScriptedAPI())
    assert await deferred.deliver(service, row, now + timedelta(minutes=2)) == "failed"
    assert "模板" in (await _row(db, row)).last_error
    assert await deferred.deliver_due(service) == 0


async def test_retention_purges_old_personal_data(db: Database) -> None:
    store = InboundStore(db)
    now = datetime.now(UTC)
    old_ts = int((now - timedelta(days=40)).timestamp())
    await store.claim(Claim("main", "m:old", "o1", "text", old_ts))
    await store.claim(Claim("main", "m:new", "o1", "text", int(now.timestamp())))
    await store.close()
    async with db.transaction() as session:
        session.add(
            Follower(
                account="main",
                openid="gone",
                subscribed=False,
                unsubscribed_at=now - timedelta(days=40),
            )
        )
        session.add(Follower(account="main", openid="here", subscribed=True))
    assert await deferred.purge(db, 30, now) == 2
    async with db.sessions() as session:
        keys = (await session.scalars(select(InboundMessageRecord.dedup_key))).all()
        followers = (await session.scalars(select(Follower.openid))).all()
        assert await session.scalar(select(func.count()).select_from(DeferredReply)) == 0
    assert keys == ["m:new"] and followers == ["here"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_kept_connections_plan_each_batch_and_go_back_clean(db: Database) -> None:
    # The kept connections are PostgreSQL's (SQLite runs in-process).
    store = InboundStore(db)
    assert await store.claim(Claim("main", "m:plan", "o", "text", int(time.time())))
    assert store.statements == 1
    lane = store._claim_lane
    assert lane is not None and lane._driver is not None
    # A generic plan cached on an empty table would stay a sequential scan.
    driver = lane._driver
    assert await driver.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    await store.close()
    # Back in the pool (idle, so asking it directly is safe here) as it was taken.
    assert not driver.is_closed()
    assert await driver.fetchval("SHOW plan_cache_mode") == "auto"
