"""The callback dedup with the optional Redis pre-filter, on real SQLite and PostgreSQL and
the real Redis: WeChat's retries across processes are handled once and get the identical
reply, duplicates are turned away without touching the database, and a Redis that was
flushed between a claim and its retry, or is unreachable, never breaks exactly-once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import func, select

from bot import web as bot_web
from bot.dedup import Claim, Finish, InboundStore
from bot.models import InboundMessageRecord
from bot.service import build_dispatcher
from bot.web import BOT
from govcast import keys, runtime
from govcast.rediscache import SharedRedis
from govcast.settings import Settings
from publisher.db import Database
from tests.bot.helpers import WeChatSide, bot_settings, text_xml
from tests.bot.test_callback import counting_router
from tests.redis_helpers import (
    UNREACHABLE_URL,
    StatementCounter,
    flush,
    messages,
    raw_redis,
    redis_prefix,
    shared,
)

__all__ = ["raw_redis", "redis_prefix"]  # fixtures

MODE = "safe"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return bot_settings(tmp_path, database_url, MODE)


def app_with_redis(settings: Settings, db: Database, redis: SharedRedis) -> web.Application:
    """The bot alone, as create_app wires it: the Redis client under keys.REDIS."""
    app = web.Application()
    app[keys.SETTINGS] = settings
    app[keys.DB] = db
    app[keys.REDIS] = redis
    bot_web.setup(app)
    return app


@contextlib.asynccontextmanager
async def two_processes(
    aiohttp_client: Any, settings: Settings, db: Database, prefix: str, url: str | None = None
) -> AsyncIterator[tuple[TestClient, TestClient, Database, list[str]]]:
    """Two bot processes: own apps, own database handles, own Redis clients."""
    other_db = runtime.database(settings)
    extra = {"url": url} if url else {}
    try:
        async with shared(prefix, **extra) as r1, shared(prefix, **extra) as r2:
            first = await aiohttp_client(app_with_redis(settings, db, r1))
            second = await aiohttp_client(app_with_redis(settings, other_db, r2))
            calls: list[str] = []
            for client in (first, second):
                service = client.server.app[BOT]
                service.dispatcher = build_dispatcher(
                    service.settings, service.rules, [counting_router(calls)]
                )
            yield first, second, other_db, calls
    finally:
        await other_db.dispose()


async def post(client: TestClient, xml: str) -> str:
    query, body = WeChatSide().push(xml, MODE)
    resp = await client.post("/wechat/main", params=query, data=body.encode())
    assert resp.status == 200
    return WeChatSide().open_reply(await resp.text())


async def records(db: Database) -> int:
    async with db.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(InboundMessageRecord))
    return int(count or 0)


def mark_key(prefix: str, dedup_key: str) -> str:
    return f"{prefix}inbound:main:{dedup_key}"


async def test_three_retries_across_two_processes_one_handling_same_reply(
    aiohttp_client: Any, settings: Settings, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    async with two_processes(aiohttp_client, settings, db, redis_prefix) as (a, b, b_db, calls):
        xml = text_xml("跨进程", 4001)
        first = await post(a, xml)
        assert calls == ["跨进程"] and "第1次处理" in first
        stored = await raw_redis.get(mark_key(redis_prefix, "m:4001"))
        assert stored is not None and stored.decode().startswith("done:<xml>")
        # The retries reach the other process: turned away and answered from Redis alone.
        counters = [StatementCounter(db, "bot_inbound"), StatementCounter(b_db, "bot_inbound")]
        stores = [a.server.app[BOT].store, b.server.app[BOT].store]
        sent = [store.statements for store in stores]  # on PostgreSQL's kept connections
        try:
            second = await post(b, xml)
            third = await post(a, xml)
            assert [c.count for c in counters] == [0, 0]
            assert [store.statements for store in stores] == sent
        finally:
            for counter in counters:
                counter.close()
        assert calls == ["跨进程"]
        assert first == second == third
        assert await records(db) == 1


async def test_concurrent_retries_across_two_processes(
    aiohttp_client: Any, settings: Settings, db: Database, redis_prefix: str
) -> None:
    async with two_processes(aiohttp_client, settings, db, redis_prefix) as (a, b, _, calls):
        for service in (a.server.app[BOT], b.server.app[BOT]):
            service.dispatcher = build_dispatcher(
                service.settings, service.rules, [counting_router(calls, delay=0.3)]
            )
        xml = text_xml("并发", 4002)
        replies = await asyncio.gather(post(a, xml), post(b, xml), post(a, xml), post(b, xml))
        assert calls == ["并发"]
        # Retries waiting up to bot.retry_wait_seconds get the same reply as the first.
        assert len(set(replies)) == 1 and "第1次处理" in replies[0]


async def test_redis_flushed_between_claim_and_retry_still_one_handling(
    aiohttp_client: Any, settings: Settings, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    async with two_processes(aiohttp_client, settings, db, redis_prefix) as (a, b, _, calls):
        xml = text_xml("重启", 4003)
        first = await post(a, xml)
        assert await flush(redis_prefix) == 1  # Redis restarted: every mark is gone
        second = await post(b, xml)  # wins the Redis mark again, loses the database claim
        assert calls == ["重启"] and second == first
        # Its mark was dropped (compare-and-delete), so the next retry reads the database too.
        assert await raw_redis.get(mark_key(redis_prefix, "m:4003")) is None
        await flush(redis_prefix)
        third = await post(a, xml)
        assert calls == ["重启"] and third == first
        assert await records(db) == 1


async def test_flush_while_the_first_is_still_handling(
    aiohttp_client: Any, settings: Settings, db: Database, redis_prefix: str
) -> None:
    async with two_processes(aiohttp_client, settings, db, redis_prefix) as (a, b, _, calls):
        for service in (a.server.app[BOT], b.server.app[BOT]):
            service.dispatcher = build_dispatcher(
                service.settings, service.rules, [counting_router(calls, delay=0.5)]
            )
        xml = text_xml("处理中", 4004)
        first = asyncio.ensure_future(post(a, xml))
        await asyncio.sleep(0.2)  # claimed in Redis and the database, still handling
        await flush(redis_prefix)
        second = await post(b, xml)
        assert calls == ["处理中"]
        assert second == await first  # the retry waited for the stored reply


async def test_unreachable_redis_keeps_exactly_once(
    aiohttp_client: Any,
    settings: Settings,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        async with two_processes(
            aiohttp_client, settings, db, "govcast-down:", url=UNREACHABLE_URL
        ) as (a, b, _, calls):
            xml = text_xml("断开", 4005)
            replies = [await post(client, xml) for client in (a, b, a)]
            assert calls == ["断开"]
            assert replies[0] == replies[1] == replies[2]
    assert "redis unavailable; using the database" in caplog.text
    assert "hunter2" not in messages(caplog.records)


# --- the store directly ------------------------------------------------------------------------


async def test_group_claims_with_redis_once_per_key(
    db: Database, database_url: str, redis_prefix: str
) -> None:
    other = Database(database_url)
    try:
        async with shared(redis_prefix) as r1, shared(redis_prefix) as r2:
            one, two = InboundStore(db, redis=r1), InboundStore(other, redis=r2)
            now = int(time.time())
            claims = [Claim("main", f"m:{i % 5}", "o", "text", now) for i in range(40)]
            won = await asyncio.gather(
                *[(one if i % 2 else two).claim(c) for i, c in enumerate(claims)]
            )
            assert sum(won) == 5
            counter = StatementCounter(other, "bot_inbound")
            sent = two.statements
            again = await asyncio.gather(*[two.claim(c) for c in claims[:5]])
            assert not any(again) and counter.count == 0  # turned away by Redis alone
            assert two.statements == sent
            counter.close()
            await asyncio.gather(
                *[one.finish(Finish("main", f"m:{i}", "done", f"r{i}")) for i in range(5)]
            )
            assert await two.wait_reply("main", "m:3", 0.1) == "r3"
            assert await one.lookup("main", "m:3") == ("done", "r3")  # the database has it
            await one.close()
            await two.close()
    finally:
        await other.dispose()


async def test_a_failed_database_claim_releases_the_redis_mark(
    db: Database, redis_prefix: str, raw_redis: Redis, tmp_path: Path
) -> None:
    # A database that cannot be reached (no such folder): the claim fails.
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.sqlite3'}")
    claim = Claim("main", "m:4100", "o", "text", int(time.time()))
    try:
        async with shared(redis_prefix) as redis:
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                await InboundStore(broken, redis=redis).claim(claim)
            assert await raw_redis.get(mark_key(redis_prefix, "m:4100")) is None
            # WeChat's retry reaches a healthy process: it is handled, not turned away.
            healthy = InboundStore(db, redis=redis)
            assert await healthy.claim(claim) is True
            await healthy.close()
    finally:
        await broken.dispose()


@pytest.mark.parametrize("garbage", [b"zzz", b"\xff\xfe", b"h", b"done"])
async def test_a_foreign_or_corrupted_mark_falls_back_to_the_database(
    db: Database, redis_prefix: str, raw_redis: Redis, garbage: bytes
) -> None:
    async with shared(redis_prefix) as redis:
        store = InboundStore(db, redis=redis)
        claim = Claim("main", "m:4200", "o", "text", int(time.time()))
        assert await store.claim(claim)
        await store.finish(Finish("main", "m:4200", "done", "<xml>答复</xml>"))
        await raw_redis.set(mark_key(redis_prefix, "m:4200"), garbage)
        assert not await store.claim(claim)  # a mark is there: a duplicate
        expected = "<xml>答复</xml>" if garbage != b"done" else ""
        assert await store.wait_reply("main", "m:4200", 0.2) == expected
        await store.close()


async def test_hostile_dedup_keys_are_kept_apart(db: Database, redis_prefix: str) -> None:
    async with shared(redis_prefix) as redis:
        store = InboundStore(db, redis=redis)
        now = int(time.time())
        # Long, glob-like and separator-laden keys: each its own mark, none shadowing another.
        keys_ = [
            "e:" + "o" * 250 + ":1:subscribe"  # bot_inbound.dedup_key is 300 at most,
            "e:o*:1:subscribe",
            "e:o?:1:subscribe",
            "e:o:1:sub:scribe",
            "e:o:1:sub",
            "m:１２３",
        ]
        won = [await store.claim(Claim("main", k, "o", "event", now)) for k in keys_]
        assert all(won)
        assert not any([await store.claim(Claim("main", k, "o", "event", now)) for k in keys_])
        other_account = [await store.claim(Claim("dept", k, "o", "event", now)) for k in keys_]
        assert all(other_account)
        await store.close()


async def test_marks_expire_after_twice_the_timestamp_window(
    settings: Settings, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    from bot.service import BotService

    async with shared(redis_prefix) as redis:
        service = BotService(settings, db, redis=redis)
        await service.store.claim(Claim("main", "m:4300", "o", "text", int(time.time())))
        ttl = await raw_redis.ttl(mark_key(redis_prefix, "m:4300"))
        window = settings.bot.timestamp_window_seconds
        assert window < ttl <= 2 * window
        await service.close()
