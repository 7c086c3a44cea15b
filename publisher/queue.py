"""The delivery queue (transactional outbox). Every change of a delivery's state goes
through this module.

Life of a row::

    pending --claim--> sending --receipt--> done
       ^                  |  \\--accepted, async--> confirming --event/poll--> done
       |                  |--transient error--> pending (not_before = now + backoff)
       |                  |--permanent error / attempts exhausted--> dead (+ alert)
       \\--lease expired while sending: claimed again with needs_reconcile, and the
          channel's ``find`` settles whether the last attempt took effect.

Claims take a lease. ``sending`` is committed before the remote call, so a crash between
the call and the commit leaves a row whose outcome is unknown rather than one that is
silently posted twice.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from publisher.db import Database
from publisher.liveness import owner_gone
from publisher.models import Alert, Delivery, DeliveryAction, DeliveryState
from publisher.orm import utcnow
from publisher.outcomes import DeliveryError, Receipt

log = logging.getLogger("govcast.queue")

# Rows a claim looks at beyond what it takes, so that rate-limited accounts cannot
# starve the rest of the queue.
_SCAN_FACTOR = 4
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` deliveries of ``actions`` per account in any ``per_seconds`` window."""

    count: int
    per_seconds: float
    actions: frozenset[str] = frozenset({DeliveryAction.PUBLISH.value})


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds a lease on."""

    id: int
    publication_id: int
    channel: str
    account: str
    action: str
    revision: int
    attempts: int
    priority: int
    needs_reconcile: bool
    lease_owner: str
    remote_id: str | None = None
    receipt: dict[str, Any] = field(default_factory=dict)


# --- enqueue -------------------------------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    *,
    publication_id: int,
    channel: str,
    account: str,
    action: str = DeliveryAction.PUBLISH.value,
    revision: int = 0,
    priority: int = 0,
    not_before: datetime | None = None,
) -> bool:
    """Add a delivery inside the caller's transaction; a repeat is a no-op.

    Returns True when a row was written, False when it already existed.
    """
    now = utcnow()
    values = {
        "publication_id": publication_id,
        "channel": channel,
        "account": account,
        "action": action,
        "revision": revision,
        "priority": priority,
        "not_before": not_before or now,
        "state": DeliveryState.PENDING.value,
        "attempts": 0,
        "needs_reconcile": False,
        "receipt": {},
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    # The unique key (publication, channel, account, action, revision) makes a second
    # enqueue of the same work harmless: that is what makes approval idempotent.
    stmt = (
        builder(Delivery)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["publication_id", "channel", "account", "action", "revision"]
        )
    )
    result = await session.execute(stmt)
    return _rowcount(result) > 0


async def cancel_pending(session: AsyncSession, publication_id: int, actions: Iterable[str]) -> int:
    """Cancel deliveries of a publication that have not started; returns how many."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.publication_id == publication_id,
            Delivery.action.in_(list(actions)),
            Delivery.state == DeliveryState.PENDING.value,
        )
        .values(state=DeliveryState.CANCELLED.value, updated_at=utcnow())
    )
    return _rowcount(result)


