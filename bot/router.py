"""The bot's router, in the style of aiogram v3: ordered routers, filters, handlers, middlewares.

How another package adds handlers (this is the whole contract)::

    # bot/cases/handlers.py
    from bot.router import Context, Router, TextReply, MenuKey, MsgType, Text, Regex

    router = Router(name="cases")

    @router.message(Text("留言", "我要留言"))
    async def start_intake(ctx: Context) -> TextReply:
        async with ctx.db.transaction() as session:   # or: session = await ctx.session()
            ...
        return TextReply("请选择类型：1 咨询 2 投诉 3 建议 4 求助")

    @router.event(MenuKey("leave_message"))
    async def menu_intake(ctx: Context) -> TextReply: ...

    @router.message(Regex(r"^[A-Z]{2}\\d{8}$"))   # a case number; ctx.data["match"] holds it
    async def case_status(ctx: Context) -> TextReply: ...

    # an async filter may look at the database, e.g. "this citizen is in an intake":
    async def in_intake(ctx: Context) -> bool: ...
    @router.message(MsgType("text"), in_intake)
    async def intake_step(ctx: Context) -> TextReply: ...

``bot/web.py`` includes it with one line, ``dispatcher.include_router(router)``, after the
built-in subscribe/menu/event handlers and before the keyword rules and the search
fallback, so the cases router sees every text message that nothing earlier took.

Rules:

- A router tries its own handlers in registration order, then its included routers in
  inclusion order; the first handler whose filters all pass handles the message.
- A filter is a callable ``(ctx) -> bool | dict`` (sync or async). A dict counts as a pass
  and is merged into ``ctx.data`` (``Regex`` puts the match under ``"match"``).
- A handler returns a typed reply (:class:`TextReply`, :class:`NewsReply` with 1-8
  :class:`Article`, :class:`ImageReply`) or ``None`` (handled, nothing to say: WeChat gets
  ``success``). Raising :class:`SkipHandler` passes the message on to the next handler.
- Middlewares wrap handling: ``async def mw(handler, ctx) -> Reply | None`` calling
  ``await handler(ctx)``; ``router.middleware(mw)`` applies to that router and the routers
  included in it. The dispatcher's own middlewares log (OpenIDs hashed), close a lazily
  opened database session, and turn any exception into a polite Chinese apology — never
  WeChat's "该公众号暂时无法提供服务".
- Time: the callback answers within ``[bot] reply_budget_seconds``. A handler still running
  then keeps running; WeChat gets ``success`` at once and the handler's reply is delivered
  afterwards as a customer-service message (48-hour window) or template message. Handlers
  must therefore be safe to finish late but are called exactly once per message: WeChat's
  retries are deduplicated before the router runs. Routing starts eagerly in the
  callback's own task (like Python 3.12's eager tasks: a reply that waits on nothing costs
  no task) and moves to a task of its own at its first wait; so bound an inner wait with
  ``asyncio.wait_for``, never ``asyncio.timeout``, which would bind to the callback's task.
- Filters run for every message that reaches them, so they are the hot path: decide from
  the message in memory where possible. A filter that must read the database per message
  (e.g. "is this citizen in an intake?") costs a pooled session each and dominates the
  callback's throughput under load (measured: ~6x fewer messages/s); batch such reads
  across concurrent messages with :class:`publisher.batching.GroupCommit` (one ``SELECT ... WHERE
  (account, openid) IN (...)`` per batch), or, for the intake, use what the dedup claim
  read in its own statement (``bot.dedup.CONVERSATION_KEY`` in ``ctx.data``).
- ``ctx.message`` is the parsed :class:`InboundMessage` (``msg_type``, ``event``,
  ``event_key``, ``content``, ``openid``...); ``ctx.openid_hash`` is what may be logged.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from govcast.settings import Settings
from publisher.db import Database

log = logging.getLogger("govcast.bot")

MAX_NEWS_ARTICLES = 8


# --- inbound --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    """One message or event from a citizen, as WeChat pushed it (decrypted, parsed)."""

    account: str
    to_user: str
    openid: str
    create_time: int
    msg_type: str
    msg_id: str = ""
    event: str = ""
    event_key: str = ""
    content: str = ""
    recognition: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """WeChat's identity of this push: MsgId, or FromUserName + CreateTime for events."""
        if self.msg_id:
            return f"m:{self.msg_id}"
        return f"e:{self.openid}:{self.create_time}:{self.event}"

    @property
    def text(self) -> str:
        """What the citizen said: the text, or the speech recognition of a voice message."""
        if self.msg_type == "text":
            return self.content
        if self.msg_type == "voice":
            return self.recognition
        return ""


def openid_hash(openid: str) -> str:
    """A short stable hash of an OpenID: what logs carry instead of the OpenID itself."""
    return hashlib.sha256(openid.encode()).hexdigest()[:12]


