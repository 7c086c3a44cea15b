"""A push whose claimant died mid-handling is taken over by WeChat's retry, never by a
retry while the claimant lives (real PostgreSQL and SQLite)."""

from __future__ import annotations

import socket
import subprocess

import pytest
from sqlalchemy import select

from bot.dedup import Claim, InboundStore
from bot.models import InboundMessageRecord
from publisher.db import Database


def _push(key: str) -> Claim:
    return Claim("main", key, "o-citizen", "text", 1_700_000_000)


async def _owner(db: Database, key: str) -> str | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(InboundMessageRecord.owner).where(InboundMessageRecord.dedup_key == key)
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_retry_takes_over_only_after_the_claimant_process_is_gone(
    db: Database,
) -> None:
    claimant, retry = InboundStore(db), InboundStore(db)
    try:
        assert (await claimant.claim_push(_push("m:1"))).won
        assert await _owner(db, "m:1") == claimant.owner
        assert not (await retry.claim_push(_push("m:1"))).won
        # Alive but slow: the retry waits, then gives up without taking the push.
        assert await retry.wait_or_take_over("main", "m:1", 0.2) == (None, False)
        assert await _owner(db, "m:1") == claimant.owner

        assert claimant.liveness is not None
        await claimant.liveness.close()  # what the server does when the process dies
        assert await retry.wait_or_take_over("main", "m:1", 2.0) == (None, True)
        assert await _owner(db, "m:1") == retry.owner
        # Exactly one taker: a second retry sees a live owner again.
        third = InboundStore(db)
        try:
            assert not (await third.claim_push(_push("m:1"))).won
            assert await third.wait_or_take_over("main", "m:1", 0.1) == (None, False)
        finally:
            await third.close()
    finally:
        await claimant.close()
        await retry.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_retry_takes_over_only_from_a_process_that_no_longer_runs(
    db: Database,
) -> None:
    host = socket.gethostname()[:40]
    ended = subprocess.Popen(["true"])
    ended.wait()
    living, dead = InboundStore(db), InboundStore(db)
    living.owner = f"{host}:1"  # init always runs
    dead.owner = f"{host}:{ended.pid}"
    retry = InboundStore(db)
    try:
        assert (await living.claim_push(_push("m:1"))).won
        assert (await dead.claim_push(_push("m:2"))).won
        assert await retry.wait_or_take_over("main", "m:1", 0.1) == (None, False)
        assert await retry.wait_or_take_over("main", "m:2", 0.5) == (None, True)
        assert await _owner(db, "m:2") == retry.owner
        assert await _owner(db, "m:1") == f"{host}:1"
    finally:
        for store in (living, dead, retry):
            await store.close()


async def test_a_finished_push_is_answered_from_its_record_not_taken_over(
    db: Database,
) -> None:
    from bot.dedup import Finish

    claimant, retry = InboundStore(db), InboundStore(db)
    try:
        assert (await claimant.claim_push(_push("m:9"))).won
        await claimant.finish(Finish("main", "m:9", "done", "<xml>reply</xml>"))
        if claimant.liveness is not None:
            await claimant.liveness.close()
        assert await retry.wait_or_take_over("main", "m:9", 0.2) == ("<xml>reply</xml>", False)
    finally:
        await claimant.close()
        await retry.close()
