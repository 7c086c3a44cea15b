"""The bot's built-in handlers: events (subscribe, menu, platform job results) first, then
(after the cases router) keyword rules, corpus search and sensible answers to the rest."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot import texts
from bot.keywords import RuleCache
from bot.models import Follower
from bot.router import (
    Article,
    Context,
    Event,
    Handler,
    MenuKey,
    MsgType,
    NewsReply,
    Reply,
    Router,
    SkipHandler,
    TextReply,
)

log = logging.getLogger("govcast.bot")

MAX_QUERY = 30

# --- events -------------------------------------------------------------------------------

events = Router(name="bot-events")


async def _record_follower(ctx: Context, subscribed: bool) -> None:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "account": ctx.account,
        "openid": ctx.openid,
        "subscribed": subscribed,
        "first_seen_at": now,
        "subscribed_at": now if subscribed else None,
        "unsubscribed_at": None if subscribed else now,
    }
    update: dict[str, Any] = {"subscribed": subscribed}
    update["subscribed_at" if subscribed else "unsubscribed_at"] = now
    insert = pg_insert if ctx.db.is_postgresql else sqlite_insert
    stmt = insert(Follower).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["account", "openid"], set_=update)
    async with ctx.db.transaction() as session:
        await session.execute(stmt)


@events.event(Event("subscribe"))
async def on_subscribe(ctx: Context) -> Reply:
    """Welcome a new follower and tell them how to use the account."""
    await _record_follower(ctx, True)
    return TextReply(texts.get(ctx.settings, "welcome"))


@events.event(Event("unsubscribe"))
async def on_unsubscribe(ctx: Context) -> None:
    """Record that a citizen left (no reply can reach them)."""
    await _record_follower(ctx, False)


async def _latest(ctx: Context, kinds: Sequence[str], limit: int = 5) -> list[Article]:
    # The website's live index: what citizens can open, newest first.
    marks = ", ".join(f":k{i}" for i in range(len(kinds)))
    params: dict[str, Any] = {f"k{i}": k for i, k in enumerate(kinds)}
    params["limit"] = limit
    async with ctx.db.engine.connect() as conn:
        try:
            rows = (
                await conn.execute(
                    text(
                        "SELECT title, url, published_at FROM website_search_docs"
                        f" WHERE kind IN ({marks}) ORDER BY rank_key DESC LIMIT :limit"
                    ),
                    params,
                )
            ).all()
        except Exception:  # the website's index is absent in this deployment
            log.warning("bot: website index unavailable for the menu", exc_info=True)
            return []
    base = ctx.settings.website.base_url.rstrip("/")
    return [Article(title=str(r[0]), url=_absolute(base, str(r[1])), description="") for r in rows]


def _absolute(base: str, url: str) -> str:
    return base + url if url.startswith("/") else url


MENU_KINDS: Mapping[str, tuple[str, ...]] = {
    "latest_releases": ("disclosure", "press_release", "solicitation"),
    "press_conferences": ("press_conference",),
    "mayor_column": ("column_item",),
}


@events.event(MenuKey(*MENU_KINDS))
async def on_menu_list(ctx: Context) -> Reply:
    """Menu clicks that list the newest items of a kind."""
    key = ctx.message.event_key
    articles = await _latest(ctx, MENU_KINDS[key])
    if not articles:
        return TextReply(texts.get(ctx.settings, "menu_empty"))
    return NewsReply(tuple(articles[:8]))


@events.event(Event("PUBLISHJOBFINISH"))
async def on_publish_finished(ctx: Context) -> None:
    """``freepublish`` result: settle the WeChat delivery (channels.wechat)."""
    info = parse_publish_event(ctx.message.fields)
    settle = _optional("channels.wechat", "settle_publish_event")
    if settle is None:
        log.warning("bot: PUBLISHJOBFINISH without channels.wechat", extra={"account": ctx.account})
        return None
    async with ctx.db.transaction() as session:
        await settle(session, account=ctx.account, **info)
    return None


@events.event(Event("MASSSENDJOBFINISH"))
async def on_mass_send_finished(ctx: Context) -> None:
    """Mass-send result: settle the push delivery (channels.wechat)."""
    info = parse_mass_send_event(ctx.message.fields)
    settle = _optional("channels.wechat", "settle_mass_send_event")
    if settle is None:
        log.warning(
            "bot: MASSSENDJOBFINISH without channels.wechat", extra={"account": ctx.account}
        )
        return None
    async with ctx.db.transaction() as session:
        await settle(session, account=ctx.account, **info)
    return None


@events.event(Event("TEMPLATESENDJOBFINISH", "VIEW", "SCAN", "LOCATION", "view_miniprogram"))
async def on_quiet_event(ctx: Context) -> None:
    """Events that need no answer."""
    return None


def _optional(module: str, name: str) -> Any:
    # Provided by another package, possibly not yet present in this deployment.
    try:
        return getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def _as_str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _as_int(value: Any) -> int:
    text_value = _as_str(value)
    return int(text_value) if text_value.lstrip("-").isdigit() and len(text_value) < 19 else 0


def parse_publish_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """PublishEventInfo -> publish_id, publish_status, article_id, article_urls."""
    info = fields.get("PublishEventInfo")
    info = info if isinstance(info, Mapping) else {}
    urls: list[str] = []
    detail = info.get("article_detail")
    if isinstance(detail, Mapping):
        items = detail.get("item", [])
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, Mapping) and _as_str(item.get("article_url")):
                urls.append(_as_str(item.get("article_url")))
    return {
        "publish_id": _as_str(info.get("publish_id")),
        "publish_status": _as_int(info.get("publish_status")),
        "article_id": _as_str(info.get("article_id")),
        "article_urls": urls,
    }


def parse_mass_send_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """MASSSENDJOBFINISH -> msg_id, status, total, sent, errors."""
    return {
        "msg_id": _as_str(fields.get("MsgID")) or _as_str(fields.get("MsgId")),
        "status": _as_str(fields.get("Status")),
        "total": _as_int(fields.get("TotalCount")),
        "sent": _as_int(fields.get("SentCount")),
        "errors": _as_int(fields.get("ErrorCount")),
    }


# --- after the cases router: keywords, search, the rest -----------------------------------------

fallback = Router(name="bot-fallback")


@fallback.event(MenuKey("leave_message", "my_cases"))
async def on_cases_menu_unavailable(ctx: Context) -> Reply:
    """Cases menu keys when no cases router took them."""
    return TextReply(texts.get(ctx.settings, "cases_unavailable"))


@fallback.event()
async def on_other_event(ctx: Context) -> None:
    """Any other event: nothing to say."""
    return None


def keyword_handler(cache: RuleCache) -> Handler:
    """A handler answering from the staff's keyword rules."""

    async def on_keyword(ctx: Context) -> Reply:
        rule = await cache.find(ctx.account, ctx.message.text)
        if rule is None:
            raise SkipHandler
        ctx.data["keyword_rule"] = rule.id
        return rule.reply

    return on_keyword


