"""The delivery queue on real SQLite and real PostgreSQL: exactly-once effects."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from publisher import audit, queue, workflow
from publisher.db import Database
from publisher.models import Alert, Delivery, Publication
from publisher.orm import utcnow
from publisher.outcomes import PermanentError, TransientError
from publisher.queue import RateLimit
from publisher.staff import StaffMember
from tests.fakes import SimulatedCrash
from tests.publisher.helpers import approve_through, core, create_draft, fake, make_worker


async def _deliveries(db: Database, publication_id: int | None = None) -> list[Delivery]:
    async with db.sessions() as session:
        stmt = select(Delivery).order_by(Delivery.id)
        if publication_id is not None:
            stmt = stmt.where(Delivery.publication_id == publication_id)
        return list((await session.execute(stmt)).scalars())


async def test_approval_yields_one_delivery_per_channel_account(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"])
    publication = await approve_through(db, config, staff_members, draft.id)
    assert publication.state == "queued"
    rows = await _deliveries(db, draft.id)
    assert sorted((d.channel, d.account, d.action) for d in rows) == [
        ("fake", "main", "publish"),
        ("fake", "second", "publish"),
        ("website", "main", "publish"),
    ]
    # Enqueueing the same publication again (a repeated approval tick) changes nothing.
    async with db.transaction() as session:
        again = await session.get(Publication, draft.id)
        assert again is not None
        assert await workflow.enqueue_publication(session, config, again, utcnow()) == 0
    assert len(await _deliveries(db, draft.id)) == 3

    channel = fake()
    worker = make_worker(db, config, [channel], tmp_path)
    assert await worker.run_until_idle() == 3
    assert channel.remote.posts == {
        (draft.id, "main"): f"fake-{draft.id}-main",
        (draft.id, "second"): f"fake-{draft.id}-second",
    }
    assert channel.remote.duplicates == 0
    rows = await _deliveries(db, draft.id)
    assert {d.state for d in rows} == {"done"}
    assert all(d.remote_id for d in rows)
    async with db.sessions() as session:
        stored = await session.get(Publication, draft.id)
        assert stored is not None and stored.state == "published"


async def test_worker_killed_between_sending_and_commit_is_reconciled_not_reposted(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core(targets=("website", "fake:main"))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website", "fake:main"]
    )
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    channel.crash_after_effect = 1
    dying = make_worker(db, config, [channel], tmp_path, lease_seconds=0.3, worker_id="dying")
    claimed = await queue.claim(
        db, worker_id="dying", limit=10, lease_seconds=0.3, channels=["fake"]
    )
    assert len(claimed) == 1
    try:
        await dying._process(claimed[0])
    except SimulatedCrash:
        pass
    else:  # pragma: no cover - the fake must crash
        raise AssertionError("the fake channel did not crash")
    [row] = [d for d in await _deliveries(db, draft.id) if d.channel == "fake"]
    assert row.state == "sending"  # outcome unknown: the effect happened, the commit did not
    assert channel.remote.posts  # the post is live on the platform

    # Before the lease runs out nobody may touch the row.
    assert (
        await queue.claim(db, worker_id="other", limit=10, lease_seconds=5, channels=["fake"]) == []
    )
    await asyncio.sleep(0.4)
    survivor = make_worker(db, config, [channel], tmp_path, worker_id="survivor")
    assert await survivor.run_until_idle() >= 1
    [row] = [d for d in await _deliveries(db, draft.id) if d.channel == "fake"]
    assert row.state == "done"
    assert row.remote_id == f"fake-{draft.id}-main"
    assert channel.remote.duplicates == 0
    publishes = [c for c in channel.remote.calls if c[0] == "publish"]
    assert len(publishes) == 1  # reconciled through find, not published again
    assert ("find", draft.id, "main") in channel.remote.calls


async def test_two_workers_racing_never_claim_the_same_row(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        from tests.publisher.helpers import sample

        publication = await workflow.create(session, config, office, sample(), audit.CLI)
        for n in range(120):
            await queue.enqueue(
                session, publication_id=publication.id, channel="fake", account=f"a{n}"
            )

    async def grab(worker_id: str) -> list[int]:
        taken: list[int] = []
        while True:
            rows = await queue.claim(db, worker_id=worker_id, limit=7, lease_seconds=60)
            if not rows:
                return taken
            taken.extend(r.id for r in rows)

    results = await asyncio.gather(*(grab(f"w{i}") for i in range(4)))
    everything = [i for ids in results for i in ids]
    assert len(everything) == 120
    assert len(set(everything)) == 120  # no row claimed twice
    rows = await _deliveries(db)
    assert all(r.state == "sending" and r.attempts == 1 for r in rows)


async def test_transient_failures_retry_with_growing_delays_then_succeed(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    from publisher.retry import RetryPolicy

    config = core(targets=("website", "fake:main"))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website", "fake:main"]
    )
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    channel.script = [TransientError("busy", code=-1)] * 3 + [None]
    policy = RetryPolicy(base_seconds=0.05, max_seconds=10, max_attempts=6)
    worker = make_worker(db, config, [channel], tmp_path, policy=policy)
    delays = []
    row_due = utcnow()
    for _ in range(20):
        # One attempt per round: claim exactly the due row and process it.
        await asyncio.sleep(max(0.0, (row_due - utcnow()).total_seconds()) + 0.01)
        claimed = await queue.claim(
            db, worker_id=worker.worker_id, limit=1, lease_seconds=30, channels=["fake"]
        )
        if claimed:
            await worker._process(claimed[0])
        [row] = [d for d in await _deliveries(db, draft.id) if d.channel == "fake"]
        if row.state == "done":
            break
        assert row.state == "pending"
        assert row.last_error_kind == "transient" and "[-1] busy" in (row.last_error or "")
        delay = (row.not_before - row.updated_at).total_seconds()
        if not delays or delays[-1][0] != row.attempts:
            delays.append((row.attempts, delay))
        await asyncio.sleep(max(0.0, (row.not_before - utcnow()).total_seconds()) + 0.01)
    assert row.state == "done" and row.attempts == 4
    assert [a for a, _ in delays] == [1, 2, 3]
    # Equal jitter: attempt n waits between base*2^(n-1)/2 and base*2^(n-1).
    for attempt, delay in delays:
        ceiling = 0.05 * 2 ** (attempt - 1)
        assert ceiling / 2 - 0.001 <= delay <= ceiling + 0.001
    assert delays[2][1] > delays[0][1]
    assert channel.remote.duplicates == 0


async def test_retry_after_is_honoured(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core(targets=("website", "fake:main"))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website", "fake:main"]
    )
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    channel.script = [TransientError("rate limited", code=10023, retry_after=600)]
    worker = make_worker(db, config, [channel], tmp_path)
    await worker.run_until_idle()
    [row] = [d for d in await _deliveries(db, draft.id) if d.channel == "fake"]
    assert row.state == "pending"
    assert (row.not_before - utcnow()).total_seconds() > 590


async def test_permanent_failure_dead_letters_with_an_alert(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core(targets=("website", "fake:main"))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website", "fake:main"]
    )
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    channel.script = [PermanentError("content rejected by review", code=4)]
    worker = make_worker(db, config, [channel], tmp_path)
    await worker.run_until_idle()
    [row] = [d for d in await _deliveries(db, draft.id) if d.channel == "fake"]
    assert row.state == "dead" and row.attempts == 1
    assert row.last_error == "[4] content rejected by review"
    async with db.sessions() as session:
        alerts = list((await session.execute(select(Alert))).scalars())
        publication = await session.get(Publication, draft.id)
    assert len(alerts) == 1 and alerts[0].delivery_id == row.id
    assert "content rejected" in alerts[0].message
    # The website copy made it: the publication counts as published, the dead letter shows.
    assert publication is not None and publication.state == "published"
    # Nothing retries a dead letter by itself.
    assert await worker.run_until_idle() == 0


async def test_transient_errors_give_up_after_max_attempts(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    from publisher.retry import RetryPolicy

    config = core(targets=("website", "fake:main"))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website", "fake:main"]
    )
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    channel.script = [TransientError("timeout")] * 10
    worker = make_worker(
        db,
        config,
        [channel],
        tmp_path,
        policy=RetryPolicy(base_seconds=0.001, max_seconds=0.002, max_attempts=3),
    )
    for _ in range(10):
        await worker.run_until_idle()
        await asyncio.sleep(0.01)
    [row] = [d for d in await _deliveries(db, draft.id) if d.channel == "fake"]
    assert row.state == "dead" and row.attempts == 3
    async with db.sessions() as session:
        alert = (await session.execute(select(Alert))).scalar_one()
    assert "gave up after 3 attempts" in alert.message


async def test_scheduled_items_wait_for_their_time(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core()
    later = utcnow() + timedelta(hours=2)
    draft = await create_draft(db, config, staff_members["editor"], publish_at=later.isoformat())
    publication = await approve_through(db, config, staff_members, draft.id)
    assert publication.state == "scheduled"
    assert publication.published_at == later.replace(
        microsecond=publication.published_at.microsecond
    )
    assert await queue.claim(db, worker_id="w", limit=10, lease_seconds=5) == []
    async with db.transaction() as session:
        assert await workflow.release_due(session) == 0
    due = await queue.claim(
        db, worker_id="w", limit=10, lease_seconds=5, now=later + timedelta(seconds=1)
    )
    assert len(due) == 3
    async with db.transaction() as session:
        assert await workflow.release_due(session, now=later + timedelta(seconds=1)) == 1


async def test_rate_limits_are_respected_at_claim_time(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        from tests.publisher.helpers import sample

        ids = []
        for _ in range(5):
            publication = await workflow.create(session, config, office, sample(), audit.CLI)
            ids.append(publication.id)
            await queue.enqueue(
                session, publication_id=publication.id, channel="weibo", account="main"
            )
    limits = {("weibo", "main"): (RateLimit(count=2, per_seconds=3600),)}
    first = await queue.claim(db, worker_id="w", limit=10, lease_seconds=5, rate_limits=limits)
    assert len(first) == 2
    second = await queue.claim(db, worker_id="w", limit=10, lease_seconds=5, rate_limits=limits)
    assert second == []
    rows = [d for d in await _deliveries(db) if d.state == "pending"]
    assert len(rows) == 3
    # Deferred to when the window frees up, not rescanned on every claim.
    assert all(r.not_before > utcnow() + timedelta(minutes=59) for r in rows)
    later = utcnow() + timedelta(hours=1, seconds=5)
    third = await queue.claim(
        db, worker_id="w", limit=10, lease_seconds=5, rate_limits=limits, now=later
    )
    assert len(third) == 2


async def test_urgent_items_jump_the_queue(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core(targets=("website",))
    ordinary = [
        await create_draft(db, config, staff_members["editor"], channels=["website"])
        for _ in range(3)
    ]
    for draft in ordinary:
        await approve_through(db, config, staff_members, draft.id)
    urgent = await create_draft(
        db, config, staff_members["editor"], channels=["website"], urgent=True
    )
    await approve_through(db, config, staff_members, urgent.id)
    [first] = await queue.claim(db, worker_id="w", limit=1, lease_seconds=5)
    assert first.publication_id == urgent.id and first.priority == 100


async def test_withdrawal_retracts_everywhere_and_cancels_what_has_not_gone(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"])
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    worker = make_worker(db, config, [channel], tmp_path)
    await worker.run_until_idle()
    async with db.transaction() as session:
        await workflow.withdraw(
            session,
            draft.id,
            staff_members["approver"].actor(),
            reason="错误数据",
            member=staff_members["approver"],
        )
    await worker.run_until_idle()
    rows = await _deliveries(db, draft.id)
    retracts = [d for d in rows if d.action == "retract"]
    assert len(retracts) == 3 and {d.state for d in retracts} == {"done"}
    assert channel.remote.posts == {}
    assert channel.remote.retracted == {(draft.id, "main"), (draft.id, "second")}

    # Withdrawn before anything went out: the publishes are cancelled, nothing is retracted.
    second = await create_draft(db, config, staff_members["editor"])
    await approve_through(db, config, staff_members, second.id)
    async with db.transaction() as session:
        await workflow.withdraw(
            session,
            second.id,
            staff_members["approver"].actor(),
            reason="撤回",
            member=staff_members["approver"],
        )
    await worker.run_until_idle()
    rows = await _deliveries(db, second.id)
    assert {d.state for d in rows} == {"cancelled"}
    assert (second.id, "main") not in channel.remote.posts


async def test_correction_updates_every_channel_reached(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    from tests.publisher.helpers import sample

    config = core()
    draft = await create_draft(db, config, staff_members["editor"])
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    worker = make_worker(db, config, [channel], tmp_path)
    await worker.run_until_idle()
    async with db.transaction() as session:
        corrected = await workflow.correct(
            session,
            config,
            draft.id,
            sample(title="更正：关于医保缴费的通知"),
            staff_members["approver"],
            reason="标题有误",
        )
    assert corrected.version == 2
    await worker.run_until_idle()
    updates = [d for d in await _deliveries(db, draft.id) if d.action == "update"]
    assert len(updates) == 3 and {d.state for d in updates} == {"done"}
    assert {d.revision for d in updates} == {2}
    assert sum(1 for c in channel.remote.calls if c[0] == "update") == 2


async def test_push_waits_for_quiet_hours_unless_urgent(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    config = core(targets=("website", "wechat:main"))
    night = datetime(2030, 3, 4, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    quiet = await create_draft(
        db,
        config,
        staff_members["editor"],
        channels=["website", "wechat:main"],
        push=True,
        publish_at=night.isoformat(),
    )
    await approve_through(db, config, staff_members, quiet.id)
    urgent = await create_draft(
        db,
        config,
        staff_members["editor"],
        channels=["website", "wechat:main"],
        push=True,
        urgent=True,
        publish_at=night.isoformat(),
    )
    await approve_through(db, config, staff_members, urgent.id)
    pushes = {d.publication_id: d for d in await _deliveries(db) if d.action == "push"}
    morning = datetime(2030, 3, 5, 7, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert pushes[quiet.id].not_before == morning
    assert pushes[urgent.id].not_before == night
    assert pushes[urgent.id].priority == 100


async def test_push_is_sequenced_after_its_publish(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        from tests.publisher.helpers import sample

        publication = await workflow.create(
            session, config, office, sample(channels=["website", "fake:main"]), audit.CLI
        )
        await queue.enqueue(session, publication_id=publication.id, channel="fake", account="main")
        await queue.enqueue(
            session, publication_id=publication.id, channel="fake", account="main", action="push"
        )
    first = await queue.claim(db, worker_id="w", limit=10, lease_seconds=5)
    assert [c.action for c in first] == ["publish"]
    async with db.transaction() as session:
        from publisher.outcomes import Receipt

        await queue.complete(session, first[0], Receipt(remote_id="r1"))
    second = await queue.claim(db, worker_id="w", limit=10, lease_seconds=5)
    assert [c.action for c in second] == ["push"]
    async with db.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
    assert count == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_claims_never_overbook_a_rate_limit(
    db: Database, database_url: str
) -> None:
    config = core()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        from tests.publisher.helpers import sample

        for _ in range(8):
            publication = await workflow.create(session, config, office, sample(), audit.CLI)
            await queue.enqueue(
                session, publication_id=publication.id, channel="weibo", account="main"
            )
    limits = {("weibo", "main"): (RateLimit(count=1, per_seconds=3600),)}
    # Two workers in two processes: separate engines, separate connections.
    first, second = Database(database_url), Database(database_url)
    try:
        async with db.transaction() as blocker:
            # Hold the target's lock so that both claims get as far as counting while
            # neither has committed: exactly the window in which they used to overbook.
            await blocker.execute(
                text("SELECT pg_advisory_xact_lock(:c, hashtext(:t))"),
                {"c": queue.RATE_LOCK_CLASS, "t": queue.rate_lock_target("weibo", "main")},
            )
            claims = [
                asyncio.create_task(
                    queue.claim(
                        handle, worker_id=name, limit=1, lease_seconds=30, rate_limits=limits
                    )
                )
                for handle, name in ((first, "w1"), (second, "w2"))
            ]
            for _ in range(200):
                waiting = (
                    await blocker.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                            " AND classid = :c AND NOT granted"
                        ),
                        {"c": queue.RATE_LOCK_CLASS},
                    )
                ).scalar_one()
                if waiting == 2:
                    break
                await asyncio.sleep(0.025)
            assert waiting == 2, "both claims must wait for the target's lock"
            assert not any(claim.done() for claim in claims)
        taken = [row for claim in claims for row in await claim]
    finally:
        await first.dispose()
        await second.dispose()
    assert len(taken) == 1
    async with db.sessions() as session:
        sending = (
            await session.execute(
                select(func.count()).select_from(Delivery).where(Delivery.state == "sending")
            )
        ).scalar_one()
    assert sending == 1
