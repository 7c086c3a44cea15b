"""The Sina Weibo open API stand-in under ``/sandbox/weibo/2/...``."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDict
from sqlalchemy import func, select

from sandbox.core import BEIJING, SANDBOX, Sandbox, new_media_id, take_quota
from sandbox.models import SandboxComment, SandboxCounter, SandboxMedia, SandboxWeiboStatus
from sandbox.wechat_content import sniff_image

log = logging.getLogger("govcast.sandbox")

MAX_TEXT = 140
MAX_PIC = 5 * 1024 * 1024
MAX_FORM = 6 * 1024 * 1024
COMMENTS_PER_HOUR = 60
_URL = re.compile(r"https?://[^\s<>\"'\u3000-\u303f\uff00-\uffef]+")

ERRORS = {
    10001: (400, "system error"),
    10006: (403, "source paramter (appkey) is missing"),
    10008: (400, "param error, see doc for more info"),
    10014: (403, "Insufficient app permissions!"),
    10016: (400, "miss required parameter, see doc for more info"),
    10017: (400, "text not find domain!"),
    10022: (403, "IP requests out of rate limit!"),
    10023: (403, "User requests out of rate limit!"),
    10024: (403, "User requests for (interface) out of rate limit!"),
    20005: (400, "unsupported image type, only suport JPG, GIF, PNG!"),
    20006: (400, "image size too large"),
    20012: (400, "Text too long, please input text less than 140 characters!"),
    20016: (400, "Out of limit!"),
    20017: (400, "Repeated weibo text!"),
    20019: (400, "repeat content!"),
    20101: (400, "Target weibo does not exist!"),
    20102: (403, "Not your own weibo!"),
    20201: (400, "Target weibo comment does not exist!"),
    21301: (403, "auth faild!"),
    21327: (403, "expired_token"),
    21332: (403, "invalid_access_token"),
}


class WeiboError(Exception):
    """A Weibo error answer."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def error_response(request: web.Request, code: int) -> web.Response:
    """Weibo's error JSON ``{"error", "error_code", "request"}`` with its HTTP status."""
    status, message = ERRORS.get(code, (400, "error"))
    return web.json_response(
        {
            "error": message,
            "error_code": code,
            "request": request.path.removeprefix("/sandbox/weibo"),
        },
        status=status,
    )


def weibo_length(text: str) -> int:
    """Weibo's count: a Chinese character is 1, two ASCII characters are 1."""
    half = sum(1 if ord(ch) < 128 else 2 for ch in text)
    return math.ceil(half / 2)


def has_safe_link(text: str, domain: str) -> bool:
    """Whether the text carries an http(s) link on the bound safe domain (or a subdomain)."""
    domain = domain.lower().strip(".")
    for match in _URL.finditer(text):
        host = (urlsplit(match.group(0)).hostname or "").lower()
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def weibo_time(moment: datetime) -> str:
    """Weibo's created_at format, e.g. ``Sat Nov 28 10:40:49 +0800 2026``."""
    return moment.astimezone(BEIJING).strftime("%a %b %d %H:%M:%S +0800 %Y")


class Call:
    """One Weibo call: the account (from its token) and the merged parameters."""

    def __init__(
        self, request: web.Request, sandbox: Sandbox, account: str, params: MultiDict[Any]
    ) -> None:
        self.request = request
        self.sandbox = sandbox
        self.account = account
        self.params = params
        self.now = sandbox.clock.now()
        self.pic: bytes | None = None

    def text(self, key: str, required: bool = True) -> str:
        """A string parameter (10016 when a required one is missing)."""
        value = self.params.get(key, "")
        if not isinstance(value, str):
            raise WeiboError(10008)
        if required and not value.strip():
            raise WeiboError(10016)
        return value

    def number(self, key: str, default: int, low: int, high: int) -> int:
        """An integer parameter within [low, high] (10008 otherwise)."""
        value = self.params.get(key)
        if value in (None, ""):
            return default
        if not isinstance(value, str) or not re.fullmatch(r"\d{1,19}", value):
            raise WeiboError(10008)
        number = int(value)
        if not low <= number <= high:
            raise WeiboError(10008)
        return number


Handler = Callable[[Call], Awaitable[Any]]


async def _params(request: web.Request) -> tuple[MultiDict[Any], bytes | None]:
    params: MultiDict[Any] = MultiDict(request.query)
    pic = None
    if request.method != "POST":
        return params, None
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise WeiboError(20006)
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            name = getattr(part, "name", None)
            # A picture must be under 5 MB: exactly 5 MB is already too large.
            cap = MAX_PIC - 1 if name == "pic" else MAX_PIC
            data = bytearray()
            while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                data.extend(chunk)
                if len(data) > cap:
                    raise WeiboError(20006)
            if name == "pic":
                pic = bytes(data)
            elif name:
                params[name] = data.decode("utf-8")
    else:
        raw = await request.content.read(MAX_FORM + 1)
        if len(raw) > MAX_FORM:
            raise WeiboError(10008)
        from urllib.parse import parse_qsl

        for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
            params[key] = value
    return params, pic


