"""Exactly-once handling of WeChat pushes across processes: claims in the shared database.

A push is *claimed* by ``INSERT ... ON CONFLICT (account, dedup_key) DO NOTHING RETURNING``;
only the claimant handles it, and stores the reply XML on the same row, so each of
WeChat's retries (same MsgId, or sender + CreateTime for events) gets the identical reply.

Group commit: every concurrent claim (and every reply store) waiting at one moment goes
to the database as one statement in one transaction, so 50 concurrent citizens cost one
round trip, not fifty. Raw driver SQL (no ORM, no per-call compilation) keeps it lean.

With ``[redis] url`` set, Redis is a fast pre-filter in front of the claim, never the
authority: a push is first marked with ``SET NX EX`` (pipelined per batch, like the
database claims); a push Redis has already seen is turned away without touching the
database, and a retry's reply is read from Redis while it is there. A push Redis has
*not* seen still takes the database claim, so exactly-once rests on the database alone:
if Redis restarts or is flushed between a claim and WeChat's retry, the retry wins the
Redis mark again but loses the database claim, drops its mark (compare-and-delete, so a
reply written meanwhile survives) and is answered from the database. The Redis mark
lives twice the signature's timestamp window: a replay older than that is refused at the
door before it gets here. Redis down: database only, as before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from govcast.rediscache import DOWN, SharedRedis, run_script
from publisher.batching import GroupCommit
from publisher.db import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("govcast.bot")

# Redis marks: "h:<owner>" while handling, "done:<reply>" / "deferred:<reply>" after.
_HANDLING = "h"
# KEYS[1] = the mark; ARGV[1] = the claimant's own handling value. Deletes it only while
# it is still that claimant's (never a reply another process has stored since).
_DELETE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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
    """Claims and stored replies in ``bot_inbound``, group-committed; Redis optionally first."""

    def __init__(
        self, db: Database, *, redis: SharedRedis | None = None, window_seconds: float = 600.0
    ) -> None:
        self.db = db
        self.pg = db.is_postgresql
        self.redis = redis
        self.window = max(1, math.ceil(window_seconds))
        self._claims: GroupCommit[Claim, bool] = GroupCommit(self._claim_batch)
        self._finishes: GroupCommit[Finish, None] = GroupCommit(self._finish_batch)
        self._marks: GroupCommit[Claim, str | None] = GroupCommit(self._mark_batch)
        self._replies: GroupCommit[Finish, None] = GroupCommit(self._reply_batch)

    async def claim(self, claim: Claim) -> bool:
        """True if this process owns the push; False if it was seen before."""
        owner: str | None = None
        if self.redis is not None:
            owner = await self._marks.submit(claim)
            if owner == "":
                return False  # Redis has seen it: a duplicate, the database untouched
        try:
            won = await self._claims.submit(claim)
        except BaseException:
            # Let WeChat's retry try again rather than be turned away by our mark.
            if owner:
                await self._unmark(claim, owner)
            raise
        if not won and owner:
            # Redis had forgotten the push (restart, flush): the database remembered.
            # Drop our mark so the retry's wait reads the stored reply from the database.
            await self._unmark(claim, owner)
        return won

    async def finish(self, finish: Finish) -> None:
        """Store the reply of a claimed push (in Redis too, for retries to read)."""
        if self.redis is not None:
            # First, so a retry gets the reply even if the database write below fails.
            await self._replies.submit(finish)
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
            found = await self._marked(account, dedup_key)
            from_redis = found is not None
            if found is None:
                found = await self.lookup(account, dedup_key)
            if found is not None and found[0] != "handling":
                return found[1]
            if loop.time() + poll > until:
                if from_redis:
                    # A handling mark may outlive its claimant: the database has the last word.
                    found = await self.lookup(account, dedup_key)
                    if found is not None and found[0] != "handling":
                        return found[1]
                return None
            await asyncio.sleep(poll)

    # --- the Redis pre-filter (optional) ---------------------------------------------------

    def _mark_key(self, account: str, dedup_key: str) -> str:
        assert self.redis is not None
        # The account key has no ':' (settings), so account + dedup key is unambiguous.
        return self.redis.key("inbound", account, dedup_key)

    async def _mark_batch(self, items: list[Claim]) -> list[str | None]:
        # Per item: its owner value if it won the mark, "" if Redis had it, None if Redis
        # is down (then the database decides alone).
        assert self.redis is not None
        owners = [f"{_HANDLING}:{uuid.uuid4().hex}" for _ in items]
        keys = [self._mark_key(item.account, item.dedup_key) for item in items]

        async def mark(client: Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key, owner in zip(keys, owners, strict=True):
                pipe.set(key, owner, nx=True, ex=self.window)
            return list(await pipe.execute())

        result = await self.redis.attempt("dedup mark", mark)
        if result is DOWN:
            return [None] * len(items)
        return [owner if won else "" for won, owner in zip(result, owners, strict=True)]

    async def _reply_batch(self, items: Sequence[Finish]) -> list[None]:
        assert self.redis is not None

        async def store(client: Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for item in items:
                key = self._mark_key(item.account, item.dedup_key)
                pipe.set(key, f"{item.state}:{item.reply}", ex=self.window)
            await pipe.execute()

        await self.redis.attempt("dedup reply", store)
        return [None] * len(items)

    async def _unmark(self, claim: Claim, owner: str) -> None:
        assert self.redis is not None
        key = self._mark_key(claim.account, claim.dedup_key)
        await self.redis.attempt(
            "dedup unmark", lambda client: run_script(client, _DELETE_IF_OWNER, [key], [owner])
        )

    async def _marked(self, account: str, dedup_key: str) -> tuple[str, str | None] | None:
        """(state, reply) from the Redis mark, or None (no Redis, no mark, down, unreadable)."""
        if self.redis is None:
            return None
        key = self._mark_key(account, dedup_key)
        raw = await self.redis.attempt("dedup read", lambda client: client.get(key))
        if raw is DOWN or not isinstance(raw, bytes):
            return None
        try:
            state, _, rest = raw.decode().partition(":")
        except UnicodeDecodeError:
            return None
        if state == _HANDLING:
            return ("handling", None)
        if state in ("done", "deferred"):
            return (state, rest)
        return None

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
