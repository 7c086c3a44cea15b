"""The sandbox's quota counters under concurrent first calls (real SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from publisher.db import Database
from sandbox.core import quota_used, take_quota


async def test_first_calls_of_a_period_at_once_all_count_and_none_fails(db: Database) -> None:
    # Two processes calling an API for the first time in a period used to race on creating
    # the counter: one of them failed on the unique key (a 500 the real platform never gives).
    now = datetime.now(UTC)

    async def call() -> bool:
        async with db.transaction() as session:
            return await take_quota(session, "acct", "token", "2026-12-01", 6, now)

    results = await asyncio.gather(*(call() for _ in range(8)))
    assert sorted(results) == [False, False] + [True] * 6
    async with db.sessions() as session:
        assert await quota_used(session, "acct", "token", "2026-12-01") == 6
