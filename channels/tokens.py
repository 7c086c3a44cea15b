"""One access-token holder per platform app for the whole deployment.

The token lives in the database (``channel_tokens``), so every web, worker and scheduler
process on every machine shares it. A refresh is single-flight across processes: the
refresher takes a short lease on the app's row inside a locked transaction
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` write lock, which
``publisher.db`` takes for every transaction), fetches with no transaction open (the
sandbox may share this very database), then writes the token back. Others wait for the
lease and read the result. Tokens are refreshed ahead of expiry; a per-day budget makes
it impossible for any loop to burn the platform's daily token quota.

With ``[redis] url`` set, Redis is a read cache in front of the row: a process that has
no token in memory reads it from Redis (no database round trip), and the refresher
writes each new token there. The single-flight stays the database row lock on purpose:
the row carries the daily budget, the forced-refresh spacing and the lease, which must
stay exact even when Redis is flushed or down, and refreshes are rare (about twelve a
day per app), so a Redis lock would add a second lock and a second failure mode
(a lock outliving its holder) while saving nothing on the hot path, which is the read.
The database stays the source of truth: Redis flushed means one database read (which
puts the token back); Redis down means the database path as before, with one warning.
Cache writes are versioned by ``fetched_at`` (a slow writer never replaces a newer token
with an older one), and a token the platform rejected is removed with a compare-and-delete,
so a newer token written meanwhile survives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from channels.token_models import ChannelToken
from govcast.rediscache import DOWN, SharedRedis, run_script
from publisher.db import Database
from publisher.orm import utcnow
from publisher.outcomes import TransientError

log = logging.getLogger("govcast.channels")

# fetch(force_refresh) -> (access_token, expires_in seconds)
TokenFetch = Callable[[bool], Awaitable[tuple[str, float]]]

# KEYS[1] = the token key; ARGV = value, version, ttl ms. Writes unless a newer version
# (a later fetched_at) is already there.
_PUT_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and tonumber(old['v']) and
      tonumber(old['v']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
# KEYS[1] = the token key; ARGV[1] = the rejected token. Deletes only that token (or an
# unreadable value), never a newer one another process has written meanwhile.
_DROP_IF_STALE = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, old = pcall(cjson.decode, cur)
if ok and type(old) == 'table' and old['t'] ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


@dataclass(frozen=True)
class TokenPolicy:
    """How eagerly and how often a token may be fetched."""

    # Refresh once less than this is left (stable_token hands out a new token only in
    # the last 5 minutes of the old one's life).
    refresh_margin: float = 240.0
    # Never fetch again sooner than this after a fetch, unless a token error forces it.
    min_interval: float = 60.0
    # Fetches per app per day (the platform allows 2,000 /token or 500,000 stable_token
    # calls; a healthy deployment needs ~12). Reaching it means something is looping.
    daily_budget: int = 200
    # force_refresh: the platform allows 20 a day, 30 s apart.
    forced_daily_budget: int = 20
    forced_spacing: float = 30.0
    # How long a refresher holds the lease, and how long others wait for it.
    lease_seconds: float = 20.0
    wait_seconds: float = 25.0
    # A token is not handed out in its last seconds.
    expiry_slack: float = 10.0


class TokenHolder:
    """The shared token of one platform app (WeChat AppID)."""

    def __init__(
        self,
        db: Database,
        *,
        platform: str,
        app_id: str,
        fetch: TokenFetch,
        policy: TokenPolicy | None = None,
        zone: ZoneInfo | None = None,
        clock: Callable[[], datetime] = utcnow,
        redis: SharedRedis | None = None,
    ) -> None:
        self.db = db
        self.redis = redis
        self.platform = platform
        self.app_id = app_id
        self._fetch = fetch
        self.policy = policy or TokenPolicy()
        self.zone = zone or ZoneInfo("Asia/Shanghai")
        self.clock = clock
        self.owner = uuid.uuid4().hex[:16]
        self._memo: tuple[str, datetime, datetime] | None = None  # token, refresh_after, expires
        self._local = asyncio.Lock()  # one refresher per process; the row lock across them

    async def token(self) -> str:
        """A valid token: from memory, else Redis, else the database, else freshly fetched."""
        now = self.clock()
        if self._memo is not None and self._fresh(self._memo[1], self._memo[2], now):
            return self._memo[0]
        cached = await self._cache_get()
        if cached is not None and self._fresh(cached[1], cached[2], now):
            self._memo = cached
            return cached[0]
        async with self.db.sessions() as session:
            row = await self._row(session, lock=False)
        if row is not None and row.access_token and row.expires_at and row.refresh_after:
            if self._fresh(row.refresh_after, row.expires_at, now):
                self._memo = (row.access_token, row.refresh_after, row.expires_at)
                # Redis had nothing usable (flushed, expired, first start): put it back.
                await self._cache_put(row, now)
                return row.access_token
        return await self._refresh(stale=None)

    async def refresh(self, stale: str) -> str:
        """The platform rejected ``stale``: return a newer token (fetching at most once)."""
        self._memo = None
        await self._cache_drop(stale)
        return await self._refresh(stale=stale)

    def forget(self) -> None:
        """Drop the in-memory copy (the database copy stays)."""
        self._memo = None

    # --- internals -------------------------------------------------------------------

    def _fresh(self, refresh_after: datetime, expires_at: datetime, now: datetime) -> bool:
        usable_until = expires_at - timedelta(seconds=self.policy.expiry_slack)
        return now < refresh_after and now < usable_until

    def _usable(self, row: ChannelToken, now: datetime) -> bool:
        return bool(
            row.access_token
            and row.expires_at
            and now < row.expires_at - timedelta(seconds=self.policy.expiry_slack)
        )

    async def _row(self, session: AsyncSession, *, lock: bool) -> ChannelToken | None:
        stmt = select(ChannelToken).where(
            ChannelToken.platform == self.platform, ChannelToken.app_id == self.app_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return (await session.execute(stmt)).scalar_one_or_none()

    async def _locked_row(self, session: AsyncSession) -> ChannelToken:
        row = await self._row(session, lock=True)
        if row is not None:
            return row
        builder = pg_insert if self.db.is_postgresql else sqlite_insert
        await session.execute(
            builder(ChannelToken)
            .values(
                platform=self.platform,
                app_id=self.app_id,
                fetch_day="",
                fetches=0,
                forced=0,
                total_fetches=0,
                updated_at=self.clock(),
            )
            .on_conflict_do_nothing(index_elements=["platform", "app_id"])
        )
        row = await self._row(session, lock=True)
        assert row is not None
        return row

    def _seconds_to_next_day(self, now: datetime) -> float:
        local = now.astimezone(self.zone)
        tomorrow = (local + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
        return max(60.0, (tomorrow - local).total_seconds())

    async def _refresh(self, stale: str | None) -> str:
        async with self._local:
            return await self._refresh_locked(stale)

    async def _refresh_locked(self, stale: str | None) -> str:
        policy = self.policy
        deadline = asyncio.get_running_loop().time() + policy.wait_seconds
        extra = {"platform": self.platform, "app_id": self.app_id}
        while True:
            force = False
            async with self.db.transaction() as session:
                row = await self._locked_row(session)
                now = self.clock()
                if self._usable(row, now) and row.access_token != stale:
                    assert row.access_token and row.expires_at and row.refresh_after
                    # Another process refreshed while we waited, or the token is fresh.
                    if stale is not None or self._fresh(row.refresh_after, row.expires_at, now):
                        self._memo = (row.access_token, row.refresh_after, row.expires_at)
                        found = row
                        break
                leased = (
                    row.refreshing_until is not None
                    and row.refreshing_until > now
                    and row.refreshing_owner != self.owner
                )
                if not leased:
                    day = now.astimezone(self.zone).date().isoformat()
                    if row.fetch_day != day:
                        row.fetch_day, row.fetches, row.forced = day, 0, 0
                    if row.fetches >= policy.daily_budget:
                        if self._usable(row, now) and row.access_token != stale:
                            assert row.access_token
                            return row.access_token
                        log.error("token refresh budget used up", extra=extra)
                        raise TransientError(
                            f"{self.platform} {self.app_id}: today's token refresh budget "
                            f"({policy.daily_budget}) is used up; 今日令牌刷新次数已用完",
                            code="token_budget",
                            retry_after=self._seconds_to_next_day(now),
                        )
                    if stale is not None and row.access_token == stale:
                        spaced = (
                            row.last_forced_at is None
                            or (now - row.last_forced_at).total_seconds() >= policy.forced_spacing
                        )
                        force = spaced and row.forced < policy.forced_daily_budget
                    row.fetches += 1
                    row.total_fetches += 1
                    if force:
                        row.forced += 1
                        row.last_forced_at = now
                    row.refreshing_until = now + timedelta(seconds=policy.lease_seconds)
                    row.refreshing_owner = self.owner
                    row.updated_at = now
            if leased:
                if asyncio.get_running_loop().time() > deadline:
                    raise TransientError(
                        f"{self.platform} {self.app_id}: token refresh by another process "
                        "did not finish in time",
                        code="token_wait",
                    )
                await asyncio.sleep(0.1)
                continue
            return await self._fetch_and_store(force, extra)
        # Outside the transaction: heal the cache in case the refresher's write was lost.
        await self._cache_put(found, self.clock())
        assert found.access_token
        return found.access_token

    async def _fetch_and_store(self, force: bool, extra: dict[str, str]) -> str:
        try:
            token, expires_in = await self._fetch(force)
        except BaseException:
            async with self.db.transaction() as session:
                row = await self._locked_row(session)
                if row.refreshing_owner == self.owner:
                    row.refreshing_until = None
                    row.refreshing_owner = None
            raise
        now = self.clock()
        expires_at = now + timedelta(seconds=max(0.0, expires_in))
        refresh_after = max(
            expires_at - timedelta(seconds=self.policy.refresh_margin),
            now + timedelta(seconds=self.policy.min_interval),
        )
        refresh_after = min(refresh_after, expires_at - timedelta(seconds=self.policy.expiry_slack))
        async with self.db.transaction() as session:
            row = await self._locked_row(session)
            row.access_token = token
            row.expires_at = expires_at
            row.refresh_after = refresh_after
            row.fetched_at = now
            row.refreshing_until = None
            row.refreshing_owner = None
            row.updated_at = now
        self._memo = (token, refresh_after, expires_at)
        await self._cache_put(row, now)
        log.info(
            "access token fetched",
            extra={**extra, "forced": force, "expires_in": int(expires_in)},
        )
        return token

    # --- the Redis read cache (optional) ---------------------------------------------

    def _cache_key(self) -> str:
        assert self.redis is not None
        return self.redis.key("token", self.platform, self.app_id)

    async def _cache_get(self) -> tuple[str, datetime, datetime] | None:
        """(token, refresh_after, expires_at) from Redis, or None (missing, bad, or down)."""
        if self.redis is None:
            return None
        key = self._cache_key()
        raw = await self.redis.attempt("token get", lambda client: client.get(key))
        if raw is DOWN or raw is None:
            return None
        try:
            value: Any = json.loads(raw)
            token, refresh_after, expires = value["t"], value["r"], value["e"]
            if not (isinstance(token, str) and token):
                raise TypeError("token is not a string")
            return (
                token,
                datetime.fromtimestamp(float(refresh_after), UTC),
                datetime.fromtimestamp(float(expires), UTC),
            )
        except (ValueError, TypeError, KeyError, OverflowError):
            # Not ours or corrupted: ignore it; the next write replaces it.
            log.warning(
                "token cache entry unreadable; using the database",
                extra={"platform": self.platform, "app_id": self.app_id},
            )
            return None

    async def _cache_put(self, row: ChannelToken, now: datetime) -> None:
        if self.redis is None:
            return
        if not (row.access_token and row.expires_at and row.refresh_after and row.fetched_at):
            return
        expires, refresh_after = _aware(row.expires_at), _aware(row.refresh_after)
        usable_until = expires - timedelta(seconds=self.policy.expiry_slack)
        ttl_ms = int((usable_until - now).total_seconds() * 1000)
        if ttl_ms <= 0:
            return
        version = int(_aware(row.fetched_at).timestamp() * 1_000_000)
        value = json.dumps(
            {
                "t": row.access_token,
                "r": refresh_after.timestamp(),
                "e": expires.timestamp(),
                "v": version,
            }
        )
        key = self._cache_key()
        await self.redis.attempt(
            "token put",
            lambda client: run_script(
                client, _PUT_IF_NEWER, [key], [value, str(version), str(ttl_ms)]
            ),
        )

    async def _cache_drop(self, stale: str) -> None:
        if self.redis is None:
            return
        key = self._cache_key()
        await self.redis.attempt(
            "token drop", lambda client: run_script(client, _DROP_IF_STALE, [key], [stale])
        )


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they are stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = ["TokenFetch", "TokenHolder", "TokenPolicy"]