class SearchCache:
    """Recent search replies per query, shared by concurrent askers (single flight).

    In an emergency thousands of citizens ask the same few words; one search serves them
    all. A reply older than ``ttl`` is still served while one background search refreshes
    it (stale-while-revalidate), so expiry never sends a crowd to the database at once;
    past ``max_stale`` the caller waits for a fresh search.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000, max_stale: float = 600.0) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_stale = max(max_stale, ttl)
        self._entries: dict[str, tuple[float, Reply]] = {}
        self._inflight: dict[str, asyncio.Task[Reply]] = {}

    async def get(self, key: str, compute: Callable[[], Awaitable[Reply]]) -> Reply:
        """The cached reply for ``key``, computing it once if missing or stale."""
        now = time.monotonic()
        hit = self._entries.get(key) if self.ttl > 0 else None
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._compute(key, compute))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        if hit is not None and now - hit[0] < self.max_stale:
            return hit[1]
        return await asyncio.shield(task)

    def _done(self, key: str, task: asyncio.Task[Reply]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("bot: search failed", exc_info=task.exception())

    async def _compute(self, key: str, compute: Callable[[], Awaitable[Reply]]) -> Reply:
        started = time.monotonic()
        reply = await compute()
        if self.ttl > 0:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (started, reply)
        return reply


def search_handler(cache: SearchCache) -> Handler:
    """A handler answering any other text (or recognised speech) from the corpus search."""

    async def on_search(ctx: Context) -> Reply:
        query = ctx.message.text.strip()[:MAX_QUERY]
        if not query:
            return TextReply(texts.get(ctx.settings, "voice_unclear"))
        return await cache.get(f"{ctx.account}\x00{query}", lambda: _search(ctx, query))

    return on_search


async def _search(ctx: Context, query: str) -> Reply:
    search = _optional("website.search", "search")
    if search is None:
        return TextReply(texts.get(ctx.settings, "nothing_found"))
    results = await search(ctx.db, query, limit=ctx.settings.bot.search_results)
    items = list(getattr(results, "items", []))[:8]
    if not items:
        return TextReply(texts.get(ctx.settings, "nothing_found"))
    base = ctx.settings.website.base_url.rstrip("/")
    return NewsReply(
        tuple(
            Article(
                title=str(hit.title)[:64],
                url=_absolute(base, str(hit.url)),
                description=str(getattr(hit, "snippet", ""))[:120],
            )
            for hit in items
        )
    )


@fallback.message(MsgType("image"))
async def on_image(ctx: Context) -> Reply:
    """Pictures: we cannot read them; explain how to leave a message."""
    return TextReply(texts.get(ctx.settings, "image"))


@fallback.message(MsgType("location"))
async def on_location(ctx: Context) -> Reply:
    """A shared location: thank and point at the service directory."""
    return TextReply(texts.get(ctx.settings, "location"))


@fallback.message(MsgType("link"))
async def on_link(ctx: Context) -> Reply:
    """A shared link: thank; links are not opened by the bot."""
    return TextReply(texts.get(ctx.settings, "link"))


@fallback.message(MsgType("video", "shortvideo", "file"))
async def on_media(ctx: Context) -> Reply:
    """Video or files: explain what the bot understands."""
    return TextReply(texts.get(ctx.settings, "help"))


def build_fallback(cache: RuleCache, searches: SearchCache) -> Router:
    """Keywords then search for text and voice, then the other message types."""
    router = Router(name="bot-text")
    router.register(keyword_handler(cache), MsgType("text", "voice"))
    router.register(search_handler(searches), MsgType("text", "voice"))
    return router
