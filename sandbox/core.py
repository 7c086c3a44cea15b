"""The sandbox's shared state object, its AppKeys, quota counters and id helpers."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from govcast.settings import Settings, WechatAccountSettings, WeiboAccountSettings
from publisher.db import Database
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.models import SandboxCounter

# WeChat's quota days and months turn over at midnight Beijing time.
BEIJING = ZoneInfo("Asia/Shanghai")
UNAVAILABLE = "该公众号暂时无法提供服务"


@dataclass
class Sandbox:
    """Everything the sandbox handlers share: settings, database, clock, faults."""

    settings: Settings
    db: Database
    clock: Clock
    faults: Faults
    http: aiohttp.ClientSession | None = None
    callback_timeout: float = 5.0
    # Set when the listening address is only known after start-up (tests, port 0).
    origin_override: str = ""
    # Deterministic follower lists, computed once per account.
    _followers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _follower_sets: dict[str, frozenset[str]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    # --- accounts --------------------------------------------------------------------

    def wechat_account(self, key: str) -> WechatAccountSettings | None:
        """The WeChat account configured under ``key``."""
        return self.settings.wechat.accounts.get(key)

    def wechat_by_appid(self, app_id: str) -> str | None:
        """The account key whose app_id is ``app_id``."""
        for key, account in self.settings.wechat.accounts.items():
            if account.app_id == app_id:
                return key
        return None

    def weibo_by_token(self, token: str) -> str | None:
        """The Weibo account key whose access_token is ``token``."""
        for key, account in self.settings.weibo.accounts.items():
            if account.access_token and secrets.compare_digest(
                account.access_token.reveal().encode(), token.encode()
            ):
                return key
        return None

    def weibo_account(self, key: str) -> WeiboAccountSettings:
        """The Weibo account configured under ``key``."""
        return self.settings.weibo.accounts[key]

    def is_subscription(self, key: str) -> bool:
        """Whether the WeChat account is a subscription account (mass send 1/day)."""
        account = self.wechat_account(key)
        return key in self.settings.sandbox.subscription_accounts or (
            account is not None and account.account_type == "subscription"
        )

    def is_verified(self, key: str) -> bool:
        """Whether the WeChat account is a verified organisation account."""
        return key not in self.settings.sandbox.unverified_accounts

    def has_comments(self, key: str) -> bool:
        """Whether the WeChat account has the comment (留言) privilege."""
        return key not in self.settings.sandbox.no_comment_accounts

    def original_id(self, key: str) -> str:
        """The account's gh_ original id (ToUserName of pushes)."""
        account = self.wechat_account(key)
        app_id = account.app_id if account else key
        return "gh_" + hashlib.sha256(app_id.encode()).hexdigest()[:12]

    def public_origin(self) -> str:
        """The origin of this server (callbacks, article URLs in events)."""
        if self.origin_override:
            return self.origin_override.rstrip("/")
        base = self.settings.sandbox.callback_base_url.rstrip("/")
        if base:
            return base
        server = self.settings.server
        wildcard = server.host in ("0.0.0.0", "::", "")  # noqa: S104 (a bind-all address)
        host = "127.0.0.1" if wildcard else server.host
        return f"http://{host}:{server.port}"

    def callback_url(self, key: str) -> str:
        """Where WeChat pushes this account's messages and events."""
        return f"{self.public_origin()}/wechat/{key}"

    # --- followers -------------------------------------------------------------------

    def followers(self, key: str) -> tuple[str, ...]:
        """The account's followers' OpenIDs, generated from the sandbox seed."""
        found = self._followers.get(key)
        if found is None:
            found = tuple(
                follower_openid(self.settings.sandbox.seed, key, i)
                for i in range(max(self.settings.sandbox.followers, 1))
            )
            self._followers[key] = found
            self._follower_sets[key] = frozenset(found)
        return found

    def is_follower(self, key: str, openid: str) -> bool:
        """Whether ``openid`` follows the account."""
        self.followers(key)
        return openid in self._follower_sets[key]

    def spawn(self, coro: Any) -> None:
        """Run a background coroutine, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


SANDBOX = web.AppKey("sandbox", Sandbox)


def follower_openid(seed: int, account: str, index: int) -> str:
    """The deterministic 28-character OpenID of follower ``index`` of ``account``."""
    digest = hashlib.sha256(f"{seed}:{account}:{index}".encode()).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "o" + "".join(alphabet[b % 64] for b in digest[:27])


def new_id(digits: int = 19) -> str:
    """A random numeric id (publish_id, msg_id, msg_data_id)."""
    return str(secrets.randbelow(9 * 10 ** (digits - 1)) + 10 ** (digits - 1))


def new_media_id() -> str:
    """A random media_id in WeChat's shape."""
    return secrets.token_urlsafe(48)[:64]


def day_key(now: datetime) -> str:
    """The quota day (Beijing time)."""
    return now.astimezone(BEIJING).strftime("%Y-%m-%d")


def month_key(now: datetime) -> str:
    """The quota month (Beijing time)."""
    return now.astimezone(BEIJING).strftime("%Y-%m")


def minute_key(now: datetime) -> str:
    """A clock minute (WeChat's per-minute call quotas, 45011)."""
    return now.astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M")


def hour_key(now: datetime) -> str:
    """A clock hour (for per-hour limits counted by sliding window elsewhere)."""
    return now.astimezone(BEIJING).strftime("%Y-%m-%dT%H")


async def take_quota(
    session: AsyncSession,
    scope: str,
    name: str,
    period: str,
    limit: int,
    now: datetime,
    *,
    min_gap: timedelta | None = None,
) -> bool:
    """Count one call against (scope, name, period); False when the limit is reached."""
    refused = await take_quota_or_why(session, scope, name, period, limit, now, min_gap=min_gap)
    return refused is None


async def take_quota_or_why(
    session: AsyncSession,
    scope: str,
    name: str,
    period: str,
    limit: int,
    now: datetime,
    *,
    min_gap: timedelta | None = None,
) -> Literal["limit", "gap"] | None:
    """Count one call; None when taken, else why not: the period's limit or the min gap."""
    # Create the counter if missing without a race: two first calls of a period at once
    # (two processes) would otherwise both insert it and one would fail on the unique key.
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(SandboxCounter)
        .values(scope=scope, name=name, period=period, count=0)
        .on_conflict_do_nothing(index_elements=["scope", "name", "period"])
    )
    stmt = select(SandboxCounter).where(
        SandboxCounter.scope == scope,
        SandboxCounter.name == name,
        SandboxCounter.period == period,
    )
    counter = (await session.execute(stmt.with_for_update())).scalar_one()
    if counter.count >= limit:
        return "limit"
    if min_gap is not None and counter.last_at is not None and now - counter.last_at < min_gap:
        return "gap"
    counter.count += 1
    counter.last_at = now
    await session.flush()
    return None


async def quota_used(session: AsyncSession, scope: str, name: str, period: str) -> int:
    """How much of (scope, name, period) is used."""
    stmt = select(SandboxCounter.count).where(
        SandboxCounter.scope == scope,
        SandboxCounter.name == name,
        SandboxCounter.period == period,
    )
    return int((await session.execute(stmt)).scalar_one_or_none() or 0)
