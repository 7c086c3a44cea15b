"""The delivery worker: claims due deliveries, calls the channels, records the outcome.

Any number of workers may run in any number of processes; the queue's claims decide who
does what. A worker keeps its leases alive while calls are in flight and, when asked to
stop, stops claiming and lets in-flight calls finish within a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update

from publisher import queue, workflow
from publisher.batching import GroupCommit
from publisher.db import Database
from publisher.liveness import Liveness
from publisher.models import Delivery, DeliveryAction, DeliveryState
from publisher.orm import utcnow
from publisher.outcomes import (
    ConfigurationError,
    DeliveryContext,
    DeliveryError,
    PermanentError,
    Receipt,
    TransientError,
    WaitForWindow,
)
from publisher.queue import Claimed, RateLimit
from publisher.retry import RetryPolicy
from publisher.snapshot import PublicationSnapshot

log = logging.getLogger("govcast.worker")


class ChannelPort(Protocol):
    """The part of a channel adapter the worker calls (see channels.base.Channel)."""

    name: str

    def rate_limits_for(self, account: str) -> Any: ...
    def render(self, publication: PublicationSnapshot, account: str) -> Any: ...
    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt: ...
    async def find(
        self, publication: PublicationSnapshot, ctx: DeliveryContext
    ) -> Receipt | None: ...
    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt: ...
    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt: ...
    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt: ...


# Publication ids in, snapshots by id out (ids that no longer exist are left out).
SnapshotLoader = Callable[[Sequence[int]], Awaitable[Mapping[int, PublicationSnapshot]]]
SnapshotTask = asyncio.Task[Mapping[int, PublicationSnapshot]]


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker."""

    lease_seconds: float = 60.0
    concurrency: int = 64
    batch_size: int = 64
    poll_interval: float = 0.2
    shutdown_grace: float = 10.0