async def reschedule_pending(
    session: AsyncSession, publication_id: int, not_before: datetime, priority: int
) -> int:
    """Move a publication's not-yet-started deliveries to a new time and priority."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.publication_id == publication_id,
            Delivery.state == DeliveryState.PENDING.value,
            Delivery.attempts == 0,
        )
        .values(not_before=not_before, priority=priority, updated_at=utcnow())
    )
    return _rowcount(result)


# --- claim ---------------------------------------------------------------------------------


RateLimits = Mapping[tuple[str, str], Sequence[RateLimit]]


async def claim(
    db: Database,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    rate_limits: RateLimits | None = None,
    channels: Iterable[str] | None = None,
    now: datetime | None = None,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries for this worker and mark them ``sending``."""
    now = now or utcnow()
    rate_limits = rate_limits or {}
    async with db.transaction() as session:
        earlier = aliased(Delivery)
        # Work on one channel account is sequenced: a push waits for its publish, a
        # retraction for whatever came before it on the same target.
        # OFFSET 0 keeps PostgreSQL from turning this into an anti-join: planned as one,
        # with no or stale statistics it scanned the whole queue per candidate row (a
        # claim took seconds at a few thousand rows). As a correlated subplan it is one
        # probe of ix_deliveries_unsettled_target per row, whatever the statistics say.
        blocked = (
            select(literal(1))
            .where(
                earlier.publication_id == Delivery.publication_id,
                earlier.channel == Delivery.channel,
                earlier.account == Delivery.account,
                earlier.id < Delivery.id,
                earlier.state.in_(
                    [
                        DeliveryState.PENDING.value,
                        DeliveryState.SENDING.value,
                        DeliveryState.CONFIRMING.value,
                    ]
                ),
            )
            .offset(0)
            .exists()
        )
        expired = and_(
            Delivery.state == DeliveryState.SENDING.value, Delivery.lease_expires_at < now
        )
        if db.is_postgresql:
            # Only a dead holder's lease: a slow one is still calling the platform.
            expired = and_(expired, owner_gone(Delivery.lease_owner))
        due = or_(
            and_(Delivery.state == DeliveryState.PENDING.value, Delivery.not_before <= now),
            # A crashed worker's lease: the outcome of its call is unknown.
            expired,
        )
        stmt = (
            select(
                Delivery.id,
                Delivery.publication_id,
                Delivery.channel,
                Delivery.account,
                Delivery.action,
                Delivery.revision,
                Delivery.attempts,
                Delivery.priority,
                Delivery.state,
                Delivery.needs_reconcile,
            )
            .where(due, ~blocked)
            .order_by(Delivery.priority.desc(), Delivery.not_before, Delivery.id)
            .limit(limit * _SCAN_FACTOR)
        )
        if channels is not None:
            stmt = stmt.where(Delivery.channel.in_(list(channels)))
        if db.is_postgresql:
            # SKIP LOCKED: concurrent workers each take different rows instead of queueing
            # behind one another's locks. OF deliveries keeps the lock off the subquery.
            stmt = stmt.with_for_update(skip_locked=True, of=Delivery)
        rows = (await session.execute(stmt)).all()
        if not rows:
            return []

        if db.is_postgresql:
            await _lock_rate_limited_targets(session, rows, rate_limits)
        usage = await _usage(session, rows, rate_limits, now)
        taken: list[Any] = []
        deferred: dict[int, datetime] = {}
        for row in rows:
            if len(taken) >= limit:
                break
            wait_until = _admit(row, rate_limits, usage, now)
            if wait_until is None:
                taken.append(row)
            elif row.state == DeliveryState.PENDING.value:
                deferred[row.id] = wait_until

        for delivery_id, wait_until in deferred.items():
            # Push rate-limited rows past the window instead of rescanning them every tick.
            await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(not_before=wait_until, updated_at=now)
            )
        if not taken:
            return []
        lease_until = now + timedelta(seconds=lease_seconds)
        ids = [row.id for row in taken]
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(
                state=DeliveryState.SENDING.value,
                lease_owner=worker_id,
                lease_expires_at=lease_until,
                attempts=Delivery.attempts + 1,
                sent_at=now,
                updated_at=now,
                needs_reconcile=or_(
                    Delivery.needs_reconcile,
                    Delivery.state == DeliveryState.SENDING.value,
                ),
            )
        )
        return [
            Claimed(
                id=row.id,
                publication_id=row.publication_id,
                channel=row.channel,
                account=row.account,
                action=row.action,
                revision=row.revision,
                attempts=row.attempts + 1,
                priority=row.priority,
                needs_reconcile=bool(
                    row.needs_reconcile or row.state == DeliveryState.SENDING.value
                ),
                lease_owner=worker_id,
            )
            for row in taken
        ]


# The advisory-lock key space of rate-limited targets ("gvrt"), apart from the lease
# holders' (publisher.liveness.LOCK_CLASS) and the one-argument locks of the application.
RATE_LOCK_CLASS = 0x67767274

# Two claims in flight at once each count a target's bookings from committed rows only:
# neither sees the other's, and both may take the last free slot of a limit. A
# transaction-scoped advisory lock per target (channel:account) makes counting and booking
# one critical section: a second claim waits here until the first commits its bookings,
# and its count (a new statement, so a new READ COMMITTED snapshot) then includes them.
# Released by the claim's commit or rollback; the row locks (SKIP LOCKED) are disjoint, so
# two claims waiting on each other's targets can only be a cycle through these locks,
# which taking them in sorted order rules out.
_RATE_LOCK = text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:target))")


