"""Helpers for core tests: inputs, a configured core, approving through every step."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from publisher import audit, workflow
from publisher.config import CoreConfig
from publisher.db import Database
from publisher.inputs import PublicationInput, publication_from_fields
from publisher.media import MediaStore
from publisher.models import Publication
from publisher.retry import RetryPolicy
from publisher.staff import StaffMember
from publisher.views import snapshot_loader
from publisher.worker import Worker, WorkerOptions
from tests.fakes import FakeChannel

TARGETS = ("website", "fake:main", "fake:second")


def core(targets: tuple[str, ...] = TARGETS, review_steps: int = 3) -> CoreConfig:
    return CoreConfig(
        website_base_url="http://gov.test",
        timezone=ZoneInfo("Asia/Shanghai"),
        review_steps=review_steps,
        targets_by_office={"main": targets},
    )


def sample(**fields: Any) -> PublicationInput:
    values: dict[str, Any] = {
        "title": "关于2026年城乡居民医保集中缴费的通知",
        "kind": "disclosure",
        "category": "service",
        "issuing_body": "示例市医疗保障局",
        "body": "城乡居民医保2026年度集中缴费期为**10月至12月**。\n\n请按时缴费。",
        "channels": ["website", "fake:main", "fake:second"],
    }
    values.update(fields)
    return publication_from_fields(values, max_body_chars=200_000)


async def create_draft(
    db: Database, config: CoreConfig, author: StaffMember, **fields: Any
) -> Publication:
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        return await workflow.create(
            session, config, office, sample(**fields), author.actor(), member=author
        )


async def approve_through(
    db: Database,
    config: CoreConfig,
    members: dict[str, StaffMember],
    publication_id: int,
    now: datetime | None = None,
) -> Publication:
    """Submit and pass every review step with different reviewers."""
    async with db.transaction() as session:
        await workflow.submit(session, publication_id, audit.CLI, now=now)
    steps = {
        1: ["approver"],
        2: ["reviewer1", "approver"],
        3: ["reviewer1", "reviewer2", "approver"],
    }
    publication = None
    for name in steps[config.review_steps]:
        async with db.transaction() as session:
            publication = await workflow.review(
                session, config, publication_id, members[name], approve=True, comment="ok", now=now
            )
    assert publication is not None
    return publication


def make_worker(
    db: Database,
    config: CoreConfig,
    channels: list[Any],
    tmp_path: Path,
    *,
    lease_seconds: float = 30.0,
    policy: RetryPolicy | None = None,
    worker_id: str | None = None,
    concurrency: int = 16,
    worker_class: type[Worker] = Worker,
) -> Worker:
    from channels.website import WebsiteChannel

    registry: dict[str, Any] = {"website": WebsiteChannel(db)}
    limits: dict[tuple[str, str], Any] = {}
    for channel in channels:
        registry[channel.name] = channel
        for account in channel.accounts():
            limits[(channel.name, account)] = channel.rate_limits_for(account)
    store = MediaStore(tmp_path / "media", 10_000_000)
    return worker_class(
        db,
        registry,
        snapshot_loader(db, config, store),
        policy=policy or RetryPolicy(base_seconds=0.01, max_seconds=0.05, max_attempts=5),
        options=WorkerOptions(
            lease_seconds=lease_seconds,
            concurrency=concurrency,
            batch_size=concurrency,
            poll_interval=0.05,
        ),
        rate_limits=limits,
        worker_id=worker_id,
        rng=random.Random(7),
    )


def fake(**kwargs: Any) -> FakeChannel:
    return FakeChannel(accounts=("main", "second"), **kwargs)
