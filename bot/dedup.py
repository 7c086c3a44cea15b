"""Exactly-once handling of WeChat pushes across processes: claims in the shared database.

A push is *claimed* by ``INSERT ... ON CONFLICT (account, dedup_key) DO NOTHING RETURNING``;
only the claimant handles it, and stores the reply XML on the same row, so each of
WeChat's retries (same MsgId, or sender + CreateTime for events) gets the identical reply.

Group commit: every concurrent claim (and every reply store) waiting at one moment goes
to the database as one statement in one transaction, so 50 concurrent citizens cost one
round trip, not fifty. Raw driver SQL (no ORM, no per-call compilation) keeps it lean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from publisher.db import Database

log = logging.getLogger("govcast.bot")

MAX_BATCH = 200

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Batches concurrent calls: while one batch is in flight, the next accumulates."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._run = run
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False

    async def submit(self, item: T) -> R:
        """Add one item to the next batch and wait for its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            # Yield once so that callers already scheduled in this loop turn join the batch.
            await asyncio.sleep(0)
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await self._run([item for item, _ in batch])
                except BaseException as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._flushing = False


@dataclass(frozen=True)
class Claim:
    """One push to claim."""

    account: str
    dedup_key: str
    openid: str
    msg_type: str
    received_ts: int


@dataclass(frozen=True)
class Finish:
    """The outcome of a claimed push."""

    account: str
    dedup_key: str
    state: str  # done | deferred
    reply: str


class InboundStore:
    """Claims and stored replies in ``bot_inbound``, group-committed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pg = db.is_postgresql
        self._claims: GroupCommit[Claim, bool] = GroupCommit(self._claim_batch)
        self._finishes: GroupCommit[Finish, None] = GroupCommit(self._finish_batch)

    async def claim(self, claim: Claim) -> bool:
        """True if this process owns the push; False if it was seen before."""
        return await self._claims.submit(claim)

    async def finish(self, finish: Finish) -> None:
        """Store the reply of a claimed push."""
        await self._finishes.submit(finish)

    async def lookup(self, account: str, dedup_key: str) -> tuple[str, str | None] | None:
        """(state, reply) of a claimed push, or None."""
        sql = (
            "SELECT state, reply FROM bot_inbound WHERE account = $1 AND dedup_key = $2"
            if self.pg
            else "SELECT state, reply FROM bot_inbound WHERE account = ? AND dedup_key = ?"
        )
        async with self.db.engine.connect() as conn:
            result = await conn.exec_driver_sql(sql, (account, dedup_key))  # type: ignore[arg-type]
            row: Any = result.first()
        return (str(row[0]), row[1]) if row else None

    async def wait_reply(
        self, account: str, dedup_key: str, wait: float, poll: float = 0.05
    ) -> str | None:
        """The stored reply of a push another request is handling, waiting up to ``wait``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        while True:
            found = await self.lookup(account, dedup_key)
            if found is not None and found[0] != "handling":
                return found[1]
            if loop.time() + poll > until:
                return None
            await asyncio.sleep(poll)

    async def _claim_batch(self, items: list[Claim]) -> list[bool]:
        # Two copies of one push in one batch: only the first may win.
        first: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            first.setdefault((item.account, item.dedup_key), i)
        unique = [items[i] for i in first.values()]
        async with self.db.engine.begin() as conn:
            if self.pg:
                result = await conn.exec_driver_sql(
                    "INSERT INTO bot_inbound (account, dedup_key, openid, msg_type, received_ts,"
                    " state) SELECT a, k, o, t, ts, 'handling' FROM unnest($1::text[],"
                    " $2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(a, k, o, t, ts)"
                    " ON CONFLICT (account, dedup_key) DO NOTHING RETURNING account, dedup_key",
                    (
                        [c.account for c in unique],
                        [c.dedup_key for c in unique],
                        [c.openid for c in unique],
                        [c.msg_type for c in unique],
                        [c.received_ts for c in unique],
                    ),
                )
            else:
                values = ",".join(["(?, ?, ?, ?, ?, 'handling')"] * len(unique))
                params: list[object] = []
                for c in unique:
                    params.extend((c.account, c.dedup_key, c.openid, c.msg_type, c.received_ts))
                result = await conn.exec_driver_sql(
                    "INSERT INTO bot_inbound (account, dedup_key, openid, msg_type, received_ts,"
                    f" state) VALUES {values} ON CONFLICT (account, dedup_key) DO NOTHING"
                    " RETURNING account, dedup_key",
                    tuple(params),
                )
            rows: list[Any] = list(result.all())
            won = {(str(r[0]), str(r[1])) for r in rows}
        return [
            first[(item.account, item.dedup_key)] == i and (item.account, item.dedup_key) in won
            for i, item in enumerate(items)
        ]

    async def _finish_batch(self, items: Sequence[Finish]) -> list[None]:
        async with self.db.engine.begin() as conn:
            if self.pg:
                await conn.exec_driver_sql(
                    "UPDATE bot_inbound AS b SET state = u.s, reply = u.r FROM unnest($1::text[],"
                    " $2::text[], $3::text[], $4::text[]) AS u(a, k, s, r)"
                    " WHERE b.account = u.a AND b.dedup_key = u.k",
                    (
                        [f.account for f in items],
                        [f.dedup_key for f in items],
                        [f.state for f in items],
                        [f.reply for f in items],
                    ),
                )
            else:
                await conn.exec_driver_sql(
                    "UPDATE bot_inbound SET state = ?, reply = ?"
                    " WHERE account = ? AND dedup_key = ?",
                    [(f.state, f.reply, f.account, f.dedup_key) for f in items],
                )
        return [None] * len(items)
