"""End to end through the real application and its sandbox: approve a publication and it
appears exactly once in WeChat's ``freepublish/batchget`` and Weibo's timeline, with
faults injected, with a worker killed mid-publish, and with many token holders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from channels.base import ChannelRegistry
from channels.tokens import TokenHolder
from channels.wechat_api import fetch_stable_token
from govcast import keys, runtime
from govcast.settings import Settings
from publisher import queue
from publisher.db import Database
from publisher.models import Delivery
from publisher.orm import utcnow
from publisher.staff import StaffMember
from tests.channels.live import free_port, live_settings, running
from tests.fakes import SimulatedCrash
from tests.publisher.helpers import approve_through, create_draft

CHANNELS = ["website", "wechat:main", "weibo:main"]


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def settled(db: Database, ids: list[int]) -> bool:
    async with db.sessions() as session:
        states = (
            (await session.execute(select(Delivery.state).where(Delivery.publication_id.in_(ids))))
            .scalars()
            .all()
        )
    return bool(states) and all(s in ("done", "dead", "cancelled") for s in states)


async def states_of(db: Database, ids: list[int]) -> dict[str, int]:
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.state, func.count())
                .where(Delivery.publication_id.in_(ids))
                .group_by(Delivery.state)
            )
        ).all()
    return {state: count for state, count in rows}


async def time_travel(db: Database) -> None:
    """Let every waiting delivery's retry-after (a day, an hour) pass at once."""
    async with db.transaction() as session:
        await session.execute(
            update(Delivery).where(Delivery.state == "pending").values(not_before=utcnow())
        )


class Platforms:
    """Reads what the sandbox holds through the platforms' own list endpoints."""

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.http = http

    async def wechat_articles(self, source_url: str) -> int:
        account = self.settings.wechat.accounts["main"]
        token, _ = await fetch_stable_token(
            self.http, account.api_base_url, account.app_id, account.app_secret, False
        )
        count, offset = 0, 0
        while True:
            async with self.http.post(
                f"{account.api_base_url}/freepublish/batchget",
                params={"access_token": token},
                json={"offset": offset, "count": 20, "no_content": 1},
            ) as response:
                data = await response.json(content_type=None)
            items = data.get("item") or []
            for item in items:
                for article in item["content"]["news_item"]:
                    if article.get("content_source_url") == source_url and not article.get(
                        "is_deleted"
                    ):
                        count += 1
            offset += 20
            if offset >= data.get("total_count", 0):
                return count

    async def weibo_posts(self, link: str) -> int:
        account = self.settings.weibo.accounts["main"]
        count, page = 0, 1
        while True:
            async with self.http.get(
                f"{account.api_base_url}/statuses/user_timeline.json",
                params={"access_token": account.access_token.reveal(), "page": page, "count": 100},
            ) as response:
                data = await response.json(content_type=None)
            statuses = data.get("statuses") or []
            count += sum(1 for s in statuses if link in s.get("text", ""))
            if len(statuses) < 100:
                return count
            page += 1


async def _approve(
    db: Database, settings: Settings, members: dict[str, StaffMember], n: int, **fields: Any
) -> list[int]:
    config = runtime.core_config(settings)
    ids = []
    for i in range(n):
        draft = await create_draft(
            db,
            config,
            members["editor"],
            channels=CHANNELS,
            title=f"关于第{i + 1}批惠民政策落实情况的公告",
            **fields,
        )
        await approve_through(db, config, members, draft.id)
        ids.append(draft.id)
    return ids


async def _urls(db: Database, settings: Settings, ids: list[int]) -> list[str]:
    from publisher.views import snapshot_of

    config = runtime.core_config(settings)
    store = runtime.media_store(settings)
    async with db.sessions() as session:
        return [(await snapshot_of(session, config, store, i)).url for i in ids]


