"""The callback's engine: verify, decrypt, claim once, route within the budget, reply.

Everything here is per application (no globals): :class:`BotService` is created in
``bot/web.py``'s cleanup context and kept under ``bot.web.BOT``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from bot import deferred, texts, wire
from bot.dedup import CONVERSATION_KEY, Claim, Claimed, Finish, InboundStore
from bot.handlers import SearchCache, build_fallback, events, fallback
from bot.keywords import RuleCache
from bot.router import Context, Dispatcher, InboundMessage, Reply, Router, TextReply, openid_hash
from govcast.rediscache import SharedRedis
from govcast.settings import Settings, WechatAccountSettings
from publisher.db import Database

log = logging.getLogger("govcast.bot")

SUCCESS = "success"
# Tries at recording a late reply (0.5 s, 1 s, 2 s, ... apart) before giving up on it.
_RECORD_TRIES = 6
T = TypeVar("T")


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


def _start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coro`` now up to its first real suspension; a task carries on from there.

    A keyword or cached search reply never waits on anything once the push is claimed, so
    it finishes here without a task, a loop turn or a timer (Python 3.12's eager tasks do
    the same). A handler that does wait continues in a task, under the reply budget.
    """
    loop = asyncio.get_running_loop()
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        return failed
    return loop.create_task(_carry_on(coro, yielded))


async def _carry_on(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    # Drive the coroutine as a Task would: wait for what it yielded, then resume it; the
    # awaited future's outcome (or its cancellation) reaches it through its own await.
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)  # a bare yield: give the loop one turn
            else:
                yielded._asyncio_future_blocking = False
                await asyncio.wait((yielded,))
        except asyncio.CancelledError as exc:
            # Cancelled while waiting: cancel what it waits for, as a Task would.
            if yielded is not None:
                yielded.cancel()
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return cast(T, stop.value)
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return cast(T, stop.value)


