"""The worker's slots: channel calls are bounded by `concurrency`, commits overlap claims."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from publisher import audit, queue, workflow
from publisher.db import Database
from publisher.liveness import LOCK_CLASS, Liveness
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


async def _enqueue(db: Database, count: int) -> None:
    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        publication = await workflow.create(session, config, office, sample(), audit.CLI)
        for n in range(count):
            await queue.enqueue(
                session, publication_id=publication.id, channel="fake", account=f"a{n}"
            )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_an_expired_lease_of_a_live_worker_is_not_taken_over(db: Database) -> None:
    await _enqueue(db, 3)
    slow = Liveness(db, "host:1:slow")
    assert await slow.ensure()
    try:
        held = await queue.claim(db, worker_id="host:1:slow", limit=10, lease_seconds=0.01)
        assert len(held) == 3
        await asyncio.sleep(0.05)  # every lease has run out; the holder is only slow
        assert await queue.claim(db, worker_id="host:2:other", limit=10, lease_seconds=30) == []
    finally:
        await slow.close()  # the holder dies: the server lets its lock go
    taken = await queue.claim(db, worker_id="host:2:other", limit=10, lease_seconds=30)
    assert sorted(r.id for r in taken) == sorted(r.id for r in held)
    assert all(r.needs_reconcile for r in taken)  # the first calls' outcome is unknown


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_liveness_lock_is_taken_again_after_the_server_dropped_it(
    db: Database,
) -> None:
    await _enqueue(db, 1)
    holder = Liveness(db, "host:1:holder")
    assert await holder.ensure()
    try:
        async with db.engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND classid = :c AND granted"
                    " AND objid = hashtext('host:1:holder')::oid"
                ),
                {"c": LOCK_CLASS},
            )
        await _until(lambda: not holder.held, "the holder notices its connection is gone")
        assert await holder.ensure()
        held = await queue.claim(db, worker_id="host:1:holder", limit=1, lease_seconds=0.01)
        await asyncio.sleep(0.05)
        assert await queue.claim(db, worker_id="host:2:other", limit=1, lease_seconds=30) == []
        assert len(held) == 1
    finally:
        await holder.close()


async def test_waiting_for_a_quota_window_never_uses_up_the_attempts(
    db: Database, tmp_path: Path
) -> None:
    from publisher.outcomes import TransientError, WaitForWindow
    from publisher.retry import RetryPolicy

    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        publication = await workflow.create(session, config, office, sample(), audit.CLI)
        await queue.enqueue(session, publication_id=publication.id, channel="fake", account="main")
    channel = fake()
    # Seven quota answers in a row with max_attempts 3: a month of waiting for the
    # mass-send quota, then one ordinary failure, then success.
    quota = WaitForWindow("群发配额已用完", code=45028, retry_after=0.001)
    channel.script = [quota] * 7 + [TransientError("timeout"), None]
    worker = make_worker(
        db,
        config,
        [channel],
        tmp_path,
        policy=RetryPolicy(base_seconds=0.001, max_seconds=0.002, max_attempts=3),
    )

    async def row() -> Delivery:
        async with db.sessions() as session:
            return (await session.execute(select(Delivery))).scalar_one()

    await worker.run_until_idle()
    first = await row()
    # Each quota answer hands its attempt back: still pending with none used up.
    assert first.state != "dead", first.last_error
    for _ in range(40):
        await worker.run_until_idle()
        if (await row()).state != "pending":
            break
        await asyncio.sleep(0.01)
    done = await row()
    assert done.state == "done" and done.attempts == 2  # the timeout and the success count
    assert len(channel.call_times) == 9  # every quota answer was a real call
    assert channel.remote.posts == {(publication.id, "main"): f"fake-{publication.id}-main"}