async def test_approved_publication_reaches_each_platform_once(
    db: Database, database_url: str, tmp_path: Path, staff_members: dict[str, StaffMember]
) -> None:
    settings = live_settings(tmp_path, database_url, free_port())
    async with running(settings), aiohttp.ClientSession() as http:
        ids = await _approve(db, settings, staff_members, 1)
        await wait_for(lambda: settled(db, ids), 40, "deliveries to settle")
        assert await states_of(db, ids) == {"done": 3}
        [url] = await _urls(db, settings, ids)
        platforms = Platforms(settings, http)
        assert await platforms.wechat_articles(url) == 1
        assert await platforms.weibo_posts(url) == 1


@pytest.mark.parametrize(
    "faults",
    [
        {"platform": "all", "error_rate": 0.2, "seed": 7},
        {"platform": "wechat", "error_rate": 0.3, "errcodes": [-1, 45009], "seed": 3},
        {"platform": "weibo", "error_rate": 0.3, "errcodes": [10023, 10001], "seed": 5},
        {"platform": "all", "timeout_rate": 0.15, "timeout_phase": "after", "seed": 11},
        {
            "platform": "all",
            "timeout_rate": 0.15,
            "timeout_phase": "before",
            "error_rate": 0.1,
            "seed": 13,
        },
    ],
)
async def test_faults_never_lose_or_double_a_publication(
    db: Database,
    database_url: str,
    tmp_path: Path,
    staff_members: dict[str, StaffMember],
    faults: dict[str, Any],
) -> None:
    port = free_port()
    settings = live_settings(tmp_path, database_url, port)
    async with running(settings), aiohttp.ClientSession() as http:
        origin = f"http://127.0.0.1:{port}"
        async with http.post(f"{origin}/sandbox/_faults", json=faults) as response:
            assert response.status == 200, await response.text()
        ids = await _approve(db, settings, staff_members, 5)
        try:
            for _ in range(60):
                if await settled(db, ids):
                    break
                await time_travel(db)
                await asyncio.sleep(0.5)
        finally:
            async with http.delete(f"{origin}/sandbox/_faults") as response:
                assert response.status in (200, 204)
        for _ in range(120):  # faults off: whatever is still waiting finishes now
            if await settled(db, ids):
                break
            await time_travel(db)
            await asyncio.sleep(0.25)
        assert await states_of(db, ids) == {"done": 15}
        async with db.sessions() as session:
            attempts = (
                await session.execute(
                    select(func.sum(Delivery.attempts)).where(Delivery.publication_id.in_(ids))
                )
            ).scalar_one()
        assert attempts > 15, "the injected faults never hit: the test proves nothing"
        platforms = Platforms(settings, http)
        for url in await _urls(db, settings, ids):
            assert await platforms.wechat_articles(url) == 1, url
            assert await platforms.weibo_posts(url) == 1, url


async def test_worker_killed_mid_publish_is_reconciled(
    db: Database, database_url: str, tmp_path: Path, staff_members: dict[str, StaffMember]
) -> None:
    settings = live_settings(tmp_path, database_url, free_port(), **{"queue.lease_seconds": 1.0})
    # No worker in the app: this test drives its own, and kills one.
    async with (
        running(settings, roles={"web", "scheduler"}) as app,
        aiohttp.ClientSession() as http,
    ):
        registry = app[keys.CHANNELS]
        assert isinstance(registry, ChannelRegistry)
        ids = await _approve(db, settings, staff_members, 2)
        originals = {}
        for name in ("wechat", "weibo"):
            channel = registry[name]
            originals[name] = channel.publish

            async def crash_after(rendition: Any, ctx: Any, _orig: Any = channel.publish) -> Any:
                await _orig(rendition, ctx)
                raise SimulatedCrash()  # the process dies before recording the receipt

            channel.publish = crash_after  # type: ignore[method-assign]
        dying = runtime.build_worker(settings, db, registry, runtime.media_store(settings))
        claimed = await queue.claim(
            db, worker_id=dying.worker_id, limit=10, lease_seconds=1.0, channels=["wechat", "weibo"]
        )
        assert len(claimed) == 4
        for row in claimed:
            with contextlib.suppress(SimulatedCrash):
                await dying._process(row)
        for name, publish in originals.items():
            registry[name].publish = publish  # type: ignore[method-assign]
        await asyncio.sleep(1.2)  # the dead worker's leases run out
        survivor = runtime.build_worker(settings, db, registry, runtime.media_store(settings))
        stop = asyncio.Event()
        task = asyncio.create_task(survivor.run(stop))
        try:
            await wait_for(lambda: settled(db, ids), 40, "reconciliation")
        finally:
            stop.set()
            await task
        assert await states_of(db, ids) == {"done": 6}
        platforms = Platforms(settings, http)
        for url in await _urls(db, settings, ids):
            assert await platforms.wechat_articles(url) == 1
            assert await platforms.weibo_posts(url) == 1


