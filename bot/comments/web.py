"""The comments inbox in the console (/console/comments) and the collection, reply and
retention ticks.

Pages use the console's own sessions, CSRF checks and role checks (``console.web.guard``
and ``console.security.requires``); every comment is rendered by Jinja2 with autoescape.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import select

from bot.comments import service
from bot.comments.models import Comment, CommentReply, CommentState, CommentThread
from console.keys import JINJA
from console.pages import flash, render
from console.security import CURRENT, Current, digits, query, requires
from console.web import guard
from govcast import keys
from govcast.scheduler import Tick
from publisher.errors import ValidationError
from publisher.models import Publication, Role
from publisher.outcomes import DeliveryError

log = logging.getLogger("govcast.bot.comments")

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE = 50
ACTORS = (Role.RESPONDER, Role.EDITOR)
# Replying from the page waits this long for the platform; the outbox finishes later.
SEND_NOW_SECONDS = 8.0
STATE_LABELS = {
    "new": ("未处理", "New"),
    "answered": ("已回复", "Answered"),
    "featured": ("已精选", "Featured"),
    "hidden": ("已隐藏", "Hidden"),
    "case": ("已转办件", "Case"),
}
PLATFORM_LABELS = {"wechat": ("微信", "WeChat"), "weibo": ("微博", "Weibo")}


def setup(app: web.Application) -> None:
    """Add the inbox pages; the console (set up before) provides sessions and templates."""
    env = app.get(JINJA)
    if env is not None and env.loader is not None:
        # Our templates extend the console's base layout: one environment, autoescape on.
        env.loader = jinja2.ChoiceLoader([env.loader, jinja2.FileSystemLoader(str(TEMPLATES))])
    app.router.add_get("/console/comments", guard(inbox_page))
    app.router.add_get(r"/console/comments/{id:\d{1,18}}", guard(comment_page))
    for action in ("reply", "feature", "unfeature", "hide", "case"):
        app.router.add_post(
            rf"/console/comments/{{id:\d{{1,18}}}}/{action}", guard(ACTIONS[action])
        )


def apis_of(app: web.Application) -> service.Apis:
    """``(platform, account)`` -> the channel's API client."""
    channels: Any = app[keys.CHANNELS]

    def lookup(platform: str, account: str) -> Any:
        return channels[platform].api(account)

    return lookup


def options_of(app: web.Application) -> service.PollOptions:
    """The collection pace from the ``[comments]`` settings."""
    c = app[keys.SETTINGS].comments
    return service.PollOptions(
        often_seconds=c.poll_seconds,
        seldom_seconds=c.old_poll_seconds,
        fresh=timedelta(days=c.fresh_days),
        threads_per_tick=c.threads_per_tick,
        auto_answer_rules=tuple(c.auto_answer_rules),
        retention=timedelta(days=c.retention_days),
    )


def ticks(app: web.Application) -> list[Tick]:
    """Collect comments, send the reply outbox, purge what is past retention."""
    settings = app[keys.SETTINGS]
    db = app[keys.DB]

    async def collect() -> int:
        return await service.collect(db, apis_of(app), options_of(app))

    async def send() -> int:
        return await service.send_due(db, apis_of(app))

    async def purge() -> int:
        return await service.purge(db, settings.comments.retention_days)

    return [
        Tick("comments_collect", settings.comments.poll_seconds, collect),
        Tick("comments_send_replies", settings.scheduler.tick_seconds, send),
        Tick("comments_purge", 3600.0, purge),
    ]


# --- pages -------------------------------------------------------------------------------


def _current(request: web.Request) -> Current:
    current: Current | None = request.get(CURRENT)
    if current is None:
        raise web.HTTPUnauthorized()
    return current


def _id(request: web.Request) -> int:
    value = int(request.match_info["id"])
    if not 0 < value < 2**62:
        raise web.HTTPNotFound()
    return value


