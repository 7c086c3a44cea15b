"""Wiring from settings to the core: offices, core config, channels, worker."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
from sqlalchemy import select

from channels.base import ChannelRegistry
from channels.website import WebsiteChannel
from channels.wechat import build as build_wechat
from channels.weibo import build as build_weibo
from govcast.rediscache import SharedRedis
from govcast.settings import Settings
from publisher.config import CoreConfig
from publisher.db import Database
from publisher.media import MediaStore
from publisher.models import Office
from publisher.retry import RetryPolicy
from publisher.views import snapshot_loader
from publisher.worker import Worker, WorkerOptions
from reports.lists import content_checks


def core_config(settings: Settings) -> CoreConfig:
    """The core's view of the settings."""
    targets: dict[str, list[str]] = {settings.office.key: ["website"]}
    for key in settings.offices:
        targets[key] = ["website"]
    for key, account in settings.wechat.accounts.items():
        targets[account.office or settings.office.key].append(f"wechat:{key}")
    for key, weibo in settings.weibo.accounts.items():
        targets[weibo.office or settings.office.key].append(f"weibo:{key}")
    return CoreConfig(
        website_base_url=settings.website.base_url,
        timezone=settings.office.zone,
        review_steps=settings.workflow.review_steps,
        max_body_chars=settings.workflow.max_body_chars,
        quiet_hours_start=settings.queue.quiet_hours_start,
        quiet_hours_end=settings.queue.quiet_hours_end,
        targets_by_office={k: tuple(v) for k, v in targets.items()},
        content_checks=content_checks,
        approval_rules=_solicitation_rule(settings),
    )


def _solicitation_rule(settings: Settings) -> Any:
    # Solicitation windows (>= 30 days / >= 7 working days) are checked at final approval.
    from bot.cases import service, solicitations

    return solicitations.approval_rule(service.load_calendar, settings.office.zone)


def media_store(settings: Settings) -> MediaStore:
    """The media store under the data folder."""
    return MediaStore(settings.data_dir / "media", settings.storage.max_upload_bytes)


def database(settings: Settings) -> Database:
    """The database handle for the configured URL."""
    return Database(
        settings.database_url, echo=settings.database.echo, pool_size=settings.database.pool_size
    )


async def sync_offices(db: Database, settings: Settings) -> None:
    """Make the offices table match the configured offices (insert or rename)."""
    wanted = {settings.office.key: (settings.office.name, settings.office.org_code)}
    for key, extra in settings.offices.items():
        wanted[key] = (extra.name, extra.org_code)
    async with db.transaction() as session:
        existing = {o.key: o for o in (await session.execute(select(Office))).scalars()}
        for key, (name, org_code) in wanted.items():
            office = existing.get(key)
            if office is None:
                session.add(Office(key=key, name=name, org_code=org_code))
            else:
                office.name = name
                office.org_code = org_code


def build_channels(
    settings: Settings,
    db: Database,
    http: aiohttp.ClientSession,
    *,
    redis: SharedRedis | None = None,
) -> ChannelRegistry:
    """The channel registry of this deployment, listed explicitly."""
    from website.export import change_hook

    registry = ChannelRegistry([WebsiteChannel(db, on_change=change_hook(settings, db))])
    for factory in _social_channel_factories(redis):
        channel = factory(settings, db, http)
        if channel is not None:
            registry.register(channel)
    return registry


def _social_channel_factories(redis: SharedRedis | None) -> list[Any]:
    # The social adapters, one line each, explicitly. WeChat's token cache may use Redis.
    return [functools.partial(build_wechat, redis=redis), build_weibo]


def build_worker(
    settings: Settings, db: Database, registry: ChannelRegistry, store: MediaStore
) -> Worker:
    """A delivery worker over the registry."""
    queue_settings = settings.queue
    return Worker(
        db,
        registry,  # type: ignore[arg-type]
        snapshot_loader(db, core_config(settings), store),
        policy=RetryPolicy(
            base_seconds=queue_settings.backoff_base_seconds,
            max_seconds=queue_settings.backoff_max_seconds,
            max_attempts=queue_settings.max_attempts,
        ),
        options=WorkerOptions(
            lease_seconds=queue_settings.lease_seconds,
            concurrency=queue_settings.concurrency,
            batch_size=queue_settings.batch_size,
            poll_interval=queue_settings.poll_interval_seconds,
            shutdown_grace=settings.server.shutdown_grace_seconds,
        ),
        rate_limits=registry.rate_limits(),
    )
