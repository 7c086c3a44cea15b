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

On PostgreSQL each group-commit stage keeps one pooled connection while the process runs
and sends its statement alone in autocommit mode: one round trip per batch. Through a
fresh checkout every batch cost six (the pool's pre-ping is itself BEGIN, ``;``,
ROLLBACK, then BEGIN, the statement, COMMIT). A lane whose connection the server closed
(restart, idle timeout) notices before sending and takes a fresh one from the pool;
one that breaks mid-statement is dropped (the batch fails as it always could; the
idempotent reply store is sent once more on a fresh connection).

The claim also returns, for each won push, when its sender's unfinished intake
conversation (``case_intake_conversations``) was last updated: the cases router's filter
needs exactly that for every text message, and reading it in the claim's statement spares
a round trip and a batching stage per message (see ``bot/cases/handlers.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from govcast.rediscache import DOWN, SharedRedis, run_script
from publisher.batching import GroupCommit
from publisher.db import Database
from publisher.liveness import LOCK_CLASS, Liveness

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("govcast.bot")

# A deferred push whose owner looks dead is taken over only this many seconds after its
# claim (see ``InboundStore.orphans``).
ORPHAN_AGE = 20
_SUCCESS = "success"

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
class Claimed:
    """A claim's outcome; ``conversation`` is known only where ``prefetched``."""

    won: bool
    # When the sender's unfinished intake conversation was last updated (None: none).
    conversation: datetime | None = None
    prefetched: bool = False


# Where BotService leaves a prefetched ``Claimed.conversation`` for the router's filters.
CONVERSATION_KEY = "dedup.conversation_updated_at"


@dataclass(frozen=True)
class Finish:
    """The outcome of a claimed push."""

    account: str
    dedup_key: str
    state: str  # done | deferred
    reply: str


@dataclass(frozen=True)
class Deferral:
    """A push answered ``success`` past the budget, with its parsed fields (JSON)."""

    account: str
    dedup_key: str
    message: str
    received_ts: int


class InboundStore:
    """Claims and stored replies in ``bot_inbound``, group-committed; Redis optionally first."""

    def __init__(
        self, db: Database, *, redis: SharedRedis | None = None, window_seconds: float = 600.0
    ) -> None:
        self.db = db
        self.pg = db.is_postgresql
        self.redis = redis
        self.window = max(1, math.ceil(window_seconds))
        # Who handles the pushes this store claims: a retry that finds one of them still
        # "handling" takes it over only when this process is dead (see ``take_over``).
        self.owner = _owner_name(self.pg)
        self.liveness = Liveness(db, self.owner) if self.pg else None
        self._claim_lane = _Lane(db.engine) if self.pg else None
        self._finish_lane = _Lane(db.engine) if self.pg else None
        self._defer_lane = _Lane(db.engine) if self.pg else None
        self._claims: GroupCommit[Claim, Claimed] = GroupCommit(self._claim_batch)
        self._finishes: GroupCommit[Finish, None] = GroupCommit(self._finish_batch)
        self._defers: GroupCommit[Deferral, None] = GroupCommit(self._defer_batch)
        self._marks: GroupCommit[Claim, str | None] = GroupCommit(self._mark_batch)
        self._replies: GroupCommit[Finish, None] = GroupCommit(self._reply_batch)

    async def claim(self, claim: Claim) -> bool:
        """True if this process owns the push; False if it was seen before."""
        return (await self.claim_push(claim)).won

    async def claim_push(self, claim: Claim) -> Claimed:
        """Claim the push; with PostgreSQL also its sender's conversation state."""
        if self.liveness is not None and not self.liveness.held:
            await self.liveness.ensure()
        owner: str | None = None
        if self.redis is not None:
            owner = await self._marks.submit(claim)
            if owner == "":
                return Claimed(False)  # Redis has seen it: a duplicate, database untouched
        try:
            claimed = await self._claims.submit(claim)
        except BaseException:
            # Let WeChat's retry try again rather than be turned away by our mark.
            if owner:
                await self._unmark(claim, owner)
            raise
        if not claimed.won and owner:
            # Redis had forgotten the push (restart, flush): the database remembered.
            # Drop our mark so the retry's wait reads the stored reply from the database.
            await self._unmark(claim, owner)
        return claimed

    async def finish(self, finish: Finish) -> None:
        """Store the reply of a claimed push (in Redis too, for retries to read)."""
        if self.redis is not None:
            # First, so a retry gets the reply even if the database write below fails.
            await self._replies.submit(finish)
        await self._finishes.submit(finish)

    async def defer(self, account: str, dedup_key: str, message: str, received_ts: int) -> None:
        """Record a push answered ``success`` past the budget, and keep its message (JSON).

        Group-committed like the claims: under overload most pushes overrun the budget at
        once, and a pooled connection per push would starve the handlers themselves.
        """
        if self.redis is not None:
            await self._replies.submit(Finish(account, dedup_key, "deferred", _SUCCESS))
        await self._defers.submit(Deferral(account, dedup_key, message, received_ts))

    async def orphans(self, now: int, limit: int = 20) -> list[tuple[str, str, str]]:
        """Take over deferred pushes whose owner died: (account, dedup_key, message) each.

        Only pushes that arrived ``ORPHAN_AGE`` seconds or more ago: a live owner whose
        lock connection broke (a database restart) takes its lock back within that time.
        """
        before = now - ORPHAN_AGE
        if self.pg:
            if self.liveness is None or not await self.liveness.ensure():
                return []  # without our own lock, a taker could itself look dead
            async with self.db.engine.begin() as conn:
                result = await conn.exec_driver_sql(_PG_ORPHANS, (self.owner, before, limit))
                rows: list[Any] = list(result.all())
                return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
        taken: list[tuple[str, str, str]] = []
        async with self.db.engine.begin() as conn:
            result = await conn.exec_driver_sql(
                "SELECT id, account, dedup_key, owner, message FROM bot_deferred_pushes"
                " WHERE received_ts <= ? AND owner <> ? ORDER BY received_ts LIMIT ?",
                (before, self.owner, 4 * limit),
            )
            found: list[Any] = list(result.all())
            for row_id, account, dedup_key, owner, message in found:
                if len(taken) >= limit or _alive(str(owner)):
                    continue
                moved = await conn.exec_driver_sql(
                    "UPDATE bot_deferred_pushes SET owner = ? WHERE id = ? AND owner = ?",
                    (self.owner, row_id, owner),
                )
                if _rowcount(moved) == 1:
                    taken.append((str(account), str(dedup_key), str(message)))
        return taken

    @property
    def statements(self) -> int:
        """Statements this store sent on its kept PostgreSQL connections (for tests)."""
        lanes = (self._claim_lane, self._finish_lane, self._defer_lane)
        return sum(lane.statements for lane in lanes if lane)

    async def close(self, grace: float = 5.0) -> None:
        """Let batches in flight finish, then give the kept connections back to the pool."""
        for stage in (self._claims, self._finishes, self._defers):
            await stage.settle(grace)
        for lane in (self._claim_lane, self._finish_lane, self._defer_lane):
            if lane is not None:
                await lane.close()
        if self.liveness is not None:
            await self.liveness.close()

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
        reply, _ = await self._wait(account, dedup_key, wait, poll, take_over=False)
        return reply

    async def wait_or_take_over(
        self, account: str, dedup_key: str, wait: float, poll: float = 0.05
    ) -> tuple[str | None, bool]:
        """Like ``wait_reply``; or ``(None, True)``: its claimant died, the push is ours now.

        A web process killed while handling a push leaves it "handling" for good, and
        WeChat's retry (sent at once when the connection breaks) would otherwise wait
        for a reply that never comes and answer ``success``: the citizen gets nothing.
        """
        return await self._wait(account, dedup_key, wait, poll, take_over=True)

    async def _wait(
        self, account: str, dedup_key: str, wait: float, poll: float, *, take_over: bool
    ) -> tuple[str | None, bool]:
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        while True:
            found = await self._marked(account, dedup_key)
            from_redis = found is not None
            if found is None:
                found = await self.lookup(account, dedup_key)
            if found is not None and found[0] != "handling":
                return found[1], False
            if take_over and found is not None and await self.take_over(account, dedup_key):
                return None, True
            if loop.time() + poll > until:
                if from_redis:
                    # A handling mark may outlive its claimant: the database has the last word.
                    found = await self.lookup(account, dedup_key)
                    if found is not None and found[0] != "handling":
                        return found[1], False
                return None, False
            await asyncio.sleep(poll)

    async def take_over(self, account: str, dedup_key: str) -> bool:
        """Make this process the owner of a push whose claimant died; True if it did."""
        if self.pg:
            if self.liveness is None or not await self.liveness.ensure():
                return False  # without our own lock, a taker could itself look dead
            async with self.db.engine.begin() as conn:
                result = await conn.exec_driver_sql(_PG_TAKE_OVER, (account, dedup_key, self.owner))
                return result.first() is not None
        async with self.db.engine.begin() as conn:
            result = await conn.exec_driver_sql(
                "SELECT owner FROM bot_inbound WHERE account = ? AND dedup_key = ?"
                " AND state = 'handling'",
                (account, dedup_key),
            )
            row: Any = result.first()
            if row is None or row[0] is None or row[0] == self.owner or _alive(str(row[0])):
                return False
            taken = await conn.exec_driver_sql(
                "UPDATE bot_inbound SET owner = ? WHERE account = ? AND dedup_key = ?"
                " AND state = 'handling' AND owner = ?",
                (self.owner, account, dedup_key, row[0]),
            )
            return _rowcount(taken) == 1

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

    async def _claim_batch(self, items: list[Claim]) -> list[Claimed]:
        # Two copies of one push in one batch: only the first may win.
        first: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            first.setdefault((item.account, item.dedup_key), i)
        unique = [items[i] for i in first.values()]
        if self._claim_lane is not None:
            found = await self._claim_lane.fetch(
                _PG_CLAIM,
                (
                    [c.account for c in unique],
                    [c.dedup_key for c in unique],
                    [c.openid for c in unique],
                    [c.msg_type for c in unique],
                    [c.received_ts for c in unique],
                    self.owner,
                ),
            )
            won = {(str(r[0]), str(r[1])): r[2] for r in found}
            keys = [(item.account, item.dedup_key) for item in items]
            return [
                Claimed(True, won[key], prefetched=True)
                if first[key] == i and key in won
                else Claimed(False)
                for i, key in enumerate(keys)
            ]
        values = ",".join(["(?, ?, ?, ?, ?, 'handling', ?)"] * len(unique))
        params: list[object] = []
        for c in unique:
            params.extend((c.account, c.dedup_key, c.openid, c.msg_type, c.received_ts))
            params.append(self.owner)
        async with self.db.engine.begin() as conn:
            result = await conn.exec_driver_sql(
                "INSERT INTO bot_inbound (account, dedup_key, openid, msg_type, received_ts,"
                f" state, owner) VALUES {values} ON CONFLICT (account, dedup_key) DO NOTHING"
                " RETURNING account, dedup_key",
                tuple(params),
            )
            rows: list[Any] = list(result.all())
        won_keys = {(str(r[0]), str(r[1])) for r in rows}
        keys = [(item.account, item.dedup_key) for item in items]
        return [Claimed(first[key] == i and key in won_keys) for i, key in enumerate(keys)]

    async def _finish_batch(self, items: Sequence[Finish]) -> list[None]:
        if self._finish_lane is not None:
            # Idempotent: safe to send again on a fresh connection if the kept one died.
            await self._finish_lane.execute(
                _PG_FINISH,
                (
                    [f.account for f in items],
                    [f.dedup_key for f in items],
                    [f.state for f in items],
                    [f.reply for f in items],
                ),
                retry=True,
            )
            return [None] * len(items)
        async with self.db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "UPDATE bot_inbound SET state = ?, reply = ? WHERE account = ? AND dedup_key = ?",
                [(f.state, f.reply, f.account, f.dedup_key) for f in items],
            )
        return [None] * len(items)

    async def _defer_batch(self, items: Sequence[Deferral]) -> list[None]:
        if self._defer_lane is not None:
            # Idempotent: safe to send again on a fresh connection if the kept one died.
            await self._defer_lane.execute(
                _PG_DEFER,
                (
                    [d.account for d in items],
                    [d.dedup_key for d in items],
                    [d.message for d in items],
                    [d.received_ts for d in items],
                    self.owner,
                ),
                retry=True,
            )
            return [None] * len(items)
        async with self.db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "UPDATE bot_inbound SET state = 'deferred', reply = ?"
                " WHERE account = ? AND dedup_key = ?",
                [(_SUCCESS, d.account, d.dedup_key) for d in items],
            )
            await conn.exec_driver_sql(
                "INSERT INTO bot_deferred_pushes (account, dedup_key, owner, message,"
                " received_ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, dedup_key) DO NOTHING",
                [(d.account, d.dedup_key, self.owner, d.message, d.received_ts) for d in items],
            )
        return [None] * len(items)


