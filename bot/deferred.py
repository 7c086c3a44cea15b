"""Replies that missed the callback budget: kept in ``bot_deferred_replies`` and delivered
by customer-service message inside the 48-hour window, by template message after it.

The WeChat API client comes from the channels package
(``app[govcast.keys.CHANNELS]["wechat"].api(account)`` with ``send_custom_text``,
``send_custom_news`` and ``send_template``). Without it rows wait in state
``waiting_channel`` and the tick retries them once it exists.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from bot import texts
from bot.models import DeferredPush, DeferredReply, Follower, InboundMessageRecord
from publisher.db import Database
from publisher.liveness import owner_gone
from publisher.outcomes import PermanentError, TransientError

if TYPE_CHECKING:
    from bot.service import BotService

log = logging.getLogger("govcast.bot")

WINDOW = timedelta(hours=48)
MAX_ATTEMPTS = 8
# One attempt at a time per reply: the web process that deferred it and every scheduler's
# tick can reach a row at the same moment, and a customer-service message carries no
# idempotency key. An attempt holds the row as ``sending`` for this long; a process
# killed mid-send leaves it so, and the tick tries again after the lease (at least once:
# only that rare case can show the citizen one reply twice).
LEASE = timedelta(seconds=60)
TRYABLE = ("pending", "waiting_channel")
SENDS_AT_ONCE = 8
INTERRUPTED = "an earlier attempt was interrupted mid-send; the citizen may see this reply twice"


async def record(
    db: Database,
    *,
    account: str,
    dedup_key: str,
    openid: str,
    reply: dict[str, Any] | None,
    last_inbound_at: datetime,
) -> int | None:
    """Keep a late reply (once per push) and settle its push; the id, or None if none.

    One transaction: the push leaves ``bot_deferred_pushes`` (and bot_inbound moves on to
    ``late_done``) exactly when its reply is kept, so a push whose process dies in between
    is still kept and is handled again elsewhere (``BotService.recover``), and one
    settled never is.
    ``reply`` None: the handler had nothing to say; only the push is settled.
    """
    row_id: int | None = None
    async with db.transaction() as session:
        if reply is not None:
            insert = pg_insert if db.is_postgresql else sqlite_insert
            stmt = (
                insert(DeferredReply)
                .values(
                    account=account,
                    dedup_key=dedup_key,
                    openid=openid,
                    reply=reply,
                    last_inbound_at=last_inbound_at,
                    state="pending",
                    via="",
                    attempts=0,
                    last_error="",
                    not_before=datetime.now(UTC),
                    created_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=["account", "dedup_key"])
                .returning(DeferredReply.id)
            )
            row_id = (await session.execute(stmt)).scalar_one_or_none()
        await session.execute(
            delete(DeferredPush)
            .where(DeferredPush.account == account)
            .where(DeferredPush.dedup_key == dedup_key)
        )
        await session.execute(
            update(InboundMessageRecord)
            .where(InboundMessageRecord.account == account)
            .where(InboundMessageRecord.dedup_key == dedup_key)
            # "handling": marking it deferred failed; the late reply settles it all the same.
            .where(InboundMessageRecord.state.in_(("handling", "deferred")))
            .values(state="late_done")
        )
    return row_id


def channel_api(service: BotService, account: str) -> Any:
    """The channels package's WeChat API client for ``account``, or None."""
    if service.api_for is not None:
        return service.api_for(account)
    app = service.app
    if app is None:
        return None
    from govcast import keys

    try:
        registry: Any = app[keys.CHANNELS]
        channel = registry["wechat"]
    except (KeyError, TypeError):
        return None
    api = getattr(channel, "api", None)
    return api(account) if callable(api) else None


async def deliver(service: BotService, row_id: int, now: datetime | None = None) -> str:
    """Try to deliver one deferred reply; returns its new state."""
    now = now or datetime.now(UTC)
    if service.store.liveness is not None and not service.store.liveness.held:
        await service.store.liveness.ensure()
    if not await _take(service, row_id, now):
        async with service.db.sessions() as session:
            row = await session.get(DeferredReply, row_id)
        return row.state if row else "missing"
    async with service.db.sessions() as session:
        row = await session.get(DeferredReply, row_id)
    assert row is not None  # taken just now; only the retention purge deletes rows
    api = channel_api(service, row.account)
    if api is None:
        await _set(
            service.db, row_id, state="waiting_channel", not_before=now + timedelta(minutes=1)
        )
        return "waiting_channel"
    reply = row.reply or {}
    # This attempt follows one cut short mid-send: keep saying so whatever happens now.
    cut_short = row.last_error.startswith(INTERRUPTED)
    try:
        if now - row.last_inbound_at < WINDOW:
            via = "custom"
            if reply.get("type") == "news":
                await api.send_custom_news(row.openid, reply.get("articles", [])[:1])
            else:
                await api.send_custom_text(row.openid, _as_text(reply))
        else:
            via = "template"
            template_id = service.settings.bot.template_id
            if not template_id:
                raise PermanentError("48 小时客服窗口已过，且未配置模板消息 (bot.template_id)")
            await api.send_template(
                row.openid,
                template_id,
                {
                    "first": texts.get(service.settings, "late_template_first"),
                    "keyword1": _as_text(reply)[:200],
                },
            )
    except TransientError as exc:
        attempts = row.attempts + 1
        state = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        delay = min(3600.0, (exc.retry_after or 0) + 2**attempts + random.random())
        await _set(
            service.db,
            row_id,
            state=state,
            attempts=attempts,
            last_error=_error(exc, cut_short),
            not_before=now + timedelta(seconds=delay),
        )
        return state
    except PermanentError as exc:
        await _set(
            service.db,
            row_id,
            state="failed",
            attempts=row.attempts + 1,
            last_error=_error(exc, cut_short),
        )
        log.warning(
            "bot: deferred reply failed for good",
            extra={"account": row.account, "deferred_id": row_id},
        )
        return "failed"
    await _set(service.db, row_id, state="sent", via=via, attempts=row.attempts + 1, sent_at=now)
    return "sent"