async def _within(task: asyncio.Future[Any], deadline: float) -> bool:
    """Wait for ``task`` until the loop time ``deadline``; True if it finished.

    The task is never cancelled. Lighter than ``asyncio.wait`` (no sets, no generator of
    done callbacks), which this runs once per message.
    """
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    if deadline <= loop.time():
        return False
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_at(deadline, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _message_json(msg: InboundMessage) -> str:
    """The push's parsed fields as kept for re-handling (``wire.to_message`` reads them)."""
    return json.dumps(dict(msg.fields), ensure_ascii=False, default=str)


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
        self.background: set[asyncio.Future[Any]] = set()

    # --- the request ------------------------------------------------------------------------

    async def handle(self, msg: InboundMessage, deadline: float) -> str:
        """The reply XML (plain) for one verified message, or ``success``; never raises."""
        loop = asyncio.get_running_loop()
        key = msg.dedup_key
        try:
            claimed = await self.store.claim_push(
                Claim(msg.account, key, msg.openid, msg.msg_type, int(self.clock()))
            )
        except Exception:
            log.exception("bot: dedup claim failed", extra={"account": msg.account})
            return wire.render_reply(TextReply(self.dispatcher.apology), msg, int(self.clock()))
        if not claimed.won:
            wait = min(self.settings.bot.retry_wait_seconds, max(0.0, deadline - loop.time()))
            try:
                stored, taken = await self.store.wait_or_take_over(msg.account, key, wait)
            except Exception:
                log.exception("bot: dedup lookup failed", extra={"account": msg.account})
                stored, taken = None, False
            if not taken:
                log.info(
                    "bot: repeated push answered from its record",
                    extra={"account": msg.account, "openid_hash": openid_hash(msg.openid)},
                )
                return stored or SUCCESS
            # The process that claimed it died before replying: this retry handles it.
            log.warning(
                "bot: took over a push whose claimant died",
                extra={"account": msg.account, "openid_hash": openid_hash(msg.openid)},
            )
            claimed = Claimed(True)
        ctx = Context(msg, db=self.db, settings=self.settings, app=self.app)
        if claimed.prefetched:
            ctx.data[CONVERSATION_KEY] = claimed.conversation
        task = _start_eagerly(self.dispatcher.feed(ctx))
        if await _within(task, deadline):
            reply = task.result()
            xml = SUCCESS if reply is None else wire.render_reply(reply, msg, int(self.clock()))
            await self._finish(Finish(msg.account, key, "done", xml))
            return xml
        # Over budget: WeChat gets `success` now; the reply follows by customer service.
        # The push is kept with its message: if this process dies before the late reply
        # is recorded, another one handles it again (``recover``).
        self.background.add(task)
        try:
            await self.store.defer(msg.account, key, _message_json(msg), int(self.clock()))
        except Exception:
            # The handler goes on here; only a crash before its reply would now lose it.
            log.exception("bot: recording a deferred push failed", extra={"account": msg.account})
        # Only now: a late reply recorded before the push is marked deferred would leave
        # it deferred for good, to be handled again once this process ends.
        task.add_done_callback(lambda t: self._late(t, msg))
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

    def _late(self, task: asyncio.Future[Reply | None], msg: InboundMessage) -> None:
        self.background.discard(task)
        if task.cancelled():
            return  # shutting down: the push stays deferred and another process takes it
        reply = task.result()  # feed() never raises
        job = asyncio.get_running_loop().create_task(self._deliver_late(msg, reply))
        self.background.add(job)
        job.add_done_callback(self.background.discard)

    async def _deliver_late(self, msg: InboundMessage, reply: Reply | None) -> None:
        # The reply exists only in this process until recorded: a database that is busy
        # for a moment (a full pool under overload) must not lose it, so try again.
        for attempt in range(_RECORD_TRIES):
            try:
                row_id = await deferred.record(
                    self.db,
                    account=msg.account,
                    dedup_key=msg.dedup_key,
                    openid=msg.openid,
                    reply=None if reply is None else wire.reply_to_json(reply) or {},
                    last_inbound_at=datetime.fromtimestamp(msg.create_time, UTC),
                )
                break
            except Exception:
                if attempt == _RECORD_TRIES - 1:
                    log.exception("bot: deferred reply failed", extra={"account": msg.account})
                    return
                log.warning(
                    "bot: recording a late reply failed; trying again",
                    extra={"account": msg.account},
                    exc_info=True,
                )
                await asyncio.sleep(0.5 * 2**attempt)
        if row_id is None:
            return
        try:
            await deferred.deliver(self, row_id)
        except Exception:
            # Recorded: the scheduler's tick sends it.
            log.exception("bot: deferred reply failed", extra={"account": msg.account})

    async def recover(self, limit: int = 50, rounds: int = 20) -> int:
        """Tick: handle again the deferred pushes whose process died; how many it took.

        Their citizens were answered ``success``; the reply follows by customer service.
        A handler's own writes are atomic with its conversation step (a case is created
        with the step that asks for it), so running it again creates nothing twice. A
        killed web process may leave dozens at once: each batch is handled concurrently,
        and the tick takes batches until none is left (or ``rounds`` are done).
        """
        total = 0
        for _ in range(rounds):
            taken = await self.store.orphans(int(self.clock()), limit)
            if not taken:
                break
            total += len(taken)
            outcomes = await asyncio.gather(
                *(self._recover_one(*push) for push in taken), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    log.error("bot: re-handling a deferred push failed", exc_info=outcome)
        return total

    async def _recover_one(self, account: str, dedup_key: str, message: str) -> None:
        try:
            fields = json.loads(message)
            if not isinstance(fields, dict):
                raise TypeError("not an object")
            msg = wire.to_message(account, fields)
        except (ValueError, TypeError, wire.WireError):
            # Stored by this code from a verified push: unreadable means damaged.
            log.error(
                "bot: a deferred push cannot be read back; settled without a reply",
                extra={"account": account},
            )
            await deferred.record(
                self.db,
                account=account,
                dedup_key=dedup_key,
                openid="",
                reply=None,
                last_inbound_at=datetime.now(UTC),
            )
            return
        log.warning(
            "bot: handling a deferred push whose process died",
            extra={"account": account, "openid_hash": openid_hash(msg.openid)},
        )
        ctx = Context(msg, db=self.db, settings=self.settings, app=self.app)
        await self._deliver_late(msg, await self.dispatcher.feed(ctx))

    async def close(self) -> None:
        """Let late handlers finish briefly, then cancel them; release the dedup store."""
        if self.background:
            _, pending = await asyncio.wait(list(self.background), timeout=5)
            for task in pending:
                task.cancel()
        await self.store.close()
