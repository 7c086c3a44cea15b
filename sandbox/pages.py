"""Server-rendered pages under ``/sandbox/``: the index, a citizen's phone, a follower's
view of the WeChat articles and of the Weibo timeline (Chinese UI, no JavaScript)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select

from sandbox import callback, comments
from sandbox.core import SANDBOX, Sandbox
from sandbox.models import SandboxComment, SandboxPublish, SandboxWeiboStatus

MAX_FORM_BYTES = 16 * 1024


def _render(request: web.Request, template_name: str, /, **context: Any) -> web.Response:
    from sandbox.web import TEMPLATES

    template = request.app[TEMPLATES].get_template(template_name)
    body = template.render(**context)
    return web.Response(
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self' 'unsafe-inline'; script-src 'none'",
        },
    )


def _account(request: web.Request, platform: str) -> str:
    key = request.match_info["account"]
    accounts = (
        request.app[SANDBOX].settings.wechat.accounts
        if platform == "wechat"
        else request.app[SANDBOX].settings.weibo.accounts
    )
    if not re.fullmatch(r"[a-z0-9_\-]{1,64}", key) or key not in accounts:
        raise web.HTTPNotFound()
    return key


def _int(value: str | None, default: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\d{1,9}", value) or int(value) > high:
        raise web.HTTPBadRequest(text="参数无效 / invalid parameter")
    return int(value)


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_FORM_BYTES, actual_size=request.content_length
        )
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPBadRequest(text="需要表单提交 / form post expected")
    try:
        return await request.post()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="表单无效 / invalid form") from None


async def index(request: web.Request) -> web.Response:
    """``/sandbox/``: accounts, links and the faults in force."""
    sandbox = request.app[SANDBOX]
    return _render(
        request,
        "index.html",
        wechat=sorted(sandbox.settings.wechat.accounts.items()),
        weibo=sorted(sandbox.settings.weibo.accounts.items()),
        faults=sandbox.faults.describe(),
        followers=len(sandbox.followers(next(iter(sandbox.settings.wechat.accounts), "main"))),
    )


async def phone(request: web.Request) -> web.Response:
    """A citizen's phone: the conversation with one WeChat account and a message box."""
    from sandbox.web import conversation

    sandbox = request.app[SANDBOX]
    account = _account(request, "wechat")
    count = len(sandbox.followers(account))
    follower = _int(request.query.get("follower"), 0, count - 1)
    openid = sandbox.followers(account)[follower]
    lines = await conversation(sandbox, account, openid)
    settings = sandbox.settings.wechat.accounts[account]
    return _render(
        request,
        "phone.html",
        account=account,
        name=settings.name or account,
        follower=follower,
        followers=count,
        lines=lines,
        menu=sandbox.settings.bot.menu,
    )


async def phone_send(request: web.Request) -> web.Response:
    """The phone's form: a text, or a menu click, pushed to the bot as WeChat does."""
    sandbox = request.app[SANDBOX]
    account = _account(request, "wechat")
    form = await _form(request)
    count = len(sandbox.followers(account))
    follower = _int(str(form.get("follower", "0")), 0, count - 1)
    openid = sandbox.followers(account)[follower]
    content = str(form.get("content", "")).strip()
    click = str(form.get("click", ""))
    if click:
        if len(click) > 128:
            raise web.HTTPBadRequest(text="菜单键无效 / invalid menu key")
        await callback.citizen_send(sandbox, account, openid, "event", "CLICK", click)
    elif content:
        if len(content) > 2000:
            raise web.HTTPBadRequest(text="消息过长 / message too long")
        await callback.citizen_send(sandbox, account, openid, "text", content)
    elif form.get("subscribe"):
        await callback.citizen_send(sandbox, account, openid, "event", "subscribe")
    raise web.HTTPSeeOther(f"/sandbox/wechat/{account}/phone?follower={follower}")


async def _published(sandbox: Sandbox, account: str) -> list[SandboxPublish]:
    async with sandbox.db.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(SandboxPublish)
                    .where(SandboxPublish.account == account, SandboxPublish.status == 0)
                    .order_by(SandboxPublish.id.desc())
                    .limit(100)
                )
            )
            .scalars()
            .all()
        )
    return list(rows)


async def articles(request: web.Request) -> web.Response:
    """A follower's view of the account's published articles."""
    sandbox = request.app[SANDBOX]
    account = _account(request, "wechat")
    from sandbox.wechat import finish_due

    await finish_due(sandbox)
    rows = await _published(sandbox, account)
    settings = sandbox.settings.wechat.accounts[account]
    return _render(
        request, "articles.html", account=account, name=settings.name or account, rows=rows
    )