async def _take(service: BotService, row_id: int, now: datetime) -> bool:
    """Hold the row for one attempt; False if it is settled or another attempt holds it.

    Taking a row still ``sending`` means the attempt before died mid-send: the message
    may have reached the citizen, so that attempt is counted and said in ``last_error``.
    """
    interrupted = DeferredReply.state == "sending"
    async with service.db.transaction() as session:
        result = await session.execute(
            update(DeferredReply)
            .where(DeferredReply.id == row_id)
            .where(or_(DeferredReply.state.in_(TRYABLE), and_(interrupted, _ended(service, now))))
            .values(
                state="sending",
                not_before=now + LEASE,
                owner=service.store.owner,
                attempts=case(
                    (interrupted, DeferredReply.attempts + 1), else_=DeferredReply.attempts
                ),
                last_error=case(
                    (interrupted, literal(INTERRUPTED)), else_=DeferredReply.last_error
                ),
            )
        )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _ended(service: BotService, now: datetime) -> ColumnElement[bool]:
    """SQL: the attempt in flight is over: its lease ran out, or (PostgreSQL) its process died."""
    expired = DeferredReply.not_before <= now
    liveness = service.store.liveness
    if liveness is None or not liveness.held:
        return expired  # without our own lock, a taker could itself look dead
    return or_(
        expired, and_(DeferredReply.owner != service.store.owner, owner_gone(DeferredReply.owner))
    )


def _error(exc: Exception, cut_short: bool) -> str:
    return (f"{INTERRUPTED}; then: {exc}" if cut_short else str(exc))[:500]


def _as_text(reply: dict[str, Any]) -> str:
    if reply.get("type") == "text":
        return str(reply.get("content", ""))
    if reply.get("type") == "news":
        return "\n".join(
            f"{a.get('title', '')} {a.get('url', '')}" for a in reply.get("articles", [])
        )
    return ""


async def _set(db: Database, row_id: int, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(DeferredReply).where(DeferredReply.id == row_id).values(**values)
        )


async def deliver_due(service: BotService, limit: int = 50) -> int:
    """Tick: try the deferred replies that are due; how many were tried."""
    now = datetime.now(UTC)
    if service.store.liveness is not None and not service.store.liveness.held:
        await service.store.liveness.ensure()
    async with service.db.sessions() as session:
        ids = (
            await session.scalars(
                select(DeferredReply.id)
                # A "sending" row is due when its attempt's process died (PostgreSQL) or
                # its lease ran out; _take decides for good, under its row lock.
                .where(
                    or_(
                        and_(DeferredReply.state.in_(TRYABLE), DeferredReply.not_before <= now),
                        and_(DeferredReply.state == "sending", _ended(service, now)),
                    )
                )
                .order_by(DeferredReply.id)
                .limit(limit)
            )
        ).all()
    # Concurrently, a few at a time: a killed web process can leave dozens due at once,
    # and replies after a menu click must arrive within WeChat's one-minute window.
    gate = asyncio.Semaphore(SENDS_AT_ONCE)

    async def one(row_id: int) -> None:
        async with gate:
            try:
                await deliver(service, row_id, now)
            except Exception:
                log.exception("bot: deferred reply attempt failed", extra={"deferred_id": row_id})

    await asyncio.gather(*(one(row_id) for row_id in ids))
    return len(ids)


async def purge(db: Database, retention_days: int, now: datetime | None = None) -> int:
    """Tick: delete citizens' data older than the retention period; rows deleted."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    async with db.transaction() as session:
        inbound = await session.execute(
            delete(InboundMessageRecord).where(
                InboundMessageRecord.received_ts < int(cutoff.timestamp())
            )
        )
        late = await session.execute(
            delete(DeferredReply)
            .where(DeferredReply.created_at < cutoff)
            .where(DeferredReply.state.in_(("sent", "failed")))
        )
        stale = await session.execute(
            delete(DeferredPush).where(DeferredPush.received_ts < int(cutoff.timestamp()))
        )
        gone = await session.execute(
            delete(Follower)
            .where(Follower.subscribed.is_(False))
            .where(Follower.unsubscribed_at < cutoff)
        )
    return sum(int(getattr(r, "rowcount", 0) or 0) for r in (inbound, late, stale, gone))