def _filters(request: web.Request) -> service.InboxFilter:
    settings = request.app[keys.SETTINGS]
    publication = query(request, "publication", 20)
    platform = query(request, "platform", 10)
    account = query(request, "account", 64)
    state = query(request, "state", 10)
    if publication and not digits(publication):
        raise web.HTTPBadRequest(text="publication must be a number")
    if platform and platform not in service.PLATFORMS:
        raise web.HTTPBadRequest(text="platform must be wechat or weibo")
    known = set(settings.wechat.accounts) | set(settings.weibo.accounts)
    if account and account not in known:
        raise web.HTTPBadRequest(text="unknown account")
    if state and state not in {s.value for s in CommentState}:
        raise web.HTTPBadRequest(text="unknown state")
    return service.InboxFilter(
        publication_id=int(publication) if publication else None,
        platform=platform,
        account=account,
        state=state,
    )


@requires(*ACTORS)
async def inbox_page(request: web.Request) -> web.StreamResponse:
    """The inbox: comments of both platforms, filtered."""
    filters = _filters(request)
    page_text = query(request, "page", 6, "1")
    page = int(page_text) if digits(page_text, 6) and int(page_text) > 0 else 1
    settings = request.app[keys.SETTINGS]
    async with request.config_dict[keys.DB].sessions() as session:
        rows, total = await service.inbox(session, filters, PAGE, (page - 1) * PAGE)
        ids = {r.publication_id for r in rows}
        titles = (
            dict(
                (
                    await session.execute(
                        select(Publication.id, Publication.title).where(Publication.id.in_(ids))
                    )
                ).all()
            )
            if ids
            else {}
        )
        counts = (
            await service.counts_by_publication(session, [filters.publication_id])
            if filters.publication_id is not None
            else {}
        )
    return await render(
        request,
        "comments.html",
        comments=rows,
        total=total,
        page=page,
        pages=max(1, (total + PAGE - 1) // PAGE),
        filters=filters,
        titles=titles,
        counts=counts.get(filters.publication_id or 0, {}),
        accounts=sorted(set(settings.wechat.accounts) | set(settings.weibo.accounts)),
        states=STATE_LABELS,
        platforms=PLATFORM_LABELS,
    )


@requires(*ACTORS)
async def comment_page(request: web.Request) -> web.StreamResponse:
    """One comment: its text, publication, reply state, suggestions and actions."""
    comment_id = _id(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        comment = await service.get_comment(session, comment_id)
        publication = await session.get(Publication, comment.publication_id)
        thread = await session.get(CommentThread, comment.thread_id)
        reply = await session.scalar(
            select(CommentReply).where(CommentReply.comment_id == comment_id)
        )
        session.expunge_all()
    suggestions = (
        await service.suggestions(
            db, comment, tuple(request.app[keys.SETTINGS].comments.auto_answer_rules)
        )
        if comment.reply_text is None and not comment.hidden
        else []
    )
    return await render(
        request,
        "comment.html",
        comment=comment,
        publication=publication,
        thread=thread,
        reply=reply,
        suggestions=suggestions,
        limit=service.REPLY_LIMITS.get(comment.platform, 140),
        states=STATE_LABELS,
        platforms=PLATFORM_LABELS,
    )


async def _form_text(request: web.Request, name: str, limit: int) -> str:
    form = await request.post()
    value = form.get(name, "")
    if not isinstance(value, str):
        raise ValidationError(name, "must be text")
    if len(value) > limit:
        raise ValidationError(name, f"at most {limit} characters")
    return value


def _back(comment_id: int) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/console/comments/{comment_id}")


@requires(*ACTORS)
async def reply_action(request: web.Request) -> web.StreamResponse:
    """Queue a reply (once per comment) and try to post it at once."""
    current = _current(request)
    comment_id = _id(request)
    text = await _form_text(request, "text", 5000)
    db = request.config_dict[keys.DB]
    actor = current.member.actor()
    async with db.transaction() as session:
        row = await service.request_reply(session, comment_id, text, actor)
        reply_id = row.id
    try:
        sent = await asyncio.wait_for(
            service.send_one(db, apis_of(request.app), reply_id), SEND_NOW_SECONDS
        )
    except TimeoutError:
        sent = False
    if sent:
        await flash(request, "ok", "回复已发布。", "The reply is posted.")
    else:
        await flash(
            request,
            "warn",
            "回复已排队，平台暂未确认；系统会核对后重试，不会重复发布。",
            "The reply is queued; the platform has not confirmed it yet. It will be checked "
            "and retried, never posted twice.",
        )
    raise _back(comment_id)


async def _platform_action(request: web.Request, what: str) -> web.StreamResponse:
    current = _current(request)
    comment_id = _id(request)
    db = request.config_dict[keys.DB]
    apis = apis_of(request.app)
    actor = current.member.actor()
    try:
        if what == "feature":
            await service.set_featured(db, apis, comment_id, True, actor)
        elif what == "unfeature":
            await service.set_featured(db, apis, comment_id, False, actor)
        else:
            comment = await service.hide(db, apis, comment_id, actor)
            if comment.platform == "weibo":
                await flash(
                    request,
                    "warn",
                    "已在本系统隐藏；微博开放接口不能删除网友评论，评论在微博上仍可见。",
                    "Hidden in govcast only: Weibo's open API cannot delete followers' "
                    "comments, so it is still visible on Weibo.",
                )
                raise _back(comment_id)
    except DeliveryError as error:
        await flash(request, "error", f"平台未接受：{error}", f"The platform refused: {error}")
        raise _back(comment_id) from None
    await flash(request, "ok", "已完成。", "Done.")
    raise _back(comment_id)


@requires(*ACTORS)
async def feature_action(request: web.Request) -> web.StreamResponse:
    """Feature (精选) a comment."""
    return await _platform_action(request, "feature")


@requires(*ACTORS)
async def unfeature_action(request: web.Request) -> web.StreamResponse:
    """Take a comment out of the featured ones."""
    return await _platform_action(request, "unfeature")


@requires(*ACTORS)
async def hide_action(request: web.Request) -> web.StreamResponse:
    """Hide a comment (WeChat: deleted on the platform; Weibo: in govcast only)."""
    return await _platform_action(request, "hide")


@requires(*ACTORS)
async def case_action(request: web.Request) -> web.StreamResponse:
    """Turn a comment into a case, keeping the link."""
    from bot.cases.service import KIND_NAMES, CaseRules

    current = _current(request)
    comment_id = _id(request)
    kind = await _form_text(request, "kind", 20) or "consultation"
    if kind not in KIND_NAMES:
        raise ValidationError("kind", "consultation, complaint, suggestion or help")
    settings = request.app[keys.SETTINGS]
    case_id = await service.to_case(
        request.config_dict[keys.DB],
        CaseRules.from_settings(settings),
        settings.office.key,
        comment_id,
        current.member.actor(),
        kind,
    )
    async with request.config_dict[keys.DB].sessions() as session:
        comment = await service.get_comment(session, comment_id)
        replied = comment.platform == "weibo" and (
            comment.reply_text is not None
            or await service.inbox_reply_of(session, comment.account, comment.remote_id) is not None
        )
    if replied:
        await flash(
            request,
            "warn",
            f"已转为办件（#{case_id}）。这条评论已有回复，办件答复不会再发布在评论下"
            "（每条评论只答复一次），请另行告知网友。",
            f"Turned into case #{case_id}. This comment already has a reply, so the case's "
            "reply will not be posted under it (a comment is answered once): pass it on "
            "otherwise.",
        )
        raise _back(comment_id)
    await flash(request, "ok", f"已转为办件（#{case_id}）。", f"Turned into case #{case_id}.")
    raise _back(comment_id)


ACTIONS = {
    "reply": reply_action,
    "feature": feature_action,
    "unfeature": unfeature_action,
    "hide": hide_action,
    "case": case_action,
}

__all__ = ["Comment", "setup", "ticks"]
