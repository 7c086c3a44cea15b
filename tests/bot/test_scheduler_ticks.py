"""Deferred replies across processes: a scheduler without the web role (``govcast
scheduler``) still retries them, and the web process and the ticks never send one twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import update

from bot import deferred
from bot import web as bot_web
from bot.models import DeferredReply
from bot.service import BotService
from govcast import keys
from govcast.app import create_app
from publisher.db import Database
from tests.conftest import make_settings


async def test_deferred_replies_are_retried_by_a_scheduler_only_process(
    tmp_path: Path, database_url: str
) -> None:
    # Nothing listens on this API address: the send fails as a transient error, which
    # proves the tick ran (and counted the attempt) rather than failing on a missing key.
    settings = make_settings(
        tmp_path,
        database_url,
        **{
            "scheduler.enabled": False,
            "wechat.accounts.main.api_base_url": "http://127.0.0.1:9/cgi-bin",
        },
    )
    app = create_app(settings, roles={"scheduler"})
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    ticks = bot_web.ticks(app)
    try:
        assert bot_web.BOT not in app
        row = await deferred.record(
            app[keys.DB],
            account="main",
            dedup_key="m:42",
            openid="o-citizen",
            reply={"type": "text", "content": "答复"},
            last_inbound_at=datetime.now(UTC),
        )
        assert row is not None
        by_name = {tick.name: tick for tick in ticks}
        assert await by_name["bot_deferred_replies"].run() == 1
        async with app[keys.DB].sessions() as session:
            kept = await session.get(DeferredReply, row)
        assert kept is not None and kept.attempts == 1 and kept.state == "pending"
        assert kept.last_error
        assert await by_name["bot_retention"].run() == 0
        assert await by_name["bot_orphaned_pushes"].run() == 0
    finally:
        for tick in ticks:  # what the scheduler does when it stops
            if tick.close is not None:
                await tick.close()
        await runner.cleanup()


class CountingAPI:
    """A WeChat API client that counts customer-service sends, each taking a moment."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        await asyncio.sleep(0.05)  # long enough for a second attempt to arrive meanwhile
        self.sent.append(openid)
        return {"errcode": 0}


async def test_one_deferred_reply_is_sent_once_by_concurrent_attempts(
    tmp_path: Path, database_url: str, db: Database, bot_service: Callable[..., BotService]
) -> None:
    # The web process that deferred the reply and a scheduler's tick reach it together.
    api = CountingAPI()
    service = bot_service(make_settings(tmp_path, database_url), db, api_for=lambda account: api)
    now = datetime.now(UTC)
    row = await deferred.record(
        db,
        account="main",
        dedup_key="m:7",
        openid="o-citizen",
        reply={"type": "text", "content": "答复"},
        last_inbound_at=now,
    )
    assert row is not None
    states = await asyncio.gather(
        deferred.deliver(service, row),
        deferred.deliver_due(service),
        deferred.deliver(service, row),
    )
    assert api.sent == ["o-citizen"]
    assert "sent" in states
    assert await deferred.deliver(service, row) == "sent" and api.sent == ["o-citizen"]


async def test_an_attempt_cut_short_is_retried_after_its_lease(
    tmp_path: Path, database_url: str, db: Database, bot_service: Callable[..., BotService]
) -> None:
    api = CountingAPI()
    service = bot_service(make_settings(tmp_path, database_url), db, api_for=lambda account: api)
    now = datetime.now(UTC)
    row = await deferred.record(
        db,
        account="main",
        dedup_key="m:8",
        openid="o-citizen",
        reply={"type": "text", "content": "答复"},
        last_inbound_at=now,
    )
    assert row is not None
    # A process took the row and was killed before it could record the outcome.
    async with db.transaction() as session:
        await session.execute(
            update(DeferredReply)
            .where(DeferredReply.id == row)
            .values(state="sending", not_before=now + deferred.LEASE)
        )
    assert await deferred.deliver_due(service) == 0
    assert await deferred.deliver(service, row) == "sending" and api.sent == []
    later = now + deferred.LEASE + timedelta(seconds=1)
    assert await deferred.deliver(service, row, later) == "sent"
    assert api.sent == ["o-citizen"]
    async with db.sessions() as session:
        kept = await session.get(DeferredReply, row)
    # The cut-short attempt counts, and staff can see the reply may have arrived twice.
    assert kept is not None and kept.attempts == 2 and kept.last_error == deferred.INTERRUPTED


class HangingAPI:
    """A WeChat API client whose send never returns (its process is about to die)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        self.started.set()
        await asyncio.sleep(3600)
        return {"errcode": 0}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_an_attempt_of_a_dead_process_is_taken_over_at_once_not_after_the_lease(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    settings = make_settings(tmp_path, database_url)
    hanging, api = HangingAPI(), CountingAPI()
    dying = BotService(settings, db, api_for=lambda account: hanging)
    tick = BotService(settings, db, api_for=lambda account: api)
    try:
        row = await deferred.record(
            db,
            account="main",
            dedup_key="m:9",
            openid="o-citizen",
            reply={"type": "text", "content": "答复"},
            last_inbound_at=datetime.now(UTC),
        )
        assert row is not None
        attempt = asyncio.create_task(deferred.deliver(dying, row))
        await asyncio.wait_for(hanging.started.wait(), 10)
        # Alive, merely slow: its attempt is left alone until the lease runs out.
        assert await deferred.deliver_due(tick) == 0
        assert await deferred.deliver(tick, row) == "sending" and api.sent == []

        attempt.cancel()
        assert dying.store.liveness is not None
        await dying.store.liveness.close()  # what the server does when the process dies
        assert await deferred.deliver_due(tick) == 1
        assert api.sent == ["o-citizen"]
        async with db.sessions() as session:
            kept = await session.get(DeferredReply, row)
        assert kept is not None and kept.state == "sent" and kept.owner == tick.store.owner
        assert kept.last_error == deferred.INTERRUPTED and kept.attempts == 2
    finally:
        await dying.close()
        await tick.close()
