"""The token holder with the optional Redis read cache, on real SQLite and PostgreSQL and the
real Redis: tokens shared without a database round trip, refresh still single-flight
(the database row lock), a flushed, corrupted, unreachable or hung Redis never changes
the outcome, and a delivery goes through with Redis unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from channels.tokens import TokenHolder, TokenPolicy
from govcast import keys, rediscache
from govcast.rediscache import SharedRedis
from publisher.db import Database
from publisher.staff import StaffMember
from tests.channels.live import free_port, live_settings, running
from tests.channels.test_end_to_end import Platforms, _approve, _urls, settled, states_of, wait_for
from tests.channels.test_tokens import Clock, Fetcher
from tests.redis_helpers import (
    REDIS_URL,
    UNREACHABLE_URL,
    SilentServer,
    StatementCounter,
    flush,
    messages,
    raw_redis,
    redis_prefix,
    redis_settings,
    shared,
)

__all__ = ["raw_redis", "redis_prefix"]  # fixtures

APP = "wxredis"


def token_key(prefix: str) -> str:
    return f"{prefix}token:wechat:{APP}"


@contextlib.asynccontextmanager
async def processes(
    url: str, prefix: str, fetch: Fetcher, n: int, redis_url: str = REDIS_URL, **kw: Any
) -> AsyncIterator[list[TokenHolder]]:
    """n simulated processes: each its own database handle and its own Redis client."""
    async with contextlib.AsyncExitStack() as stack:
        made = []
        for _ in range(n):
            db = Database(url)
            stack.push_async_callback(db.dispose)
            redis = await stack.enter_async_context(shared(prefix, redis_url))
            made.append(
                TokenHolder(
                    db,
                    platform="wechat",
                    app_id=APP,
                    fetch=fetch,
                    policy=TokenPolicy(),
                    redis=redis,
                    **kw,
                )
            )
        yield made


async def cached(raw: Redis, prefix: str) -> dict[str, Any] | None:
    value = await raw.get(token_key(prefix))
    return None if value is None else dict(json.loads(value))


async def test_token_is_shared_through_redis_without_a_database_round_trip(
    database_url: str, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    fetch = Fetcher(delay=0)
    async with processes(database_url, redis_prefix, fetch, 2) as (first, second):
        assert await first.token() == "token-1"
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-1"
        ttl = await raw_redis.pttl(token_key(redis_prefix))
        assert 0 < ttl <= 7200 * 1000  # expires with the token
        counter = StatementCounter(second.db)
        try:
            assert await second.token() == "token-1"
            assert counter.count == 0  # read from Redis: no database round trip
        finally:
            counter.close()
        assert fetch.count == 1


async def test_without_redis_the_second_process_reads_the_database(
    database_url: str, db: Database
) -> None:
    # The control for the test above: the statement counter does see the database path.
    fetch = Fetcher(delay=0)
    first = TokenHolder(db, platform="wechat", app_id=APP, fetch=fetch)
    other = Database(database_url)
    try:
        second = TokenHolder(other, platform="wechat", app_id=APP, fetch=fetch)
        await first.token()
        counter = StatementCounter(other)
        assert await second.token() == "token-1"
        assert counter.count >= 1
        counter.close()
    finally:
        await other.dispose()


async def test_refresh_stays_single_flight_across_processes(
    database_url: str, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    fetch = Fetcher(delay=0.2)
    async with processes(database_url, redis_prefix, fetch, 6) as holders:
        tokens = await asyncio.gather(*(h.token() for h in holders for _ in range(3)))
        assert set(tokens) == {"token-1"} and fetch.count == 1
        # Every process sees the platform reject the token at once: one forced refresh.
        fresh = await asyncio.gather(*(h.refresh("token-1") for h in holders))
        assert set(fresh) == {"token-2"}
        assert fetch.count == 2 and fetch.forced == [False, True]
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-2"
        # Redis was flushed while nobody had the token in memory: still one fetch.
        for holder in holders:
            holder.forget()
        await flush(redis_prefix)
        again = await asyncio.gather(*(h.token() for h in holders))
        assert set(again) == {"token-2"} and fetch.count == 2


async def test_flushed_redis_midway_stays_correct(
    database_url: str, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    fetch = Fetcher(delay=0)
    async with processes(database_url, redis_prefix, fetch, 3) as (a, b, c):
        assert await a.token() == "token-1"
        assert await flush(redis_prefix) == 1
        # The database is the source of truth; the read puts the token back into Redis.
        assert await b.token() == "token-1" and fetch.count == 1
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-1"
        # Flushed again right before the platform rejects the token.
        await flush(redis_prefix)
        assert await b.refresh("token-1") == "token-2" and fetch.count == 2
        await flush(redis_prefix)
        assert await a.refresh("token-1") == "token-2" and fetch.count == 2  # no second fetch
        c.forget()
        assert await c.token() == "token-2"


async def test_a_late_rejection_or_a_slow_writer_never_replaces_the_newer_token(
    database_url: str, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    clock = Clock()
    fetch = Fetcher(delay=0)
    async with processes(database_url, redis_prefix, fetch, 2, clock=clock) as (a, b):
        assert await a.token() == "token-1"
        async with db.sessions() as session:
            old_row = await a._row(session, lock=False)  # what a slow reader saw
        assert old_row is not None
        clock.now = clock.now.replace(minute=5)
        assert await a.refresh("token-1") == "token-2"
        # The slow process now writes what it read before the refresh: refused (older).
        await b._cache_put(old_row, clock())
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-2"
        # A process that was using token-1 hears it rejected late: token-2 stays cached.
        assert await b.refresh("token-1") == "token-2" and fetch.count == 2
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-2"
        # The rejection of the cached token itself removes it, and the refresh replaces it.
        assert await b.refresh("token-2") == "token-3"
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-3"


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b"[]", b'{"t": 5, "r": 0, "e": 0}', b'{"t": "x", "r": "soon", "e": 1}', b"\xff"],
)
async def test_a_corrupted_cache_entry_is_ignored_and_replaced(
    database_url: str,
    db: Database,
    redis_prefix: str,
    raw_redis: Redis,
    garbage: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetch = Fetcher(delay=0)
    await raw_redis.set(token_key(redis_prefix), garbage)
    async with processes(database_url, redis_prefix, fetch, 1) as (holder,):
        with caplog.at_level(logging.WARNING, logger="govcast.channels"):
            assert await holder.token() == "token-1"
        assert "unreadable" in caplog.text
        stored = await cached(raw_redis, redis_prefix)
        assert stored is not None and stored["t"] == "token-1"


async def test_an_expired_token_in_redis_is_not_handed_out(
    database_url: str, db: Database, redis_prefix: str, raw_redis: Redis
) -> None:
    clock = Clock()
    fetch = Fetcher(delay=0, expires_in=600)
    async with processes(database_url, redis_prefix, fetch, 2, clock=clock) as (a, b):
        assert await a.token() == "token-1"
        clock.now = clock.now.replace(minute=clock.now.minute + 9)  # inside the margin
        assert await b.token() == "token-2" and fetch.count == 2


async def test_unreachable_redis_falls_back_with_one_warning_and_no_password(
    database_url: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    fetch = Fetcher(delay=0.05)
    with caplog.at_level(logging.DEBUG):
        async with processes(
            database_url, "govcast-unreachable:", fetch, 3, redis_url=UNREACHABLE_URL
        ) as holders:
            for holder in holders:
                holder.redis = always_retry(holder.redis)  # try Redis on every call
            tokens = await asyncio.gather(*(h.token() for h in holders))
            assert set(tokens) == {"token-1"} and fetch.count == 1
            assert set(await asyncio.gather(*(h.refresh("token-1") for h in holders))) == {
                "token-2"
            }
            assert fetch.count == 2
    warnings = [
        r for r in caplog.records if r.name == "govcast.redis" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 3  # one per process and outage, not one per call
    assert "127.0.0.1:1" in messages(warnings)
    assert "hunter2" not in messages(caplog.records)


def always_retry(redis: SharedRedis | None) -> SharedRedis:
    assert redis is not None
    redis.retry_after = 0.0
    return redis


async def test_a_hung_redis_is_bounded_and_then_skipped(database_url: str, db: Database) -> None:
    server = SilentServer()
    url = await server.start()
    fetch = Fetcher(delay=0)
    try:
        async with processes(database_url, "govcast-hung:", fetch, 1, redis_url=url) as (holder,):
            assert holder.redis is not None
            holder.redis.timeout = 0.2
            assert await holder.token() == "token-1"  # Redis timed out; the database answered
            assert not holder.redis.available  # the breaker sends the next calls elsewhere
            seen = server.connections
            assert seen >= 1  # it did try the hung server first
            holder.forget()
            assert await holder.token() == "token-1" and fetch.count == 1
            assert server.connections == seen  # not even a connection attempt
    finally:
        await server.stop()


async def test_the_breaker_tries_again_after_its_pause(database_url: str, db: Database) -> None:
    now = [100.0]
    fetch = Fetcher(delay=0)
    prefix = "govcast-breaker:"
    made = rediscache.connect(redis_settings(prefix, UNREACHABLE_URL))
    redis = SharedRedis(
        made.client, prefix=prefix, where=made.where, retry_after=5.0, clock=lambda: now[0]
    )
    try:
        holder = TokenHolder(db, platform="wechat", app_id=APP, fetch=fetch, redis=redis)
        assert await holder.token() == "token-1"
        assert not redis.available
        now[0] += 5.0
        assert redis.available
    finally:
        await redis.close()


# --- through the application ----------------------------------------------------------------


async def test_delivery_works_with_redis_unreachable(
    db: Database,
    database_url: str,
    tmp_path: Path,
    staff_members: dict[str, StaffMember],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = live_settings(tmp_path, database_url, free_port(), **{"redis.url": UNREACHABLE_URL})
    with caplog.at_level(logging.INFO):
        async with running(settings) as app, aiohttp.ClientSession() as http:
            assert isinstance(app[keys.REDIS], SharedRedis)
            ids = await _approve(db, settings, staff_members, 1)
            await wait_for(lambda: settled(db, ids), 40, "deliveries to settle")
            assert await states_of(db, ids) == {"done": 3}
            [url] = await _urls(db, settings, ids)
            assert await Platforms(settings, http).wechat_articles(url) == 1
    assert "redis unavailable; using the database" in caplog.text
    assert "hunter2" not in messages(caplog.records)


async def test_delivery_with_redis_keeps_the_token_there(
    db: Database,
    database_url: str,
    tmp_path: Path,
    staff_members: dict[str, StaffMember],
    redis_prefix: str,
    raw_redis: Redis,
) -> None:
    settings = live_settings(
        tmp_path,
        database_url,
        free_port(),
        **{
            "redis.url": REDIS_URL,
            "redis.key_prefix": redis_prefix,
            "redis.timeout_seconds": 5.0,
        },
    )
    async with running(settings), aiohttp.ClientSession() as http:
        ids = await _approve(db, settings, staff_members, 1)
        await wait_for(lambda: settled(db, ids), 40, "deliveries to settle")
        assert await states_of(db, ids) == {"done": 3}
        [url] = await _urls(db, settings, ids)
        assert await Platforms(settings, http).wechat_articles(url) == 1
    app_id = settings.wechat.accounts["main"].app_id
    value = await raw_redis.get(f"{redis_prefix}token:wechat:{app_id}")
    assert value is not None and json.loads(value)["t"]


async def test_connect_masks_and_prefixes() -> None:
    # No connection is made until the first command: nothing is sent to this address.
    redis = rediscache.connect(redis_settings("p:", "redis://user:s3cret@cache.internal:6380/3"))
    assert redis.where == "redis://****@cache.internal:6380/3"
    assert redis.key("token", "wechat", "wx1") == "p:token:wechat:wx1"
    await redis.close()