# The claim, and for each won push its sender's unfinished conversation (an emptied state
# is a finished one; the row is kept). One statement, one snapshot, autocommit.
_PG_CLAIM = """
WITH u AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
    AS u(a, k, o, t, ts)
), won AS (
  INSERT INTO bot_inbound (account, dedup_key, openid, msg_type, received_ts, state, owner)
  SELECT a, k, o, t, ts, 'handling', $6::text FROM u
  ON CONFLICT (account, dedup_key) DO NOTHING
  RETURNING account, dedup_key, openid
)
SELECT w.account, w.dedup_key, c.updated_at
FROM won AS w LEFT JOIN case_intake_conversations AS c
  ON c.account = w.account AND c.openid = w.openid
  AND jsonb_typeof(c.state) = 'object' AND c.state <> '{}'::jsonb
"""

# The claimant's lock (publisher/liveness.py) is free only when its process is gone; the
# shared try-lock conflicts with nothing else and ends with this statement's transaction.
# A NULL owner (claimed before owners were recorded) is never taken over.
_PG_TAKE_OVER = f"""
UPDATE bot_inbound SET owner = $3
WHERE account = $1 AND dedup_key = $2 AND state = 'handling'
  AND owner IS NOT NULL AND owner <> $3
  AND pg_try_advisory_xact_lock_shared({LOCK_CLASS}, hashtext(owner))
RETURNING 1
"""


