"""The worker's slots: channel calls are bounded by `concurrency`, commits overlap claims."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from publisher import audit, queue, workflow
from publisher.db import Database
from publisher.models import Delivery
from publisher.worker import Worker
from tests.publisher.helpers import core, fake, make_worker, sample


class HeldCommitWorker(Worker):
    """A worker whose outcome commits wait until the test lets them through."""

    commits_open: asyncio.Event

    async def _record_batch(self, outcomes: list[Any]) -> list[bool]:
        await self.commits_open.wait()
        return await super()._record_batch(outcomes)


async def _until(condition: Any, what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def test_a_finished_call_waiting_for_its_commit_frees_its_slot_within_a_bound(
    db: Database, tmp_path: Path
) -> None:
    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        publication = await workflow.create(session, config, office, sample(), audit.CLI)
        for n in range(3):
            await queue.enqueue(
                session, publication_id=publication.id, channel="fake", account=f"a{n}"
            )
    channel = fake()
    worker = make_worker(
        db, config, [channel], tmp_path, concurrency=1, worker_class=HeldCommitWorker
    )
    assert isinstance(worker, HeldCommitWorker)
    worker.commits_open = asyncio.Event()
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        # One call at a time, but the second call does not wait for the first's commit.
        await _until(
            lambda: len(channel.remote.calls) == 2, "a second call while the first commits"
        )
        # Two outcomes waiting for their commit is the backlog bound for concurrency 1:
        # nothing more is claimed until the database catches up.
        await asyncio.sleep(0.3)
        assert len(channel.remote.calls) == 2
        async with db.sessions() as session:
            states = sorted((await session.execute(select(Delivery.state))).scalars())
        assert states == ["pending", "sending", "sending"]

        worker.commits_open.set()
        await _until(lambda: len(channel.remote.calls) == 3, "the third call after the commits")

        async def settled() -> bool:
            async with db.sessions() as session:
                rows = (await session.execute(select(Delivery.state))).scalars().all()
            return set(rows) == {"done"}

        for _ in range(200):
            if await settled():
                break
            await asyncio.sleep(0.025)
        assert await settled()
    finally:
        stop.set()
        await running
    assert sorted(account for _, _, account in channel.remote.calls) == ["a0", "a1", "a2"]
    assert channel.remote.duplicates == 0