def rate_lock_target(channel: str, account: str) -> str:
    """The text whose ``hashtext`` keys a target's rate-limit lock (PostgreSQL)."""
    return f"{channel}:{account}"


async def _lock_rate_limited_targets(
    session: AsyncSession, rows: Sequence[Any], rate_limits: RateLimits
) -> None:
    """Serialise the counting and booking of each rate-limited target across claims."""
    targets = sorted(
        {(row.channel, row.account) for row in rows if rate_limits.get((row.channel, row.account))}
    )
    for channel, account in targets:
        await session.execute(
            _RATE_LOCK,
            {"lock_class": RATE_LOCK_CLASS, "target": rate_lock_target(channel, account)},
        )


async def _usage(
    session: AsyncSession, rows: Sequence[Any], rate_limits: RateLimits, now: datetime
) -> dict[tuple[str, str, int], list[datetime]]:
    """Send times within each limit's window, per account, for the accounts in ``rows``."""
    usage: dict[tuple[str, str, int], list[datetime]] = {}
    targets = {(row.channel, row.account) for row in rows}
    for target in targets:
        for index, limit in enumerate(rate_limits.get(target, ())):
            since = now - timedelta(seconds=limit.per_seconds)
            result = await session.execute(
                select(Delivery.sent_at)
                .where(
                    Delivery.channel == target[0],
                    Delivery.account == target[1],
                    Delivery.action.in_(sorted(limit.actions)),
                    Delivery.sent_at >= since,
                    Delivery.state.in_(
                        [
                            DeliveryState.SENDING.value,
                            DeliveryState.CONFIRMING.value,
                            DeliveryState.DONE.value,
                        ]
                    ),
                )
                .order_by(Delivery.sent_at)
            )
            usage[(target[0], target[1], index)] = [t for (t,) in result.all() if t is not None]
    return usage


def _admit(
    row: Any,
    rate_limits: RateLimits,
    usage: dict[tuple[str, str, int], list[datetime]],
    now: datetime,
) -> datetime | None:
    """None if the row fits every limit (and books it), else when it may next try."""
    limits = rate_limits.get((row.channel, row.account), ())
    applicable = [(i, lim) for i, lim in enumerate(limits) if row.action in lim.actions]
    wait_until: datetime | None = None
    for index, limit in applicable:
        sent = usage[(row.channel, row.account, index)]
        if len(sent) >= limit.count:
            free_at = sent[len(sent) - limit.count] + timedelta(seconds=limit.per_seconds)
            wait_until = max(wait_until or free_at, free_at)
    if wait_until is not None:
        return max(wait_until, now + timedelta(seconds=1))
    for index, _limit in applicable:
        usage[(row.channel, row.account, index)].append(now)
    return None


# --- outcomes ------------------------------------------------------------------------------


def _held(claimed: Claimed) -> Any:
    # Only the lease holder may settle a row: a worker whose lease ran out and was taken
    # over must not overwrite the newer holder's outcome.
    return and_(Delivery.id == claimed.id, Delivery.lease_owner == claimed.lease_owner)


async def complete(session: AsyncSession, claimed: Claimed, receipt: Receipt) -> bool:
    """Record the channel's receipt: done, or confirming when the platform is still at it."""
    now = utcnow()
    state = DeliveryState.CONFIRMING if receipt.pending else DeliveryState.DONE
    result = await session.execute(
        update(Delivery)
        .where(_held(claimed), Delivery.state == DeliveryState.SENDING.value)
        .values(
            state=state.value,
            remote_id=receipt.remote_id,
            remote_url=receipt.remote_url,
            receipt=receipt.detail,
            lease_owner=None,
            lease_expires_at=None,
            needs_reconcile=False,
            last_error=None,
            last_error_kind=None,
            done_at=None if receipt.pending else now,
            updated_at=now,
        )
    )
    return _rowcount(result) > 0