def new_worker_id() -> str:
    """host:pid:random — unique per worker, readable in the delivery board."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Drains the delivery queue through the registered channels."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, ChannelPort],
        load_snapshots: SnapshotLoader,
        *,
        policy: RetryPolicy | None = None,
        options: WorkerOptions | None = None,
        rate_limits: Mapping[tuple[str, str], Any] | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.channels = channels
        self.load_snapshots = load_snapshots
        self.policy = policy or RetryPolicy()
        self.options = options or WorkerOptions()
        self.rate_limits: Mapping[tuple[str, str], tuple[RateLimit, ...]] = rate_limits or {}
        self.worker_id = worker_id or new_worker_id()
        # Held while this worker holds leases, so that no other worker mistakes it for dead
        # when a lease runs out under load (publisher/liveness.py).
        self.liveness = Liveness(db, self.worker_id)
        self.rng = rng or random.Random()
        self._wake = asyncio.Event()
        # Set when enough slots are free to make a claim worth its transaction: claiming
        # one row per finished task would spend a whole claim transaction on each.
        self._slots = asyncio.Event()
        self._threshold = max(1, min(self.options.batch_size, self.options.concurrency) // 2)
        self._inflight: dict[int, tuple[Claimed, asyncio.Task[None]]] = {}
        # Deliveries whose channel call is still running. A delivery whose call has
        # returned only waits for its outcome to be committed; counting it against
        # `concurrency` would stall the next claim behind that commit, so claims and
        # commits would take turns instead of overlapping. Those waiting for their commit
        # are bounded separately (`_backlog_limit`) so a slow database still pushes back.
        self._calling: set[int] = set()
        self._backlog_limit = 2 * self.options.concurrency
        # Outcomes that finish together are recorded in one transaction: with 32 calls
        # in flight, one commit instead of 32 is most of a delivery's database cost.
        self._recorder: GroupCommit[tuple[Claimed, Receipt], bool] = GroupCommit(
            self._record_batch, max_batch=max(1, self.options.concurrency)
        )
        self.processed = 0

    def wake(self) -> None:
        """Look at the queue now (new work was just enqueued in this process)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then drain within the grace period."""
        await self.liveness.ensure()
        heartbeat = asyncio.create_task(self._heartbeat(stop))
        try:
            while not stop.is_set():
                free = self._free_slots()
                claimed: list[Claimed] = []
                if free >= self._threshold or (free > 0 and not self._inflight):
                    try:
                        claimed = await queue.claim(
                            self.db,
                            worker_id=self.worker_id,
                            limit=min(free, self.options.batch_size),
                            lease_seconds=self.options.lease_seconds,
                            rate_limits=self.rate_limits,
                            channels=list(self.channels),
                        )
                    except Exception:  # the database went away: wait and try again
                        log.exception("claim failed", extra={"worker": self.worker_id})
                        await _sleep_or(stop, 1.0)
                        continue
                if claimed:
                    snapshots = self._snapshots_for(claimed)
                    for row in claimed:
                        self._start(row, snapshots)
                free_after = self._free_slots()
                if (
                    claimed
                    and len(claimed) == min(free, self.options.batch_size)
                    and free_after >= self._threshold
                ):
                    continue  # more may be waiting: claim again at once
                await self._idle(stop, for_slots=free_after < self._threshold)
        finally:
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self.liveness.close()

    def _snapshots_for(self, claimed: list[Claimed]) -> SnapshotTask:
        """One load of every publication in a claimed batch, shared by its deliveries.

        Safe because the snapshots are still read after the claim, as each delivery would
        have read its own; a publication's deliveries to several accounts then cost one
        read instead of one each.
        """
        ids = sorted({row.publication_id for row in claimed})
        return asyncio.ensure_future(self.load_snapshots(ids))

    def _free_slots(self) -> int:
        """How many more deliveries may be claimed now."""
        return min(
            self.options.concurrency - len(self._calling),
            self._backlog_limit - len(self._inflight),
        )

    def _call_finished(self, delivery_id: int) -> None:
        self._calling.discard(delivery_id)
        if self._free_slots() >= self._threshold:
            self._slots.set()

    def _start(self, row: Claimed, snapshot: SnapshotTask) -> None:
        self._calling.add(row.id)
        task = asyncio.create_task(self._process(row, snapshot))
        self._inflight[row.id] = (row, task)

        def forget(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(row.id, None)
            self._call_finished(row.id)

        task.add_done_callback(forget)

    async def run_until_idle(self, max_rounds: int = 10_000) -> int:
        """Process everything due now, then return the number processed (tests, CLI)."""
        start = self.processed
        await self.liveness.ensure()
        try:
            await self._rounds(max_rounds)
        finally:
            await self.liveness.close()
        return self.processed - start

    async def _rounds(self, max_rounds: int) -> None:
        for _ in range(max_rounds):
            claimed = await queue.claim(
                self.db,
                worker_id=self.worker_id,
                limit=self.options.batch_size,
                lease_seconds=self.options.lease_seconds,
                rate_limits=self.rate_limits,
                channels=list(self.channels),
            )
            if not claimed:
                break
            snapshots = self._snapshots_for(claimed)
            await asyncio.gather(*(self._process(row, snapshots) for row in claimed))

    async def _idle(self, stop: asyncio.Event, *, for_slots: bool = False) -> None:
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        if for_slots:
            self._slots.clear()
            waiters.append(asyncio.ensure_future(self._slots.wait()))
        try:
            await asyncio.wait(
                waiters, timeout=self.options.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
            self._wake.clear()

    async def _drain(self) -> None:
        if self._inflight:
            tasks = [task for _, task in self._inflight.values()]
            _done, pending = await asyncio.wait(tasks, timeout=self.options.shutdown_grace)
            for task in pending:
                # Mid-call: the outcome is unknown. The lease runs out and the next claim
                # reconciles through the channel's `find`, so nothing is posted twice.
                task.cancel()
            if pending:
                log.warning(
                    "stopped with calls in flight; they will be reconciled",
                    extra={"worker": self.worker_id, "deliveries": len(pending)},
                )
                # Let the cancelled calls unwind (roll back) while the database is still
                # open; bounded, so that a stuck call cannot hold the process forever.
                await asyncio.wait(pending, timeout=self.options.shutdown_grace)
        await self._recorder.settle(grace=self.options.shutdown_grace)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = max(0.5, self.options.lease_seconds / 3)
        while not stop.is_set():
            await _sleep_or(stop, interval)
            # After a database restart: take the lock again before the leases run out.
            await self.liveness.ensure()
            rows = [row for row, _ in list(self._inflight.values())]
            if not rows:
                continue
            try:
                async with self.db.transaction() as session:
                    await session.execute(
                        update(Delivery)
                        .where(
                            Delivery.id.in_([r.id for r in rows]),
                            Delivery.lease_owner == self.worker_id,
                            Delivery.state == DeliveryState.SENDING.value,
                        )
                        .values(lease_expires_at=utcnow() + _seconds(self.options.lease_seconds))
                    )
            except Exception:
                log.exception("lease heartbeat failed", extra={"worker": self.worker_id})

    async def _process(self, claimed: Claimed, snapshot: SnapshotTask | None = None) -> None:
        extra = {
            "delivery_id": claimed.id,
            "publication_id": claimed.publication_id,
            "channel": claimed.channel,
            "account": claimed.account,
            "action": claimed.action,
            "attempt": claimed.attempts,
        }
        try:
            try:
                receipt = await self._attempt(claimed, snapshot)
            finally:
                self._call_finished(claimed.id)
        except asyncio.CancelledError:
            raise
        except DeliveryError as error:
            await self._failed(claimed, error, extra)
        except Exception as exc:  # a bug or an unexpected platform answer
            log.exception("delivery raised unexpectedly", extra=extra)
            await self._failed(claimed, TransientError(f"unexpected error: {exc!r}"[:500]), extra)
        else:
            await self._record(claimed, receipt, extra)
        finally:
            self.processed += 1

    async def _attempt(self, claimed: Claimed, snapshot: SnapshotTask | None) -> Receipt:
        channel = self.channels.get(claimed.channel)
        if channel is None:
            raise ConfigurationError(f"no channel {claimed.channel!r} is configured here")
        if snapshot is None:
            snapshot = self._snapshots_for([claimed])
        # Shielded: the load is shared, and one delivery's cancellation must not cancel
        # it for the others.
        snapshots = await asyncio.shield(snapshot)
        publication = snapshots.get(claimed.publication_id)
        if publication is None:
            raise PermanentError(f"publication {claimed.publication_id} no longer exists")
        ctx = await self._context(claimed)
        if claimed.needs_reconcile:
            found = await channel.find(publication, ctx)
            if found is not None:
                log.info("reconciled: already delivered", extra={"delivery_id": claimed.id})
                return found
        action = claimed.action
        if action == DeliveryAction.RETRACT.value:
            return await channel.retract(publication, ctx)
        rendition = channel.render(publication, claimed.account)
        if action == DeliveryAction.PUBLISH.value:
            return await channel.publish(rendition, ctx)
        if action == DeliveryAction.UPDATE.value:
            return await channel.update(rendition, ctx)
        if action == DeliveryAction.PUSH.value:
            return await channel.push(rendition, ctx)
        raise PermanentError(f"unknown delivery action {action!r}")

    async def _context(self, claimed: Claimed) -> DeliveryContext:
        remote_id: str | None = None
        remote_receipt: dict[str, Any] = {}
        if claimed.action != DeliveryAction.PUBLISH.value:
            async with self.db.read_sessions() as session:
                row = (
                    await session.execute(
                        select(Delivery.remote_id, Delivery.receipt).where(
                            Delivery.publication_id == claimed.publication_id,
                            Delivery.channel == claimed.channel,
                            Delivery.account == claimed.account,
                            Delivery.action == DeliveryAction.PUBLISH.value,
                        )
                    )
                ).first()
            if row is not None:
                remote_id, remote_receipt = row.remote_id, dict(row.receipt or {})
        return DeliveryContext(
            delivery_id=claimed.id,
            publication_id=claimed.publication_id,
            account=claimed.account,
            action=claimed.action,
            attempt=claimed.attempts,
            idempotency_key=f"govcast-{claimed.publication_id}-{claimed.id}",
            remote_id=remote_id,
            remote_receipt=remote_receipt,
            revision=claimed.revision,
        )

    async def _record(self, claimed: Claimed, receipt: Receipt, extra: dict[str, Any]) -> None:
        try:
            held = await self._recorder.submit((claimed, receipt))
        except Exception:
            # The shared transaction failed (a deadlock, a dropped connection): record
            # this outcome on its own, so one bad batch costs a retry, not the outcomes.
            log.warning("batched completion failed; recording alone", extra=extra)
            held = (await self._record_batch([(claimed, receipt)]))[0]
        if not held:
            log.warning("lease lost before completion was recorded", extra=extra)
            return
        log.info(
            "delivered",
            extra={**extra, "remote_id": receipt.remote_id, "pending": receipt.pending},
        )

    async def _record_batch(self, outcomes: list[tuple[Claimed, Receipt]]) -> list[bool]:
        """Record finished deliveries in one transaction; True where the lease was held."""
        async with self.db.transaction() as session:
            held = await queue.complete_many(session, outcomes)
            settled = {
                claimed.publication_id
                for claimed, receipt in outcomes
                if held[claimed.id]
                and claimed.action == DeliveryAction.PUBLISH.value
                and not receipt.pending
            }
            # Rows are locked in id order and then publications in id order (both done
            # inside the calls), so overlapping batches of two workers cannot deadlock.
            await workflow.mark_published_if_settled_many(session, settled)
        return [held[claimed.id] for claimed, _ in outcomes]

    async def _failed(self, claimed: Claimed, error: DeliveryError, extra: dict[str, Any]) -> None:
        extra = {**extra, "error_kind": error.kind, "error_code": error.code}
        async with self.db.transaction() as session:
            if isinstance(error, WaitForWindow):
                # Waiting for a quota window is not a failure: the attempt is handed back,
                # or a month's wait would use up max_attempts and dead-letter the push.
                delay = max(error.retry_after or 0.0, self.policy.delay(1, self.rng))
                await queue.retry_later(session, claimed, error, delay, count_attempt=False)
                log.warning(
                    "delivery waits for its quota window",
                    extra={**extra, "retry_in": round(delay, 2)},
                )
                return
            if isinstance(error, TransientError) and not self.policy.exhausted(claimed.attempts):
                delay = self.policy.delay(claimed.attempts, self.rng, error.retry_after)
                await queue.retry_later(session, claimed, error, delay)
                log.warning(
                    "delivery failed, will retry", extra={**extra, "retry_in": round(delay, 2)}
                )
                return
            reason = (
                f"gave up after {claimed.attempts} attempts"
                if isinstance(error, TransientError)
                else ""
            )
            await queue.dead_letter(session, claimed, error, reason=reason)
            if claimed.action == DeliveryAction.PUBLISH.value:
                await workflow.mark_published_if_settled(session, claimed.publication_id)
        log.error("delivery dead-lettered", extra={**extra, "error": error.message[:300]})


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _seconds(value: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value)
