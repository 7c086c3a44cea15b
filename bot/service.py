"""The callback's engine: verify, decrypt, claim once, route within the budget, reply.

Everything here is per application (no globals): :class:`BotService` is created in
``bot/web.py``'s cleanup context and kept under ``bot.web.BOT``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot import deferred, texts, wire
from bot.dedup import Claim, Finish, InboundStore
from bot.handlers import SearchCache, build_fallback, events, fallback
from bot.keywords import RuleCache
from bot.router import Context, Dispatcher, InboundMessage, Reply, Router, TextReply, openid_hash
from govcast.rediscache import SharedRedis
from govcast.settings import Settings, WechatAccountSettings
from publisher.db import Database

log = logging.getLogger("govcast.bot")

SUCCESS = "success"


@dataclass(frozen=True)
class Account:
    """One WeChat account's callback credentials, decoded once."""

    key: str
    mode: str
    token: str
    aes: wire.AESKey | None

    @classmethod
    def from_settings(cls, key: str, acct: WechatAccountSettings) -> Account:
        """Decode the account's settings."""
        aes = None
        if len(acct.encoding_aes_key) == 43:
            aes = wire.AESKey(acct.encoding_aes_key.reveal(), acct.app_id)
        return cls(key=key, mode=acct.mode, token=acct.token.reveal(), aes=aes)


def build_dispatcher(
    settings: Settings,
    cache: RuleCache,
    extra: list[Router],
    searches: SearchCache | None = None,
) -> Dispatcher:
    """Built-in events, then the other packages' routers, then keywords, search, the rest."""
    dispatcher = Dispatcher(apology=texts.get(settings, "apology"))
    dispatcher.include_router(events)
    for router in extra:
        dispatcher.include_router(router)
    searches = searches or SearchCache(settings.bot.search_cache_seconds)
    dispatcher.include_router(build_fallback(cache, searches))
    dispatcher.include_router(fallback)
    return dispatcher


def package_routers() -> list[Router]:
    """Routers of other packages, listed explicitly (a missing module is skipped)."""
    import importlib

    found: list[Router] = []
    for name in ("bot.cases.handlers",):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        router = getattr(module, "router", None)
        if isinstance(router, Router):
            found.append(router)
    return found


class BotService:
    """One application's bot: accounts, dedup store, dispatcher, deferred deliveries."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        dispatcher: Dispatcher | None = None,
        app: Any = None,
        api_for: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
        redis: SharedRedis | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.app = app
        self.clock = clock
        self.accounts: Mapping[str, Account] = {
            key: Account.from_settings(key, acct) for key, acct in settings.wechat.accounts.items()
        }
        # Redis marks outlive every replay the timestamp check lets through (it allows
        # +/- the window around the push's own CreateTime).
        self.store = InboundStore(
            db, redis=redis, window_seconds=2 * settings.bot.timestamp_window_seconds
        )
        self.rules = RuleCache(db, settings.bot.keyword_cache_seconds)
        self.dispatcher = dispatcher or build_dispatcher(settings, self.rules, package_routers())
        self.api_for = api_for
        self.background: set[asyncio.Task[Any]] = set()

    # --- the request ------------------------------------------------------------------------

    async def handle(self, msg: InboundMessage, deadline: float) -> str:
        """The reply XML (plain) for one verified message, or ``success``; never raises."""
        loop = asyncio.get_running_loop()
        key = msg.dedup_key
        try:
            claimed = await self.store.claim(
                Claim(msg.account, key, msg.openid, msg.msg_type, int(self.clock()))
            )
        except Exception:
            log.exception("bot: dedup claim failed", extra={"account": msg.account})
            return wire.render_reply(TextReply(self.dispatcher.apology), msg, int(self.clock()))
        if not claimed:
            wait = min(self.settings.bot.retry_wait_seconds, max(0.0, deadline - loop.time()))
            try:
                stored = await self.store.wait_reply(msg.account, key, wait)
            except Exception:
                log.exception("bot: dedup lookup failed", extra={"account": msg.account})
                stored = None
            log.info(
                "bot: repeated push answered from its record",
                extra={"account": msg.account, "openid_hash": openid_hash(msg.openid)},
            )
            return stored or SUCCESS
        ctx = Context(msg, db=self.db, settings=self.settings, app=self.app)
        task = loop.create_task(self.dispatcher.feed(ctx))
        remaining = deadline - loop.time()
        if remaining > 0:
            done, _ = await asyncio.wait({task}, timeout=remaining)
        else:
            done = set()
        if task in done:
            reply = task.result()
            xml = SUCCESS if reply is None else wire.render_reply(reply, msg, int(self.clock()))
            await self._finish(Finish(msg.account, key, "done", xml))
            return xml
        # Over budget: WeChat gets `success` now; the reply follows by customer service.
        self.background.add(task)
        task.add_done_callback(lambda t: self._late(t, msg))
        await self._finish(Finish(msg.account, key, "deferred", SUCCESS))
        log.info(
            "bot: reply deferred past the budget",
            extra={"account": msg.account, "openid_hash": openid_hash(msg.openid)},
        )
        return SUCCESS

    async def _finish(self, finish: Finish) -> None:
        try:
            await self.store.finish(finish)
        except Exception:
            # The citizen still gets the reply; a retry would then answer `success`.
            log.exception("bot: storing the reply failed", extra={"account": finish.account})

    def _late(self, task: asyncio.Task[Reply | None], msg: InboundMessage) -> None:
        self.background.discard(task)
        if task.cancelled():
            return
        reply = task.result()  # feed() never raises
        if reply is None:
            return
        job = asyncio.get_running_loop().create_task(self._deliver_late(msg, reply))
        self.background.add(job)
        job.add_done_callback(self.background.discard)

    async def _deliver_late(self, msg: InboundMessage, reply: Reply) -> None:
        try:
            row_id = await deferred.record(
                self.db,
                account=msg.account,
                dedup_key=msg.dedup_key,
                openid=msg.openid,
                reply=wire.reply_to_json(reply) or {},
                last_inbound_at=datetime.fromtimestamp(msg.create_time, UTC),
            )
            if row_id is not None:
                await deferred.deliver(self, row_id)
        except Exception:
            log.exception("bot: deferred reply failed", extra={"account": msg.account})

    async def close(self) -> None:
        """Let late handlers finish briefly, then cancel them."""
        if self.background:
            _, pending = await asyncio.wait(list(self.background), timeout=5)
            for task in pending:
                task.cancel()