def api(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: faults, token, parameters, Weibo's error JSON, never a 500."""

    async def route(request: web.Request) -> web.Response:
        sandbox = request.app[SANDBOX]
        decision = sandbox.faults.decide("weibo")
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.hang == "before":
            await sandbox.faults.hang()
            return error_response(request, 10001)
        if decision.errcode is not None:
            return error_response(request, decision.errcode)
        try:
            params, pic = await _params(request)
            account = await check_token(sandbox, request, params)
            call = Call(request, sandbox, account, params)
            call.pic = pic
            result = await handler(call)
        except WeiboError as error:
            return error_response(request, error.code)
        except (UnicodeDecodeError, ValueError, web.HTTPException):
            return error_response(request, 10008)
        except Exception:  # never a stack trace
            log.exception("sandbox weibo handler failed", extra={"path": request.path})
            return error_response(request, 10001)
        if decision.hang == "after":
            await sandbox.faults.hang()
            return error_response(request, 10001)
        return web.json_response(result)

    return route


async def check_token(sandbox: Sandbox, request: web.Request, params: MultiDict[Any]) -> str:
    """The account of the OAuth2 token (query, body or ``Authorization: OAuth2``)."""
    token = params.get("access_token", "")
    header = request.headers.get("Authorization", "")
    if not token and header.startswith("OAuth2 "):
        token = header[len("OAuth2 ") :].strip()
    if not token:
        raise WeiboError(21301)
    account = sandbox.weibo_by_token(str(token))
    if account is None:
        raise WeiboError(21332)
    now = sandbox.clock.now()
    async with sandbox.db.transaction() as session:
        # The token's life starts at its first use in the sandbox.
        scope = f"weibo:{account}"
        row = (
            await session.execute(
                select(SandboxCounter).where(
                    SandboxCounter.scope == scope,
                    SandboxCounter.name == "token_issued",
                    SandboxCounter.period == "-",
                )
            )
        ).scalar_one_or_none()
        if row is None:
            session.add(
                SandboxCounter(scope=scope, name="token_issued", period="-", count=1, last_at=now)
            )
        elif row.last_at is not None and (now - row.last_at).total_seconds() > (
            sandbox.settings.sandbox.weibo_token_lifetime_seconds
        ):
            raise WeiboError(21327)
    return account


def _user(sandbox: Sandbox, account: str) -> dict[str, Any]:
    settings = sandbox.weibo_account(account)
    uid = int(hashlib.sha256(f"weibo:{account}".encode()).hexdigest()[:10], 16)
    return {
        "id": uid,
        "idstr": str(uid),
        "screen_name": settings.name or account,
        "name": settings.name or account,
        "verified": True,
        "verified_type": 1,
    }


def follower_user(sandbox: Sandbox, name: str) -> dict[str, Any]:
    """A follower's user object."""
    uid = int(
        hashlib.sha256(
            f"weibo-follower:{sandbox.settings.sandbox.seed}:{name}".encode()
        ).hexdigest()[:10],
        16,
    )
    return {"id": uid, "idstr": str(uid), "screen_name": name, "name": name, "verified": False}


def status_json(
    request: web.Request, sandbox: Sandbox, row: SandboxWeiboStatus, comments: int = 0
) -> dict[str, Any]:
    """A status object as Weibo returns it."""
    data: dict[str, Any] = {
        "created_at": weibo_time(row.created_at),
        "id": row.id,
        "idstr": str(row.id),
        "mid": str(row.id),
        "text": row.text,
        "source": '<a href="https://app.weibo.com" rel="nofollow">govcast</a>',
        "user": _user(sandbox, row.account),
        "reposts_count": 0,
        "comments_count": comments,
        "attitudes_count": 0,
        "pic_urls": [],
    }
    if row.pic_media_id:
        url = f"{request.url.origin()}/sandbox/wechat/mmbiz/{row.pic_media_id}"
        data.update(
            pic_urls=[{"thumbnail_pic": url}], thumbnail_pic=url, bmiddle_pic=url, original_pic=url
        )
    return data


async def share(call: Call) -> Any:
    """``statuses/share.json``: 140 characters, a safe-domain link, no repeats, per-hour limit."""
    text = call.text("status")
    if weibo_length(text) > MAX_TEXT:
        raise WeiboError(20012)
    if not has_safe_link(text, call.sandbox.weibo_account(call.account).safe_domain):
        raise WeiboError(10017)
    pic_type = None
    if call.pic is not None:
        pic_type = sniff_image(call.pic)
        if pic_type not in ("image/jpeg", "image/png", "image/gif"):
            raise WeiboError(20005)
    limit = call.sandbox.weibo_account(call.account).posts_per_hour
    async with call.sandbox.db.transaction() as session:
        recent = await session.scalar(
            select(func.count())
            .select_from(SandboxWeiboStatus)
            .where(
                SandboxWeiboStatus.account == call.account,
                SandboxWeiboStatus.created_at > call.now - timedelta(hours=1),
            )
        )
        if int(recent or 0) >= limit:
            raise WeiboError(10023)
        same = await session.scalar(
            select(func.count())
            .select_from(SandboxWeiboStatus)
            .where(
                SandboxWeiboStatus.account == call.account,
                SandboxWeiboStatus.deleted.is_(False),
                SandboxWeiboStatus.text == text,
            )
        )
        if same:
            raise WeiboError(20019)
        media_id = None
        if call.pic is not None and pic_type is not None:
            media_id = "wb" + new_media_id()[:40]
            session.add(
                SandboxMedia(
                    account=f"weibo:{call.account}",
                    media_id=media_id,
                    kind="weibo",
                    content_type=pic_type,
                    data=call.pic,
                    created_at=call.now,
                )
            )
        row = SandboxWeiboStatus(
            id=_status_id(call.now),
            account=call.account,
            text=text,
            pic_media_id=media_id,
            created_at=call.now,
            deleted=False,
        )
        session.add(row)
    return status_json(call.request, call.sandbox, row)


def _status_id(now: datetime) -> int:
    # Weibo ids are 16 digits and grow with time.
    return int(now.timestamp() * 1000) * 1000 + secrets.randbelow(1000)


async def _status(call: Call, status_id: int, own: bool = False) -> SandboxWeiboStatus:
    async with call.sandbox.db.sessions() as session:
        row = await session.get(SandboxWeiboStatus, status_id)
    if row is None or row.deleted:
        raise WeiboError(20101)
    if own and row.account != call.account:
        raise WeiboError(20102)
    return row


async def user_timeline(call: Call) -> Any:
    """``statuses/user_timeline.json``: the account's own posts, newest first."""
    count = call.number("count", 20, 1, 100)
    page = call.number("page", 1, 1, 10_000)
    since_id = call.number("since_id", 0, 0, 2**63 - 1)
    where = [SandboxWeiboStatus.account == call.account, SandboxWeiboStatus.deleted.is_(False)]
    async with call.sandbox.db.sessions() as session:
        total = await session.scalar(
            select(func.count()).select_from(SandboxWeiboStatus).where(*where)
        )
        if since_id:
            where.append(SandboxWeiboStatus.id > since_id)
        rows = (
            (
                await session.execute(
                    select(SandboxWeiboStatus)
                    .where(*where)
                    .order_by(SandboxWeiboStatus.id.desc())
                    .offset((page - 1) * count)
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
        counts = await _comment_counts(session, [str(r.id) for r in rows])
    return {
        "statuses": [
            status_json(call.request, call.sandbox, r, counts.get(str(r.id), 0)) for r in rows
        ],
        "total_number": int(total or 0),
    }


async def _comment_counts(session: Any, targets: list[str]) -> dict[str, int]:
    if not targets:
        return {}
    rows = await session.execute(
        select(SandboxComment.target, func.count())
        .where(
            SandboxComment.platform == "weibo",
            SandboxComment.target.in_(targets),
            SandboxComment.deleted.is_(False),
        )
        .group_by(SandboxComment.target)
    )
    return {target: int(n) for target, n in rows}


async def show(call: Call) -> Any:
    """``statuses/show.json?id=``."""
    row = await _status(call, call.number("id", 0, 1, 2**63 - 1))
    return status_json(call.request, call.sandbox, row)


async def destroy(call: Call) -> Any:
    """``statuses/destroy.json``: delete one of the account's own posts."""
    row = await _status(call, call.number("id", 0, 1, 2**63 - 1), own=True)
    async with call.sandbox.db.transaction() as session:
        stored = await session.get(SandboxWeiboStatus, row.id)
        assert stored is not None
        stored.deleted = True
    return status_json(call.request, call.sandbox, row)


def comment_json(
    request: web.Request,
    sandbox: Sandbox,
    row: SandboxComment,
    status: SandboxWeiboStatus | None,
    parent: SandboxComment | None = None,
) -> dict[str, Any]:
    """A comment object as Weibo returns it."""
    user = _user(sandbox, row.account) if row.by_account else follower_user(sandbox, row.author)
    data: dict[str, Any] = {
        "created_at": weibo_time(row.created_at),
        "id": row.id,
        "idstr": str(row.id),
        "mid": str(row.id),
        "text": row.text,
        "source": "",
        "user": user,
    }
    if status is not None:
        data["status"] = status_json(request, sandbox, status)
    if parent is not None:
        data["reply_comment"] = comment_json(request, sandbox, parent, None)
    return data


async def _comment_rows(call: Call, *where: Any) -> tuple[int, list[SandboxComment]]:
    count = call.number("count", 50, 1, 200)
    page = call.number("page", 1, 1, 10_000)
    since_id = call.number("since_id", 0, 0, 2**63 - 1)
    max_id = call.number("max_id", 0, 0, 2**63 - 1)
    conds = [SandboxComment.platform == "weibo", SandboxComment.deleted.is_(False), *where]
    async with call.sandbox.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(SandboxComment).where(*conds))
        if since_id:
            conds.append(SandboxComment.id > since_id)
        if max_id:
            conds.append(SandboxComment.id <= max_id)
        rows = (
            (
                await session.execute(
                    select(SandboxComment)
                    .where(*conds)
                    .order_by(SandboxComment.id.desc())
                    .offset((page - 1) * count)
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
    return int(total or 0), list(rows)


async def _render_comments(call: Call, rows: list[SandboxComment]) -> list[dict[str, Any]]:
    async with call.sandbox.db.sessions() as session:
        statuses = {}
        parents = {}
        for row in rows:
            if row.target not in statuses:
                statuses[row.target] = await session.get(SandboxWeiboStatus, int(row.target))
            if row.reply_to is not None and row.reply_to not in parents:
                parents[row.reply_to] = await session.get(SandboxComment, row.reply_to)
    return [
        comment_json(
            call.request,
            call.sandbox,
            r,
            statuses.get(r.target),
            parents.get(r.reply_to) if r.reply_to else None,
        )
        for r in rows
    ]


async def comments_show(call: Call) -> Any:
    """``comments/show.json?id=``: comments on one post."""
    status = await _status(call, call.number("id", 0, 1, 2**63 - 1))
    total, rows = await _comment_rows(call, SandboxComment.target == str(status.id))
    return {"comments": await _render_comments(call, rows), "total_number": total}


async def comments_to_me(call: Call) -> Any:
    """``comments/to_me.json``: others' comments on the account's posts."""
    total, rows = await _comment_rows(
        call, SandboxComment.account == call.account, SandboxComment.by_account.is_(False)
    )
    return {"comments": await _render_comments(call, rows), "total_number": total}


async def _add_comment(
    call: Call, status: SandboxWeiboStatus, text: str, reply_to: SandboxComment | None
) -> Any:
    if not text.strip():
        raise WeiboError(10016)
    if weibo_length(text) > MAX_TEXT:
        raise WeiboError(20012)
    async with call.sandbox.db.transaction() as session:
        ok = await take_quota(
            session,
            f"weibo:{call.account}",
            "comments",
            call.now.astimezone(BEIJING).strftime("%Y-%m-%dT%H"),
            COMMENTS_PER_HOUR,
            call.now,
        )
        if not ok:
            raise WeiboError(10023)
        row = SandboxComment(
            platform="weibo",
            account=status.account,
            target=str(status.id),
            author=call.sandbox.weibo_account(call.account).name or call.account,
            by_account=True,
            text=text,
            reply_to=reply_to.id if reply_to else None,
            created_at=call.now,
        )
        session.add(row)
    return comment_json(call.request, call.sandbox, row, status, reply_to)


async def comments_create(call: Call) -> Any:
    """``comments/create.json {id, comment}``."""
    status = await _status(call, call.number("id", 0, 1, 2**63 - 1))
    return await _add_comment(call, status, call.text("comment"), None)


async def comments_reply(call: Call) -> Any:
    """``comments/reply.json {cid, id, comment}``."""
    status = await _status(call, call.number("id", 0, 1, 2**63 - 1))
    cid = call.number("cid", 0, 1, 2**63 - 1)
    async with call.sandbox.db.sessions() as session:
        parent = await session.get(SandboxComment, cid)
    if (
        parent is None
        or parent.deleted
        or parent.platform != "weibo"
        or parent.target != str(status.id)
    ):
        raise WeiboError(20201)
    return await _add_comment(call, status, call.text("comment"), parent)


ROUTES: dict[str, tuple[str, Handler]] = {
    "statuses/share.json": ("POST", share),
    "statuses/user_timeline.json": ("GET", user_timeline),
    "statuses/show.json": ("GET", show),
    "statuses/destroy.json": ("POST", destroy),
    "comments/show.json": ("GET", comments_show),
    "comments/create.json": ("POST", comments_create),
    "comments/reply.json": ("POST", comments_reply),
    "comments/to_me.json": ("GET", comments_to_me),
}


def add_routes(app: web.Application, prefix: str = "/sandbox/weibo/2") -> None:
    """Mount the Weibo stand-in's routes."""
    for path, (method, handler) in ROUTES.items():
        app.router.add_route(method, f"{prefix}/{path}", api(handler))