# --- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextReply:
    """A text reply (WeChat shows up to about 2,048 bytes)."""

    content: str


@dataclass(frozen=True)
class Article:
    """One item of a news reply."""

    title: str
    url: str
    description: str = ""
    picurl: str = ""


@dataclass(frozen=True)
class NewsReply:
    """A news (articles) reply: 1 to 8 articles."""

    articles: tuple[Article, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.articles) <= MAX_NEWS_ARTICLES:
            raise ValueError(f"a news reply has 1-{MAX_NEWS_ARTICLES} articles")


@dataclass(frozen=True)
class ImageReply:
    """An image reply: a permanent or temporary media id of the account."""

    media_id: str


Reply = TextReply | NewsReply | ImageReply


class SkipHandler(Exception):
    """Raised by a handler to let the next matching handler take the message."""


# --- context --------------------------------------------------------------------------------


class Context:
    """What a handler gets: the message, the database, settings and per-message data."""

    __slots__ = ("_session", "account", "app", "data", "db", "message", "settings")

    def __init__(
        self,
        message: InboundMessage,
        *,
        db: Database,
        settings: Settings,
        app: Any = None,
    ) -> None:
        self.message = message
        self.account = message.account
        self.db = db
        self.settings = settings
        self.app = app
        self.data: dict[str, Any] = {}
        self._session: AsyncSession | None = None

    @property
    def openid(self) -> str:
        """The citizen's OpenID (personal data: never log it)."""
        return self.message.openid

    @property
    def openid_hash(self) -> str:
        """The loggable hash of the citizen's OpenID."""
        return openid_hash(self.message.openid)

    async def session(self) -> AsyncSession:
        """A database session opened on first use and closed after the handler."""
        if self._session is None:
            self._session = self.db.sessions()
        return self._session

    async def close(self) -> None:
        """Close the lazily opened session (rolling back anything not committed)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


# --- filters --------------------------------------------------------------------------------

FilterResult = bool | dict[str, Any]
Filter = Callable[[Context], FilterResult | Awaitable[FilterResult]]
Handler = Callable[[Context], Awaitable[Reply | None]]


class Middleware(Protocol):
    """Wraps handling of one message."""

    def __call__(self, handler: Handler, ctx: Context) -> Awaitable[Reply | None]: ...


class MsgType:
    """Passes messages of the given types (text, image, voice, video, location, link, event)."""

    def __init__(self, *types: str) -> None:
        self.types = frozenset(types)

    def __call__(self, ctx: Context) -> bool:
        return ctx.message.msg_type in self.types


class Event:
    """Passes events of the given kinds (subscribe, unsubscribe, CLICK, VIEW, ...)."""

    def __init__(self, *events: str) -> None:
        self.events = frozenset(e.lower() for e in events)

    def __call__(self, ctx: Context) -> bool:
        return ctx.message.msg_type == "event" and ctx.message.event.lower() in self.events


class MenuKey:
    """Passes CLICK events whose EventKey is one of the given menu keys."""

    def __init__(self, *keys: str) -> None:
        self.keys = frozenset(keys)

    def __call__(self, ctx: Context) -> bool:
        msg = ctx.message
        return (
            msg.msg_type == "event"
            and msg.event.lower() == "click"
            and (msg.event_key in self.keys)
        )


class Text:
    """Passes text (or recognised voice) equal to one of the words, after trimming."""

    def __init__(self, *words: str, ignore_case: bool = True) -> None:
        self.ignore_case = ignore_case
        self.words = frozenset(w.strip().lower() if ignore_case else w.strip() for w in words)

    def __call__(self, ctx: Context) -> bool:
        text = ctx.message.text.strip()
        return (text.lower() if self.ignore_case else text) in self.words


class Contains:
    """Passes text (or recognised voice) containing one of the words."""

    def __init__(self, *words: str) -> None:
        self.words = tuple(w.lower() for w in words if w)

    def __call__(self, ctx: Context) -> bool:
        text = ctx.message.text.lower()
        return bool(text) and any(w in text for w in self.words)


class Regex:
    """Passes text matching the pattern (search); the match goes to ``ctx.data["match"]``.

    Patterns are written by programmers here; staff-written patterns go through
    :func:`bot.keywords.compile_rule_pattern`, which bounds them.
    """

    MAX_TEXT = 2048

    def __init__(self, pattern: str | re.Pattern[str], flags: int = 0) -> None:
        self.pattern = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

    def __call__(self, ctx: Context) -> FilterResult:
        text = ctx.message.text
        if not text or len(text) > self.MAX_TEXT:
            return False
        match = self.pattern.search(text)
        return {"match": match} if match else False


# --- routers --------------------------------------------------------------------------------


@dataclass
class _Registered:
    handler: Handler
    filters: tuple[Filter, ...]
    name: str


class Router:
    """An ordered set of handlers and included routers."""

    def __init__(self, name: str = "") -> None:
        self.name = name or f"router-{id(self):x}"
        self.handlers: list[_Registered] = []
        self.routers: list[Router] = []
        self.middlewares: list[Middleware] = []

    def include_router(self, router: Router) -> Router:
        """Include another router after everything registered so far; returns it.

        A module-level router may be included in several dispatchers (one per app).
        """
        if router is self or router in self.routers or self in router._descendants():
            raise ValueError(f"router {router.name!r} cannot be included here twice or in a loop")
        self.routers.append(router)
        return router

    def _descendants(self) -> list[Router]:
        found: list[Router] = []
        for sub in self.routers:
            found.append(sub)
            found.extend(sub._descendants())
        return found

    def middleware(self, mw: Middleware) -> Middleware:
        """Add a middleware around this router's (and its sub-routers') handlers."""
        self.middlewares.append(mw)
        return mw

    def register(self, handler: Handler, *filters: Filter) -> Handler:
        """Register a handler with its filters (all must pass)."""
        name = getattr(handler, "__qualname__", repr(handler))
        self.handlers.append(_Registered(handler, tuple(filters), name))
        return handler

    def message(self, *filters: Filter) -> Callable[[Handler], Handler]:
        """Decorator: a handler for citizen messages (not events) passing the filters."""

        def deco(handler: Handler) -> Handler:
            return self.register(handler, _not_event, *filters)

        return deco

    def event(self, *filters: Filter) -> Callable[[Handler], Handler]:
        """Decorator: a handler for events passing the filters."""

        def deco(handler: Handler) -> Handler:
            return self.register(handler, _is_event, *filters)

        return deco

    def any(self, *filters: Filter) -> Callable[[Handler], Handler]:
        """Decorator: a handler for messages and events passing the filters."""

        def deco(handler: Handler) -> Handler:
            return self.register(handler, *filters)

        return deco

    async def propagate(
        self, ctx: Context, inherited: Sequence[Middleware] = ()
    ) -> tuple[bool, Reply | None]:
        """Find the first handler that takes the message; (handled, reply)."""
        chain = [*inherited, *self.middlewares]
        for reg in self.handlers:
            if not await _passes(reg.filters, ctx):
                continue
            ctx.data["handler"] = reg.name
            try:
                return True, await _wrap(chain, reg.handler)(ctx)
            except SkipHandler:
                continue
        for router in self.routers:
            handled, reply = await router.propagate(ctx, chain)
            if handled:
                return True, reply
        return False, None


def _not_event(ctx: Context) -> bool:
    return ctx.message.msg_type != "event"


def _is_event(ctx: Context) -> bool:
    return ctx.message.msg_type == "event"


async def _passes(filters: Sequence[Filter], ctx: Context) -> bool:
    for flt in filters:
        result = flt(ctx)
        # Most filters are sync and answer a plain bool: skip the awaitable check for them.
        if result is True:
            continue
        if result is False:
            return False
        if inspect.isawaitable(result):
            result = await result
        if not result:
            return False
        if isinstance(result, dict):
            ctx.data.update(result)
    return True


def _wrap(chain: Sequence[Middleware], handler: Handler) -> Handler:
    wrapped = handler
    for mw in reversed(chain):
        wrapped = _bind(mw, wrapped)
    return wrapped


def _bind(mw: Middleware, inner: Handler) -> Handler:
    async def call(ctx: Context) -> Reply | None:
        return await mw(inner, ctx)

    return call


# --- dispatcher -----------------------------------------------------------------------------

APOLOGY_ZH = "抱歉，系统暂时繁忙，您的消息我们已收到，稍后将尽快答复。"


class Dispatcher(Router):
    """The root router: applies the always-on middlewares and answers unhandled messages."""

    def __init__(self, name: str = "dispatcher", apology: str = APOLOGY_ZH) -> None:
        super().__init__(name)
        self.apology = apology

    async def feed(self, ctx: Context) -> Reply | None:
        """Route one message: the reply (or None for ``success``); never raises."""
        try:
            handled, reply = await self.propagate(ctx)
        except Exception:
            # The citizen gets an apology; the traceback goes to the log without the text.
            log.exception(
                "bot handler failed",
                extra={
                    "account": ctx.account,
                    "openid_hash": ctx.openid_hash,
                    "handler": ctx.data.get("handler"),
                    "msg_type": ctx.message.msg_type,
                },
            )
            return TextReply(self.apology)
        finally:
            try:
                await ctx.close()
            except Exception:  # closing a broken session must not lose the reply
                log.warning("bot session close failed", exc_info=True)
        if handled and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "bot handled",
                extra={
                    "account": ctx.account,
                    "openid_hash": ctx.openid_hash,
                    "handler": ctx.data.get("handler"),
                },
            )
        return reply
