"""Every registered channel passes the conformance kit (website on the real database;
WeChat and Weibo through the sandbox when it serves their endpoints)."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.conformance import (
    ConformanceError,
    check_attributes,
    check_render,
    check_round_trip,
)
from channels.website import WebsiteChannel
from govcast.settings import Settings
from publisher.db import Database
from publisher.snapshot import PublicationSnapshot
from publisher.staff import StaffMember
from tests.channels.helpers import make_publication


async def test_website_conforms(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember]
) -> None:
    channel = WebsiteChannel(db)
    check_attributes(channel)
    publication = await make_publication(db, settings)
    check_render(channel, publication, "main")
    await check_round_trip(channel, publication, "main")


async def test_the_kit_catches_a_broken_adapter(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    class Sloppy(WebsiteChannel):
        calls = 0

        def render(self, publication: PublicationSnapshot, account: str):  # type: ignore[no-untyped-def]
            import dataclasses

            base = super().render(publication, account)
            Sloppy.calls += 1  # e.g. a timestamp or a random id in the output
            return dataclasses.replace(base, preview_html=base.preview_html + str(Sloppy.calls))

    publication = await make_publication(db, settings)
    with pytest.raises(ConformanceError, match="deterministic"):
        check_render(Sloppy(db), publication, "main")

    class Sticky(WebsiteChannel):
        async def find(self, publication, ctx):  # type: ignore[no-untyped-def]
            from channels.base import Receipt

            return Receipt(remote_id="always-there")

    with pytest.raises(ConformanceError, match="before anything was published"):
        await check_round_trip(Sticky(db), publication, "main")


@pytest.mark.parametrize("name", ["wechat", "weibo"])
async def test_social_channels_conform_through_the_sandbox(
    db: Database, database_url: str, tmp_path: Path, name: str
) -> None:
    from channels.base import ChannelRegistry
    from govcast import keys
    from tests.channels.live import free_port, live_settings, running

    settings = live_settings(tmp_path, database_url, free_port())
    async with running(settings, roles={"web"}) as app:
        registry = app[keys.CHANNELS]
        assert isinstance(registry, ChannelRegistry)
        assert set(registry) == {"website", "wechat", "weibo"}
        channel = registry[name]
        check_attributes(channel)
        publication = await make_publication(
            db,
            settings,
            title="关于进一步加强和改进新时代城乡居民基本医疗保险集中缴费工作的实施意见（征求意见稿）",
            body="<script>alert(1)</script>正文第一段。\n\n" + "正文内容，" * 300,
        )
        for account in channel.accounts():
            check_render(channel, publication, account)
        await check_round_trip(channel, publication, "main", settle_timeout=20)