async def test_withdrawal_removes_the_posts(
    db: Database, database_url: str, tmp_path: Path, staff_members: dict[str, StaffMember]
) -> None:
    from publisher import workflow

    settings = live_settings(tmp_path, database_url, free_port())
    async with running(settings), aiohttp.ClientSession() as http:
        ids = await _approve(db, settings, staff_members, 1)
        await wait_for(lambda: settled(db, ids), 40, "publication")
        async with db.transaction() as session:
            await workflow.withdraw(
                session,
                ids[0],
                staff_members["approver"].actor(),
                reason="内容有误",
                member=staff_members["approver"],
            )
        await wait_for(lambda: settled(db, ids), 40, "withdrawal")
        assert (await states_of(db, ids)).get("dead") is None
        [url] = await _urls(db, settings, ids)
        platforms = Platforms(settings, http)
        assert await platforms.wechat_articles(url) == 0
        assert await platforms.weibo_posts(url) == 0


async def test_many_token_holders_share_one_sandbox_token(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = live_settings(tmp_path, database_url, free_port())
    account = settings.wechat.accounts["main"]
    async with running(settings, roles={"web"}), aiohttp.ClientSession() as http:
        fetches = 0

        async def fetch(force: bool) -> tuple[str, float]:
            nonlocal fetches
            fetches += 1
            return await fetch_stable_token(
                http, account.api_base_url, account.app_id, account.app_secret, force
            )

        handles = [Database(database_url) for _ in range(6)]
        try:
            holders = [
                TokenHolder(h, platform="wechat", app_id=account.app_id, fetch=fetch)
                for h in handles
            ]
            tokens = await asyncio.gather(*(h.token() for h in holders for _ in range(3)))
            assert len(set(tokens)) == 1 and fetches == 1
        finally:
            for h in handles:
                await h.dispose()


async def test_push_to_followers_mass_sends_a_draft_of_its_own(
    db: Database, database_url: str, tmp_path: Path, staff_members: dict[str, StaffMember]
) -> None:
    from sandbox.models import SandboxDraft, SandboxMassSend

    settings = live_settings(tmp_path, database_url, free_port())
    async with running(settings), aiohttp.ClientSession() as http:
        ids = await _approve(db, settings, staff_members, 1, push=True, urgent=True)
        await wait_for(lambda: settled(db, ids), 60, "publish and push to settle")
        assert await states_of(db, ids) == {"done": 4}
        [url] = await _urls(db, settings, ids)
        assert await Platforms(settings, http).wechat_articles(url) == 1
        async with db.sessions() as session:
            receipts = dict(
                (
                    await session.execute(
                        select(Delivery.action, Delivery.receipt).where(
                            Delivery.publication_id == ids[0], Delivery.channel == "wechat"
                        )
                    )
                ).all()
            )
            [mass] = (
                (
                    await session.execute(
                        select(SandboxMassSend).where(SandboxMassSend.account == "main")
                    )
                )
                .scalars()
                .all()
            )
            pushed = (
                await session.execute(
                    select(SandboxDraft).where(SandboxDraft.media_id == mass.media_id)
                )
            ).scalar_one()
        # Once published, a draft leaves the draft box: the push sent its own draft, of
        # the same article, and exactly once.
        assert mass.media_id != receipts["publish"]["media_id"]
        assert receipts["push"]["media_id"] == mass.media_id
        assert [a["content_source_url"] for a in pushed.articles["news_item"]] == [url]
        assert mass.clientmsgid == receipts["push"]["clientmsgid"]