async def article(request: web.Request) -> web.Response:
    """One published article with its comments (留言) and a box for a follower's comment."""
    sandbox = request.app[SANDBOX]
    article_id = request.match_info["article_id"]
    idx = _int(request.query.get("idx"), 1, 8)
    async with sandbox.db.sessions() as session:
        row = (
            await session.execute(
                select(SandboxPublish).where(SandboxPublish.article_id == article_id)
            )
        ).scalar_one_or_none()
        items = row.articles.get("news_item", []) if row else []
        if row is None or row.status != 0 or not 1 <= idx <= len(items):
            raise web.HTTPNotFound(text="该内容已被发布者删除")
        if idx in row.articles.get("deleted", []):
            raise web.HTTPNotFound(text="该内容已被发布者删除")
        target = f"{row.msg_data_id}:{idx - 1}"
        notes = (
            (
                await session.execute(
                    select(SandboxComment)
                    .where(
                        SandboxComment.platform == "wechat",
                        SandboxComment.target == target,
                        SandboxComment.deleted.is_(False),
                    )
                    .order_by(SandboxComment.elected.desc(), SandboxComment.id)
                    .limit(200)
                )
            )
            .scalars()
            .all()
        )
    is_open = await comments.is_open(sandbox, row.account, row.msg_data_id, idx - 1)
    return _render(
        request,
        "article.html",
        row=row,
        item=items[idx - 1],
        idx=idx,
        notes=notes,
        comments_open=is_open,
        mask=mask_openid,
    )


def mask_openid(openid: str) -> str:
    """A commenter's id as shown publicly (masked)."""
    return f"{openid[:4]}****{openid[-2:]}" if len(openid) > 6 else "****"


async def article_comment(request: web.Request) -> web.Response:
    """A follower's comment form under an article."""
    sandbox = request.app[SANDBOX]
    article_id = request.match_info["article_id"]
    form = await _form(request)
    idx = _int(str(form.get("idx", "1")), 1, 8)
    async with sandbox.db.sessions() as session:
        row = (
            await session.execute(
                select(SandboxPublish).where(SandboxPublish.article_id == article_id)
            )
        ).scalar_one_or_none()
    if row is None:
        raise web.HTTPNotFound()
    follower = _int(str(form.get("follower", "0")), 0, len(sandbox.followers(row.account)) - 1)
    try:
        await comments.follower_comments_article(
            sandbox, row.account, row.msg_data_id, idx - 1, follower, str(form.get("text", ""))
        )
    except comments.CommentRefused as error:
        raise web.HTTPBadRequest(text=f"无法留言 / comment refused: {error}") from None
    raise web.HTTPSeeOther(f"/sandbox/wechat/s/{article_id}?idx={idx}")


async def timeline(request: web.Request) -> web.Response:
    """A follower's view of a Weibo account's timeline, with comments."""
    sandbox = request.app[SANDBOX]
    account = _account(request, "weibo")
    async with sandbox.db.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(SandboxWeiboStatus)
                    .where(
                        SandboxWeiboStatus.account == account, SandboxWeiboStatus.deleted.is_(False)
                    )
                    .order_by(SandboxWeiboStatus.id.desc())
                    .limit(100)
                )
            )
            .scalars()
            .all()
        )
        notes = (
            (
                await session.execute(
                    select(SandboxComment)
                    .where(
                        SandboxComment.platform == "weibo",
                        SandboxComment.target.in_([str(r.id) for r in rows]),
                        SandboxComment.deleted.is_(False),
                    )
                    .order_by(SandboxComment.id)
                )
            )
            .scalars()
            .all()
        )
    by_post: dict[str, list[SandboxComment]] = {}
    for note in notes:
        by_post.setdefault(note.target, []).append(note)
    settings = sandbox.settings.weibo.accounts[account]
    return _render(
        request,
        "weibo.html",
        account=account,
        name=settings.name or account,
        rows=rows,
        comments=by_post,
    )


async def timeline_comment(request: web.Request) -> web.Response:
    """A follower's comment form under a Weibo post."""
    sandbox = request.app[SANDBOX]
    account = _account(request, "weibo")
    form = await _form(request)
    raw_id = str(form.get("status_id", ""))
    if not re.fullmatch(r"\d{1,19}", raw_id):
        raise web.HTTPBadRequest(text="参数无效 / invalid parameter")
    follower = _int(str(form.get("follower", "0")), 0, 999_999)
    try:
        await comments.follower_comments_post(
            sandbox, account, int(raw_id), follower, str(form.get("text", ""))
        )
    except comments.CommentRefused as error:
        raise web.HTTPBadRequest(text=f"无法评论 / comment refused: {error}") from None
    raise web.HTTPSeeOther(f"/sandbox/weibo/{account}")


def add_routes(app: web.Application) -> None:
    """Mount the pages."""
    app.router.add_get("/sandbox/", index)
    app.router.add_get("/sandbox", index)
    app.router.add_get("/sandbox/wechat/{account}/phone", phone)
    app.router.add_post("/sandbox/wechat/{account}/phone", phone_send)
    app.router.add_get("/sandbox/wechat/{account}/articles", articles)
    app.router.add_get("/sandbox/wechat/s/{article_id:[A-Za-z0-9_\\-]{1,64}}", article)
    app.router.add_post("/sandbox/wechat/s/{article_id:[A-Za-z0-9_\\-]{1,64}}", article_comment)
    app.router.add_get("/sandbox/weibo/{account}", timeline)
    app.router.add_post("/sandbox/weibo/{account}", timeline_comment)
