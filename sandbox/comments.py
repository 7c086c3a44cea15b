"""Comments (留言) on published WeChat articles, addressed by msg_data_id + index, and
simulated followers commenting on WeChat articles and Weibo posts."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from sandbox.core import SANDBOX, Sandbox
from sandbox.models import (
    SandboxComment,
    SandboxCommentSwitch,
    SandboxMassSend,
    SandboxPublish,
    SandboxWeiboStatus,
)
from sandbox.wechat import Call, WxError, api

MAX_COMMENT = 600
MAX_REPLY = 600
COMMENT_ERRORS = {
    88000: "without comment privilege",
    88001: "msg_data is not exists",
    88003: "elected comment upper limit",
    88004: "comment was deleted by user",
    88005: "already reply",
    88007: "reply content beyond max len or content len is zero",
    88008: "comment is not exists",
    88010: "count range error. cout <= 0 or count > 50",
}
ELECTED_LIMIT = 100


def _err(code: int) -> WxError:
    return WxError(code, COMMENT_ERRORS[code])


async def article_of(
    sandbox: Sandbox, account: str, msg_data_id: str, index: int
) -> dict[str, Any]:
    """The article ``index`` (from 0) of a published or mass-sent message, or 88001."""
    async with sandbox.db.sessions() as session:
        pub = (
            await session.execute(
                select(SandboxPublish).where(
                    SandboxPublish.account == account,
                    SandboxPublish.msg_data_id == msg_data_id,
                    SandboxPublish.status == 0,
                )
            )
        ).scalar_one_or_none()
        articles: list[dict[str, Any]] = []
        if pub is not None:
            articles = list(pub.articles.get("news_item", []))
        else:
            mass = (
                await session.execute(
                    select(SandboxMassSend).where(
                        SandboxMassSend.account == account,
                        SandboxMassSend.msg_data_id == msg_data_id,
                    )
                )
            ).scalar_one_or_none()
            if mass is not None:
                from sandbox.models import SandboxDraft

                draft = (
                    await session.execute(
                        select(SandboxDraft).where(SandboxDraft.media_id == mass.media_id)
                    )
                ).scalar_one_or_none()
                articles = list(draft.articles.get("news_item", [])) if draft else []
    if not 0 <= index < len(articles):
        raise _err(88001)
    return articles[index]


async def is_open(sandbox: Sandbox, account: str, msg_data_id: str, index: int) -> bool:
    """Whether comments are open on the article (its switch, else need_open_comment)."""
    article = await article_of(sandbox, account, msg_data_id, index)
    async with sandbox.db.sessions() as session:
        switch = (
            await session.execute(
                select(SandboxCommentSwitch).where(
                    SandboxCommentSwitch.account == account,
                    SandboxCommentSwitch.target == f"{msg_data_id}:{index}",
                )
            )
        ).scalar_one_or_none()
    if switch is not None:
        return switch.open
    return bool(article.get("need_open_comment"))


def _address(call: Call) -> tuple[str, int]:
    if not call.sandbox.has_comments(call.account):
        raise _err(88000)
    msg_data_id = call.text("msg_data_id", limit=32, code=88001)
    index = call.number("index", 0, 0, 7)
    return msg_data_id, index


async def _switch(call: Call, value: bool) -> dict[str, Any]:
    msg_data_id, index = _address(call)
    await article_of(call.sandbox, call.account, msg_data_id, index)
    target = f"{msg_data_id}:{index}"
    async with call.sandbox.db.transaction() as session:
        row = (
            await session.execute(
                select(SandboxCommentSwitch).where(
                    SandboxCommentSwitch.account == call.account,
                    SandboxCommentSwitch.target == target,
                )
            )
        ).scalar_one_or_none()
        if row is None:
            session.add(SandboxCommentSwitch(account=call.account, target=target, open=value))
        else:
            row.open = value
    return {}


async def comment_open(call: Call) -> dict[str, Any]:
    """``comment/open {msg_data_id, index}``."""
    return await _switch(call, True)


async def comment_close(call: Call) -> dict[str, Any]:
    """``comment/close {msg_data_id, index}``."""
    return await _switch(call, False)


def comment_item(row: SandboxComment) -> dict[str, Any]:
    """One comment as ``comment/list`` returns it."""
    item: dict[str, Any] = {
        "user_comment_id": row.id,
        "openid": row.author,
        "create_time": int(row.created_at.timestamp()),
        "content": row.text,
        "comment_type": 1 if row.elected else 0,
    }
    if row.reply_text is not None and row.reply_at is not None:
        item["reply"] = {"content": row.reply_text, "create_time": int(row.reply_at.timestamp())}
    return item


async def comment_list(call: Call) -> dict[str, Any]:
    """``comment/list {msg_data_id, index, begin, count (<= 50), type}``."""
    msg_data_id, index = _address(call)
    begin = call.number("begin", 0, 0, 10**7)
    count = call.body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 50:
        raise _err(88010)
    kind = call.number("type", 0, 0, 2)
    await article_of(call.sandbox, call.account, msg_data_id, index)
    where = [
        SandboxComment.platform == "wechat",
        SandboxComment.account == call.account,
        SandboxComment.target == f"{msg_data_id}:{index}",
        SandboxComment.deleted.is_(False),
    ]
    if kind == 1:
        where.append(SandboxComment.elected.is_(False))
    elif kind == 2:
        where.append(SandboxComment.elected.is_(True))
    async with call.sandbox.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(SandboxComment).where(*where))
        rows = (
            (
                await session.execute(
                    select(SandboxComment)
                    .where(*where)
                    .order_by(SandboxComment.id)
                    .offset(begin)
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
    return {"total": int(total or 0), "comment": [comment_item(r) for r in rows]}


async def _comment(call: Call) -> tuple[SandboxComment, Any]:
    msg_data_id, index = _address(call)
    cid = call.number("user_comment_id", -1, 0, 2**62)
    await article_of(call.sandbox, call.account, msg_data_id, index)
    return cid, f"{msg_data_id}:{index}"  # type: ignore[return-value]


async def _change(call: Call, change: str) -> dict[str, Any]:
    cid, target = await _comment(call)
    async with call.sandbox.db.transaction() as session:
        row = await session.get(SandboxComment, cid)
        if (
            row is None
            or row.platform != "wechat"
            or row.target != target
            or row.account != call.account
        ):
            raise _err(88008)
        if row.deleted:
            raise _err(88004)
        if change == "elect":
            elected = await session.scalar(
                select(func.count())
                .select_from(SandboxComment)
                .where(SandboxComment.target == target, SandboxComment.elected.is_(True))
            )
            if not row.elected and int(elected or 0) >= ELECTED_LIMIT:
                raise _err(88003)
            row.elected = True
        elif change == "unelect":
            row.elected = False
        elif change == "delete":
            row.deleted = True
        elif change == "reply":
            content = call.body.get("content")
            if not isinstance(content, str) or not content.strip() or len(content) > MAX_REPLY:
                raise _err(88007)
            if row.reply_text is not None:
                raise _err(88005)
            row.reply_text = content
            row.reply_at = call.now
        elif change == "unreply":
            row.reply_text = None
            row.reply_at = None
    return {}


async def markelect(call: Call) -> dict[str, Any]:
    """``comment/markelect``: feature (精选) a comment."""
    return await _change(call, "elect")


async def unmarkelect(call: Call) -> dict[str, Any]:
    """``comment/unmarkelect``."""
    return await _change(call, "unelect")


async def comment_delete(call: Call) -> dict[str, Any]:
    """``comment/delete``."""
    return await _change(call, "delete")


async def reply_add(call: Call) -> dict[str, Any]:
    """``comment/reply/add {msg_data_id, index, user_comment_id, content}``."""
    return await _change(call, "reply")


async def reply_delete(call: Call) -> dict[str, Any]:
    """``comment/reply/delete``."""
    return await _change(call, "unreply")


# --- simulated followers ----------------------------------------------------------------


class CommentRefused(ValueError):
    """A simulated comment cannot be made (closed, missing target, bad text)."""


def _follower(sandbox: Sandbox, account: str, follower: object) -> str:
    count = len(sandbox.followers(account))
    if isinstance(follower, bool) or not isinstance(follower, int) or not 0 <= follower < count:
        raise CommentRefused(f"follower must be an integer from 0 to {count - 1}")
    return sandbox.followers(account)[follower]


def _text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise CommentRefused("text must be a non-empty string")
    if len(text) > MAX_COMMENT:
        raise CommentRefused(f"text is longer than {MAX_COMMENT} characters")
    return text


async def follower_comments_article(
    sandbox: Sandbox, account: str, msg_data_id: str, index: int, follower: int, text: str
) -> SandboxComment:
    """A follower leaves a comment under a WeChat article (comments must be open)."""
    if account not in sandbox.settings.wechat.accounts:
        raise CommentRefused("account is not a configured WeChat account")
    openid = _follower(sandbox, account, follower)
    text = _text(text)
    try:
        if not await is_open(sandbox, account, msg_data_id, index):
            raise CommentRefused("comments are closed on this article")
    except WxError:
        raise CommentRefused("no such published article") from None
    async with sandbox.db.transaction() as session:
        row = SandboxComment(
            platform="wechat",
            account=account,
            target=f"{msg_data_id}:{index}",
            author=openid,
            by_account=False,
            text=text,
            created_at=sandbox.clock.now(),
        )
        session.add(row)
    return row


async def follower_comments_post(
    sandbox: Sandbox, account: str, status_id: int, follower: int, text: str
) -> SandboxComment:
    """A follower comments on a Weibo post."""
    if account not in sandbox.settings.weibo.accounts:
        raise CommentRefused("account is not a configured Weibo account")
    if isinstance(follower, bool) or not isinstance(follower, int) or not 0 <= follower < 10**6:
        raise CommentRefused("follower must be a non-negative integer")
    text = _text(text)
    async with sandbox.db.transaction() as session:
        status = await session.get(SandboxWeiboStatus, status_id)
        if status is None or status.deleted or status.account != account:
            raise CommentRefused("no such post")
        row = SandboxComment(
            platform="weibo",
            account=account,
            target=str(status_id),
            author=f"网友{follower:04d}",
            by_account=False,
            text=text,
            created_at=sandbox.clock.now(),
        )
        session.add(row)
    return row


async def _body(request: web.Request) -> dict[str, Any]:
    from sandbox.web import bad_request, read_control_json

    raw = await read_control_json(request)
    if not isinstance(raw, dict):
        raise bad_request("the body must be a JSON object")
    return raw


def _refused(error: CommentRefused) -> web.HTTPBadRequest:
    from sandbox.web import bad_request

    return bad_request(str(error))


async def wechat_follower_comment(request: web.Request) -> web.Response:
    """``POST /sandbox/wechat/_followers/comment {account, msg_data_id, index, follower, text}``."""
    raw = await _body(request)
    index = raw.get("index", 0)
    msg_data_id = raw.get("msg_data_id")
    if isinstance(msg_data_id, int) and not isinstance(msg_data_id, bool):
        msg_data_id = str(msg_data_id)
    if not isinstance(msg_data_id, str) or not msg_data_id.isdigit() or len(msg_data_id) > 32:
        raise _refused(CommentRefused("msg_data_id must be a number"))
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 8:
        raise _refused(CommentRefused("index must be an integer from 0 to 7"))
    try:
        row = await follower_comments_article(
            request.app[SANDBOX],
            str(raw.get("account", "main")),
            msg_data_id,
            index,
            raw.get("follower", 0),
            raw.get("text"),  # type: ignore[arg-type]
        )
    except CommentRefused as error:
        raise _refused(error) from None
    return web.json_response(comment_item(row), dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def weibo_follower_comment(request: web.Request) -> web.Response:
    """``POST /sandbox/weibo/_followers/comment {account, status_id, follower, text}``."""
    raw = await _body(request)
    status_id = raw.get("status_id")
    if isinstance(status_id, str) and status_id.isdigit() and len(status_id) < 20:
        status_id = int(status_id)
    if isinstance(status_id, bool) or not isinstance(status_id, int) or not 0 < status_id < 2**63:
        raise _refused(CommentRefused("status_id must be a post id"))
    try:
        row = await follower_comments_post(
            request.app[SANDBOX],
            str(raw.get("account", "main")),
            status_id,
            raw.get("follower", 0),
            raw.get("text"),  # type: ignore[arg-type]
        )
    except CommentRefused as error:
        raise _refused(error) from None
    return web.json_response(
        {"id": row.id, "text": row.text, "author": row.author},
        dumps=lambda d: json.dumps(d, ensure_ascii=False),
    )


ROUTES = {
    "comment/open": comment_open,
    "comment/close": comment_close,
    "comment/list": comment_list,
    "comment/markelect": markelect,
    "comment/unmarkelect": unmarkelect,
    "comment/delete": comment_delete,
    "comment/reply/add": reply_add,
    "comment/reply/delete": reply_delete,
}


def add_routes(app: web.Application) -> None:
    """Mount the WeChat comment API and the simulated followers' endpoints."""
    for path, handler in ROUTES.items():
        app.router.add_post(f"/sandbox/wechat/cgi-bin/{path}", api(handler))
    app.router.add_post("/sandbox/wechat/_followers/comment", wechat_follower_comment)
    app.router.add_post("/sandbox/weibo/_followers/comment", weibo_follower_comment)