# One statement for a whole batch on PostgreSQL: the worker records up to a batch of
# outcomes at once, and one round trip instead of one per row is most of the saving.
# Each row still settles only if this worker holds its lease and it is still sending;
# RETURNING tells which did.
_COMPLETE_MANY_PG = text(
    """
    UPDATE deliveries AS d
    SET state = o.state,
        remote_id = o.remote_id,
        remote_url = o.remote_url,
        receipt = o.receipt::jsonb,
        lease_owner = NULL,
        lease_expires_at = NULL,
        needs_reconcile = false,
        last_error = NULL,
        last_error_kind = NULL,
        done_at = CASE WHEN o.state = 'done' THEN CAST(:now AS timestamptz) END,
        updated_at = CAST(:now AS timestamptz)
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:owners AS text[]), CAST(:states AS text[]),
        CAST(:remote_ids AS text[]), CAST(:remote_urls AS text[]), CAST(:receipts AS text[])
    ) AS o(id, owner, state, remote_id, remote_url, receipt)
    WHERE d.id = o.id AND d.lease_owner = o.owner AND d.state = 'sending'
    RETURNING d.id
    """
)


async def complete_many(
    session: AsyncSession, outcomes: Sequence[tuple[Claimed, Receipt]]
) -> dict[int, bool]:
    """Record several receipts at once; for each delivery id, whether the lease was held."""
    if not outcomes:
        return {}
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect != "postgresql":
        # SQLite runs in-process: per-row statements cost no round trips.
        return {c.id: await complete(session, c, r) for c, r in outcomes}
    now = utcnow()
    ordered = sorted(outcomes, key=lambda o: o[0].id)  # lock rows in id order
    result = await session.execute(
        _COMPLETE_MANY_PG,
        {
            "now": now,
            "ids": [c.id for c, _ in ordered],
            "owners": [c.lease_owner for c, _ in ordered],
            "states": [
                (DeliveryState.CONFIRMING if r.pending else DeliveryState.DONE).value
                for _, r in ordered
            ],
            "remote_ids": [r.remote_id for _, r in ordered],
            "remote_urls": [r.remote_url for _, r in ordered],
            "receipts": [json.dumps(r.detail or {}, ensure_ascii=False) for _, r in ordered],
        },
    )
    held = {int(row[0]) for row in result.all()}
    return {c.id: c.id in held for c, _ in outcomes}


async def retry_later(
    session: AsyncSession,
    claimed: Claimed,
    error: DeliveryError,
    delay_seconds: float,
    *,
    count_attempt: bool = True,
) -> bool:
    """Put the row back in the queue after a transient failure.

    ``count_attempt=False`` hands the claim's attempt back (a wait for a quota window).
    """
    now = utcnow()
    result = await session.execute(
        update(Delivery)
        .where(_held(claimed), Delivery.state == DeliveryState.SENDING.value)
        .values(
            state=DeliveryState.PENDING.value,
            attempts=Delivery.attempts if count_attempt else Delivery.attempts - 1,
            not_before=now + timedelta(seconds=delay_seconds),
            lease_owner=None,
            lease_expires_at=None,
            last_error=_describe(error),
            last_error_kind=error.kind,
            updated_at=now,
        )
    )
    return _rowcount(result) > 0


async def dead_letter(
    session: AsyncSession, claimed: Claimed, error: DeliveryError, *, reason: str = ""
) -> bool:
    """Stop retrying and raise an alert that staff will see."""
    now = utcnow()
    message = _describe(error)
    result = await session.execute(
        update(Delivery)
        .where(_held(claimed), Delivery.state.in_([DeliveryState.SENDING.value]))
        .values(
            state=DeliveryState.DEAD.value,
            lease_owner=None,
            lease_expires_at=None,
            last_error=message,
            last_error_kind=error.kind,
            updated_at=now,
        )
    )
    if not _rowcount(result):
        return False
    session.add(
        Alert(
            kind="dead_letter" if error.kind != "config" else "configuration",
            severity="error",
            message=f"{claimed.channel}:{claimed.account} {claimed.action}: "
            f"{reason + ' — ' if reason else ''}{message}",
            publication_id=claimed.publication_id,
            delivery_id=claimed.id,
            created_at=now,
        )
    )
    return True