# Deferred pushes of dead owners, oldest first; rows another taker holds are skipped
# (SKIP LOCKED), and the try-lock, as in _PG_TAKE_OVER, is free only when the owner died.
_PG_ORPHANS = f"""
UPDATE bot_deferred_pushes AS d SET owner = $1
FROM (
  SELECT id FROM bot_deferred_pushes
  WHERE received_ts <= $2 AND owner <> $1
    AND pg_try_advisory_xact_lock_shared({LOCK_CLASS}, hashtext(owner))
  ORDER BY received_ts
  LIMIT $3
  FOR UPDATE SKIP LOCKED
) AS o
WHERE d.id = o.id
RETURNING d.account, d.dedup_key, d.message
"""


def _owner_name(pg: bool) -> str:
    # PostgreSQL: a unique name whose advisory lock proves life. SQLite: one machine, so
    # host and pid tell whether the claimant still runs.
    host, pid = socket.gethostname()[:40], os.getpid()
    return f"bot:{host}:{pid}:{uuid.uuid4().hex[:8]}" if pg else f"{host}:{pid}"


def _alive(owner: str) -> bool:
    """Whether a SQLite claimant (``host:pid``) still runs; other hosts count as alive."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname()[:40] or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# Mark the pushes deferred and keep their messages: one statement (a data-modifying CTE
# runs to completion whether or not the outer statement reads it), atomic in autocommit.
_PG_DEFER = f"""
WITH u AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(a, k, m, ts)
), marked AS (
  UPDATE bot_inbound AS b SET state = 'deferred', reply = '{_SUCCESS}'
  FROM u WHERE b.account = u.a AND b.dedup_key = u.k
  RETURNING 1
)
INSERT INTO bot_deferred_pushes (account, dedup_key, owner, message, received_ts)
SELECT a, k, $5::text, m, ts FROM u
ON CONFLICT (account, dedup_key) DO NOTHING
"""

_PG_FINISH = """
UPDATE bot_inbound AS b SET state = u.s, reply = u.r
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(a, k, s, r)
WHERE b.account = u.a AND b.dedup_key = u.k
"""


class _Lane:
    """One pooled PostgreSQL connection kept for one group-commit stage.

    The stage sends one batch at a time, so the lane is never used concurrently; the lock
    only guards against misuse. Statements go to the asyncpg connection directly (the
    SQLAlchemy cursor layer cost a third of a batch's CPU), outside any transaction
    (autocommit): each is atomic on its own. ``statements`` counts what was sent.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.statements = 0
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._lock = asyncio.Lock()

    async def fetch(self, sql: str, args: Sequence[object]) -> list[Any]:
        """Rows of one statement."""
        async with self._lock:
            driver = await self._connection()
            self.statements += 1
            try:
                return list(await driver.fetch(sql, *args))
            except BaseException as exc:
                await self._after_failure(exc)
                raise

    async def execute(self, sql: str, args: Sequence[object], *, retry: bool = False) -> None:
        """Run one statement; ``retry``: once more on a fresh connection if this one died."""
        async with self._lock:
            for attempt in (1, 2):
                driver = await self._connection()
                self.statements += 1
                try:
                    await driver.execute(sql, *args)
                    return
                except BaseException as exc:
                    dead = await self._after_failure(exc)
                    if not (retry and dead and attempt == 1 and isinstance(exc, Exception)):
                        raise

    async def close(self) -> None:
        """Give the connection back to the pool (as it was taken from it)."""
        async with self._lock:
            conn, driver = self._conn, self._driver
            self._conn, self._driver = None, None
            if conn is None:
                return
            try:
                if not driver.is_closed():
                    await driver.execute("RESET plan_cache_mode")
            except Exception:  # closing anyway; a broken connection is discarded below
                await conn.invalidate()
            await conn.close()

    async def _connection(self) -> Any:
        if self._driver is not None and self._driver.is_closed():
            # The server closed it while idle (restart, timeout): nothing was sent on it.
            await self._drop()
        if self._driver is None:
            conn = await self.engine.connect()  # the pool's pre-ping vouches for it
            try:
                driver: Any = (await conn.get_raw_connection()).driver_connection
                # Plan each batch for its own table: a generic plan cached while the table
                # was small (fresh install, after a purge) stays a sequential scan for the
                # connection's life, and every batch then costs more as the table grows
                # (measured: the bench's throughput halved within 30,000 messages).
                await driver.execute("SET plan_cache_mode = force_custom_plan")
                self._driver = driver
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._driver

    async def _after_failure(self, exc: BaseException) -> bool:
        """Drop the connection unless it is known to be fine; True if it had died."""
        dead = self._driver is None or bool(self._driver.is_closed())
        if not dead and isinstance(exc, asyncpg.PostgresError):
            return False  # the server refused the statement; the connection is fine
        await self._drop()
        return dead

    async def _drop(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except Exception:  # already broken: nothing more to give back
                log.debug("bot: dropping a dedup connection failed", exc_info=True)