async def release(session: AsyncSession, claimed: Claimed) -> bool:
    """Give a claimed row back untouched (graceful shutdown before the remote call)."""
    result = await session.execute(
        update(Delivery)
        .where(_held(claimed), Delivery.state == DeliveryState.SENDING.value)
        .values(
            state=DeliveryState.PENDING.value,
            attempts=Delivery.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )
    return _rowcount(result) > 0


async def extend_lease(db: Database, claimed: Claimed, lease_seconds: float) -> bool:
    """Keep a long call's lease alive."""
    async with db.transaction() as session:
        result = await session.execute(
            update(Delivery)
            .where(_held(claimed), Delivery.state == DeliveryState.SENDING.value)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
        return _rowcount(result) > 0


async def settle_confirming(
    session: AsyncSession,
    *,
    channel: str,
    remote_id: str,
    receipt: Receipt | None,
    error: DeliveryError | None = None,
    account: str | None = None,
) -> int | None:
    """Settle a ``confirming`` delivery from a platform event or a poll; returns its id."""
    now = utcnow()
    stmt = select(Delivery).where(
        Delivery.channel == channel,
        Delivery.remote_id == remote_id,
        Delivery.state == DeliveryState.CONFIRMING.value,
    )
    if account is not None:
        # Remote ids are unique per platform account only (e.g. WeChat publish_id).
        stmt = stmt.where(Delivery.account == account)
    row = (await session.execute(stmt)).scalars().first()
    if row is None:
        return None
    if error is not None:
        row.state = DeliveryState.DEAD.value
        row.last_error = _describe(error)
        row.last_error_kind = error.kind
        session.add(
            Alert(
                kind="dead_letter",
                message=f"{row.channel}:{row.account} {row.action}: {row.last_error}",
                publication_id=row.publication_id,
                delivery_id=row.id,
                created_at=now,
            )
        )
    elif receipt is not None:
        row.state = DeliveryState.DONE.value
        row.remote_url = receipt.remote_url or row.remote_url
        row.receipt = {**(row.receipt or {}), **receipt.detail}
        row.done_at = now
        row.last_error = None
    row.updated_at = now
    return row.id


async def retry_dead(session: AsyncSession, delivery_id: int) -> bool:
    """Staff asked to try a dead delivery again: back to pending, attempts reset."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.DEAD.value)
        .values(
            state=DeliveryState.PENDING.value,
            attempts=0,
            not_before=utcnow(),
            needs_reconcile=True,
            updated_at=utcnow(),
        )
    )
    return _rowcount(result) > 0


# --- inspection ----------------------------------------------------------------------------


async def depth(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Number of deliveries by (state, channel), for metrics and the console."""
    result = await session.execute(
        select(Delivery.state, Delivery.channel, func.count()).group_by(
            Delivery.state, Delivery.channel
        )
    )
    return {(state, channel): count for state, channel, count in result.all()}


async def unsettled_count(session: AsyncSession, publication_id: int | None = None) -> int:
    """Deliveries still pending, sending or confirming."""
    stmt = select(func.count()).where(
        Delivery.state.in_(
            [
                DeliveryState.PENDING.value,
                DeliveryState.SENDING.value,
                DeliveryState.CONFIRMING.value,
            ]
        )
    )
    if publication_id is not None:
        stmt = stmt.where(Delivery.publication_id == publication_id)
    return int((await session.execute(stmt)).scalar_one())


async def publish_states(session: AsyncSession, publication_id: int) -> dict[str, int]:
    """Counts of the publication's publish deliveries by state."""
    return (await publish_states_many(session, [publication_id])).get(publication_id, {})


async def publish_states_many(
    session: AsyncSession, publication_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Counts of publish deliveries by state, per publication, in one query."""
    result = await session.execute(
        select(Delivery.publication_id, Delivery.state, func.count())
        .where(
            Delivery.publication_id.in_(list(publication_ids)),
            Delivery.action == DeliveryAction.PUBLISH.value,
        )
        .group_by(Delivery.publication_id, Delivery.state)
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for publication_id, state, count in result.all():
        counts[publication_id][state] = count
    return dict(counts)


def _rowcount(result: Any) -> int:
    # UPDATE/INSERT results are cursor results; their rowcount is what we need.
    return int(getattr(result, "rowcount", 0) or 0)


def _describe(error: DeliveryError) -> str:
    code = f"[{error.code}] " if error.code is not None else ""
    return (code + error.message)[:_MAX_ERROR_CHARS]


__all__ = [
    "RATE_LOCK_CLASS",
    "Claimed",
    "RateLimit",
    "cancel_pending",
    "claim",
    "complete",
    "dead_letter",
    "depth",
    "enqueue",
    "extend_lease",
    "publish_states",
    "rate_lock_target",
    "release",
    "reschedule_pending",
    "retry_dead",
    "retry_later",
    "settle_confirming",
    "unsettled_count",
]
