"""The WeChat Official Account API stand-in under ``/sandbox/wechat/cgi-bin/...``."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbox import callback
from sandbox.core import (
    SANDBOX,
    Sandbox,
    day_key,
    minute_key,
    month_key,
    new_id,
    new_media_id,
    take_quota,
    take_quota_or_why,
)
from sandbox.models import (
    SandboxDraft,
    SandboxMassSend,
    SandboxMedia,
    SandboxMenu,
    SandboxMessage,
    SandboxPublish,
    SandboxToken,
)
from sandbox.wechat_content import ArticleError, check_articles, sniff_image

log = logging.getLogger("govcast.sandbox")

TOKEN_SECONDS = 7200
GRACE = timedelta(minutes=5)
TOKEN_DAILY = 2000
STABLE_DAILY = 500_000
STABLE_FORCE_DAILY = 20
STABLE_FORCE_GAP = timedelta(seconds=30)
MAX_JSON_BYTES = 2 * 1024 * 1024
MAX_UPLOADIMG = 1024 * 1024
MAX_MATERIAL = 10 * 1024 * 1024
MAX_THUMB = 64 * 1024
CUSTOM_WINDOW = timedelta(hours=48)
CUSTOM_COUNT = 5
EVENT_WINDOW = timedelta(minutes=1)
EVENT_COUNT = 3
# Events that open the short customer-service window: a menu click, a follow, a scan
# (the menu's scan buttons included). VIEW (a menu link) and unsubscribe open none.
WINDOW_EVENTS = ("CLICK", "subscribe", "SCAN", "scancode_push", "scancode_waitmsg")
MASS_PER_MINUTE = 60

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid media size",
    40007: "invalid media_id",
    40013: "invalid appid",
    40014: "invalid access_token",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41005: "media data missing",
    42001: "access_token expired",
    44002: "empty post data",
    44003: "empty news data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45028: "has no masssend quota",
    45047: "out of response count limit",
    45065: "clientmsgid exist",
    45103: "This API has been unsupported",
    46003: "menu no exist",
    47001: "data format error",
    48001: "api unauthorized",
    53503: "该草稿未通过发布检查",
    53504: "需前往公众平台官网使用草稿",
    53505: "请手动保存成功后再发表",
    53600: "Article ID 无效",
}


class WxError(Exception):
    """A WeChat error answer."""

    def __init__(self, errcode: int, errmsg: str | None = None, **extra: Any) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSG.get(errcode, "error")
        self.extra = extra


def error_body(errcode: int, errmsg: str | None = None) -> dict[str, Any]:
    """WeChat's error JSON, with the rid WeChat appends to errmsg."""
    msg = errmsg or ERRMSG.get(errcode, "error")
    return {
        "errcode": errcode,
        "errmsg": f"{msg} rid: {secrets.token_hex(4)}-{secrets.token_hex(6)}",
    }


def _json(data: dict[str, Any]) -> web.Response:
    return web.json_response(data, dumps=lambda d: json.dumps(d, ensure_ascii=False))


class Call:
    """One API call: the account (from its token), the JSON body, the query, the clock."""

    def __init__(self, request: web.Request, sandbox: Sandbox, account: str) -> None:
        self.request = request
        self.sandbox = sandbox
        self.account = account
        self.body: dict[str, Any] = {}
        self.now = sandbox.clock.now()

    def text(self, key: str, *, required: bool = True, limit: int = 1024, code: int = 47001) -> str:
        """A string field of the body."""
        value = self.body.get(key)
        if value is None or value == "":
            if required:
                raise WxError(code, f"data format error hint: [{key} missing]")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise WxError(47001, f"data format error hint: [{key}]")
        value = str(value)
        if len(value) > limit:
            raise WxError(code, f"data format error hint: [{key} too long]")
        return value

    def number(self, key: str, default: int, low: int, high: int) -> int:
        """An integer field of the body, within [low, high]."""
        value = self.body.get(key, default)
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,9}", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise WxError(47001, f"data format error hint: [{key}]")
        return int(value)


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def api(
    handler: Handler, *, body: str = "json"
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: faults, token check, body parsing, WeChat's error JSON, never a 500."""

    async def route(request: web.Request) -> web.Response:
        sandbox = request.app[SANDBOX]
        decision = sandbox.faults.decide("wechat")
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.hang == "before":
            await sandbox.faults.hang()
            return _json(error_body(-1))
        if decision.errcode is not None:
            return _json(error_body(decision.errcode))
        try:
            account = await check_token(sandbox, request.query.get("access_token", ""))
            call = Call(request, sandbox, account)
            if body == "json" and request.method == "POST":
                call.body = await read_json(request)
            result = await handler(call)
        except WxError as error:
            data = {**error_body(error.errcode, error.errmsg), **error.extra}
            return _json(data)
        except Exception:  # the platform answers -1, never a stack trace
            log.exception("sandbox wechat handler failed", extra={"path": request.path})
            return _json(error_body(-1))
        if decision.hang == "after":
            await sandbox.faults.hang()
            return _json(error_body(-1))
        return _json(
            {"errcode": 0, "errmsg": "ok", **result} if "errcode" not in result else result
        )

    return route


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object body; WeChat answers 44002/47001 for empty or malformed ones."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise WxError(47001, "data format error hint: [post data too large]")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise WxError(47001, "data format error hint: [post data too large]")
    if not raw.strip():
        raise WxError(44002)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WxError(47001) from None
    if not isinstance(data, dict):
        raise WxError(47001)
    return data


async def check_token(sandbox: Sandbox, token: str) -> str:
    """The account a valid token belongs to, or WeChat's token error."""
    if not token:
        raise WxError(41001)
    if len(token) > 160 or not re.fullmatch(r"[A-Za-z0-9_\-]+", token):
        raise WxError(40014)
    async with sandbox.db.sessions() as session:
        row = (
            await session.execute(select(SandboxToken).where(SandboxToken.token == token))
        ).scalar_one_or_none()
    if row is None:
        raise WxError(40001)
    now = sandbox.clock.now()
    if row.superseded_at is not None and now >= row.superseded_at + GRACE:
        raise WxError(40001)
    if now >= row.expires_at:
        raise WxError(42001)
    if row.account not in sandbox.settings.wechat.accounts:
        raise WxError(40001)
    return row.account


# --- tokens ----------------------------------------------------------------------------


def _credentials(sandbox: Sandbox, appid: str, secret: str) -> str:
    if not appid:
        raise WxError(41002)
    account = sandbox.wechat_by_appid(appid)
    if account is None:
        raise WxError(40013)
    if not secret:
        raise WxError(41004)
    expected = sandbox.settings.wechat.accounts[account].app_secret.reveal()
    if not expected or not secrets.compare_digest(expected.encode(), secret.encode()):
        raise WxError(40125)
    return account


async def _issue(session: AsyncSession, sandbox: Sandbox, account: str, kind: str) -> SandboxToken:
    now = sandbox.clock.now()
    # The new token replaces the old ones, which stay valid five more minutes.
    await session.execute(
        update(SandboxToken)
        .where(
            SandboxToken.account == account,
            SandboxToken.kind == kind,
            SandboxToken.superseded_at.is_(None),
        )
        .values(superseded_at=now)
    )
    row = SandboxToken(
        account=account,
        kind=kind,
        token=secrets.token_urlsafe(96)[:128],
        issued_at=now,
        expires_at=now + timedelta(seconds=TOKEN_SECONDS),
        superseded_at=None,
    )
    session.add(row)
    await session.flush()
    return row


def _token_answer(row: SandboxToken, now: Any) -> web.Response:
    left = max(int((row.expires_at - now).total_seconds()), 0)
    return _json({"access_token": row.token, "expires_in": left})


async def get_token(request: web.Request) -> web.Response:
    """``GET cgi-bin/token?grant_type=client_credential&appid=&secret=``."""
    sandbox = request.app[SANDBOX]
    fault = await _fault_only(sandbox)
    if fault is not None:
        return fault
    try:
        if request.query.get("grant_type") != "client_credential":
            raise WxError(40002)
        account = _credentials(
            sandbox, request.query.get("appid", ""), request.query.get("secret", "")
        )
        now = sandbox.clock.now()
        async with sandbox.db.transaction() as session:
            if not await take_quota(
                session, f"wechat:{account}", "token", day_key(now), TOKEN_DAILY, now
            ):
                raise WxError(45009)
            row = await _issue(session, sandbox, account, "token")
    except WxError as error:
        return _json(error_body(error.errcode, error.errmsg))
    return _token_answer(row, now)


async def stable_token(request: web.Request) -> web.Response:
    """``POST cgi-bin/stable_token``: the same token until 5 min before expiry."""
    sandbox = request.app[SANDBOX]
    fault = await _fault_only(sandbox)
    if fault is not None:
        return fault
    try:
        body = await read_json(request)
        if body.get("grant_type") != "client_credential":
            raise WxError(40002)
        appid, secret = body.get("appid", ""), body.get("secret", "")
        if not isinstance(appid, str) or not isinstance(secret, str):
            raise WxError(47001)
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise WxError(47001, "data format error hint: [force_refresh must be a boolean]")
        account = _credentials(sandbox, appid, secret)
        now = sandbox.clock.now()
        async with sandbox.db.transaction() as session:
            scope = f"wechat:{account}"
            if not await take_quota(session, scope, "stable", day_key(now), STABLE_DAILY, now):
                raise WxError(45009)
            current = (
                await session.execute(
                    select(SandboxToken)
                    .where(
                        SandboxToken.account == account,
                        SandboxToken.kind == "stable",
                        SandboxToken.superseded_at.is_(None),
                    )
                    .order_by(SandboxToken.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            if force:
                refused = await take_quota_or_why(
                    session,
                    scope,
                    "stable_force",
                    day_key(now),
                    STABLE_FORCE_DAILY,
                    now,
                    min_gap=STABLE_FORCE_GAP,
                )
                # Over 20 a day is the daily quota (45009); closer than 30 s, too frequent.
                if refused == "limit":
                    raise WxError(45009)
                if refused == "gap":
                    raise WxError(45011)
                row = await _issue(session, sandbox, account, "stable")
            elif current is None or current.expires_at - now <= GRACE:
                row = await _issue(session, sandbox, account, "stable")
            else:
                row = current
    except WxError as error:
        return _json(error_body(error.errcode, error.errmsg))
    return _token_answer(row, now)


async def _fault_only(sandbox: Sandbox) -> web.Response | None:
    decision = sandbox.faults.decide("wechat")
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.hang is not None:
        await sandbox.faults.hang()
        return _json(error_body(-1))
    if decision.errcode is not None:
        return _json(error_body(decision.errcode))
    return None


# --- media -----------------------------------------------------------------------------


async def _read_media(call: Call, limit: int) -> tuple[bytes, str]:
    request = call.request
    if not request.content_type.startswith("multipart/"):
        raise WxError(41005)
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise WxError(40006)
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise WxError(41005)
            if getattr(part, "name", None) != "media":
                continue
            data = bytearray()
            while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                data.extend(chunk)
                if len(data) > limit:
                    raise WxError(40006)
            break
    except WxError:
        raise
    except (ValueError, AssertionError, web.HTTPException):
        raise WxError(41005) from None
    if not data:
        raise WxError(41005)
    kind = sniff_image(bytes(data))
    if kind is None:
        raise WxError(40005)
    return bytes(data), kind


def media_url(request: web.Request, media_id: str) -> str:
    """The absolute URL under which the sandbox serves an uploaded image."""
    return f"{request.url.origin()}/sandbox/wechat/mmbiz/{media_id}"


async def uploadimg(call: Call) -> dict[str, Any]:
    """``media/uploadimg``: jpg/png < 1 MB for article bodies; returns its URL."""
    data, kind = await _read_media(call, MAX_UPLOADIMG - 1)
    if kind not in ("image/jpeg", "image/png"):
        raise WxError(40005)
    media_id = "img" + new_media_id()[:40]
    async with call.sandbox.db.transaction() as session:
        session.add(
            SandboxMedia(
                account=call.account,
                media_id=media_id,
                kind="uploadimg",
                content_type=kind,
                data=data,
                created_at=call.now,
            )
        )
    return {"url": media_url(call.request, media_id)}


async def add_material(call: Call) -> dict[str, Any]:
    """``material/add_material?type=image|thumb``: a permanent image; returns media_id."""
    kind = call.request.query.get("type", "")
    if kind not in ("image", "thumb", "voice", "video"):
        raise WxError(40004)
    if kind in ("voice", "video"):
        raise WxError(40004, "invalid media type hint: [the sandbox keeps images only]")
    data, mime = await _read_media(call, MAX_MATERIAL if kind == "image" else MAX_THUMB)
    if kind == "thumb" and mime != "image/jpeg":
        raise WxError(40005)
    media_id = new_media_id()
    async with call.sandbox.db.transaction() as session:
        session.add(
            SandboxMedia(
                account=call.account,
                media_id=media_id,
                kind=kind,
                content_type=mime,
                data=data,
                created_at=call.now,
            )
        )
    return {"media_id": media_id, "url": media_url(call.request, media_id)}


async def retired(call: Call) -> dict[str, Any]:
    """``material/add_news`` and ``update_news``: retired since 2022 (45103)."""
    raise WxError(45103)


async def serve_media(request: web.Request) -> web.StreamResponse:
    """The image behind an mmbiz URL."""
    sandbox = request.app[SANDBOX]
    media_id = request.match_info["media_id"]
    async with sandbox.db.sessions() as session:
        row = (
            await session.execute(select(SandboxMedia).where(SandboxMedia.media_id == media_id))
        ).scalar_one_or_none()
    if row is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=row.data,
        content_type=row.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"},
    )


# --- drafts ----------------------------------------------------------------------------

_MMBIZ = re.compile(r"^https?://[^/\s]+/sandbox/wechat/mmbiz/([A-Za-z0-9_\-]{1,64})$")


async def _media_ids(session: AsyncSession, account: str, kinds: tuple[str, ...]) -> set[str]:
    rows = await session.execute(
        select(SandboxMedia.media_id).where(
            SandboxMedia.account == account, SandboxMedia.kind.in_(kinds)
        )
    )
    return set(rows.scalars())


async def _checked_articles(call: Call, raw: object) -> list[dict[str, Any]]:
    async with call.sandbox.db.sessions() as session:
        images = await _media_ids(session, call.account, ("uploadimg", "image"))
        thumbs = await _media_ids(session, call.account, ("image", "thumb"))

    def image_ok(url: str) -> bool:
        match = _MMBIZ.match(url)
        return bool(match) and match.group(1) in images  # type: ignore[union-attr]

    try:
        return check_articles(raw, image_ok, thumbs.__contains__)
    except ArticleError as error:
        raise WxError(error.errcode, error.errmsg) from None


async def draft_add(call: Call) -> dict[str, Any]:
    """``draft/add {articles}`` -> media_id."""
    articles = await _checked_articles(call, call.body.get("articles"))
    if any(a["need_open_comment"] for a in articles) and not call.sandbox.has_comments(
        call.account
    ):
        raise WxError(88000, "without comment privilege")
    media_id = new_media_id()
    async with call.sandbox.db.transaction() as session:
        session.add(
            SandboxDraft(
                account=call.account,
                media_id=media_id,
                articles={"news_item": articles},
                created_at=call.now,
                updated_at=call.now,
            )
        )
    return {"media_id": media_id}


async def _draft(session: AsyncSession, account: str, media_id: str) -> SandboxDraft:
    row = (
        await session.execute(
            select(SandboxDraft).where(
                SandboxDraft.media_id == media_id, SandboxDraft.account == account
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise WxError(40007)
    return row


def _items(
    request: web.Request, articles: dict[str, Any], url_of: Any = None
) -> list[dict[str, Any]]:
    items = []
    for index, article in enumerate(articles.get("news_item", [])):
        item = dict(article)
        item["thumb_url"] = media_url(request, article["thumb_media_id"])
        item["url"] = url_of(index) if url_of else ""
        items.append(item)
    return items


async def draft_get(call: Call) -> dict[str, Any]:
    """``draft/get {media_id}``."""
    media_id = call.text("media_id", limit=64, code=40007)
    async with call.sandbox.db.sessions() as session:
        row = await _draft(session, call.account, media_id)
    return {"news_item": _items(call.request, row.articles, _draft_url(call.request, row))}


def _draft_url(request: web.Request, row: SandboxDraft) -> Callable[[int], str]:
    return lambda i: f"{request.url.origin()}/sandbox/wechat/draft/{row.media_id}?idx={i + 1}"


async def draft_delete(call: Call) -> dict[str, Any]:
    """``draft/delete {media_id}``."""
    media_id = call.text("media_id", limit=64, code=40007)
    async with call.sandbox.db.transaction() as session:
        row = await _draft(session, call.account, media_id)
        await session.delete(row)
    return {}


async def draft_update(call: Call) -> dict[str, Any]:
    """``draft/update {media_id, index, articles}``: replace one article."""
    media_id = call.text("media_id", limit=64, code=40007)
    index = call.number("index", 0, 0, 7)
    (article,) = await _checked_articles(call, [call.body.get("articles")])
    async with call.sandbox.db.transaction() as session:
        row = await _draft(session, call.account, media_id)
        items = list(row.articles.get("news_item", []))
        if index >= len(items):
            raise WxError(47001, "data format error hint: [index]")
        items[index] = article
        row.articles = {"news_item": items}
        row.updated_at = call.now
    return {}


async def draft_count(call: Call) -> dict[str, Any]:
    """``draft/count``."""
    async with call.sandbox.db.sessions() as session:
        total = await session.scalar(
            select(func.count())
            .select_from(SandboxDraft)
            .where(SandboxDraft.account == call.account)
        )
    return {"total_count": int(total or 0)}


async def draft_batchget(call: Call) -> dict[str, Any]:
    """``draft/batchget {offset, count (1-20), no_content}``."""
    offset = call.number("offset", 0, 0, 10**7)
    count = call.number("count", 20, 1, 20)
    no_content = call.number("no_content", 0, 0, 1)
    async with call.sandbox.db.sessions() as session:
        where = SandboxDraft.account == call.account
        total = await session.scalar(select(func.count()).select_from(SandboxDraft).where(where))
        rows = (
            (
                await session.execute(
                    select(SandboxDraft)
                    .where(where)
                    .order_by(SandboxDraft.id.desc())
                    .offset(offset)
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
    item = []
    for row in rows:
        news = _items(call.request, row.articles, _draft_url(call.request, row))
        if no_content:
            for n in news:
                n.pop("content", None)
        item.append(
            {
                "media_id": row.media_id,
                "content": {"news_item": news},
                "update_time": int(row.updated_at.timestamp()),
            }
        )
    return {"total_count": int(total or 0), "item_count": len(item), "item": item}


# --- free publishing ---------------------------------------------------------------------


def article_url(request: web.Request, article_id: str, index: int) -> str:
    """The public URL of one published article (1-based index, as WeChat's idx)."""
    return f"{request.url.origin()}/sandbox/wechat/s/{article_id}?idx={index}"


async def freepublish_submit(call: Call) -> dict[str, Any]:
    """``freepublish/submit {media_id}`` -> {publish_id, msg_data_id}; the job runs later."""
    if not call.sandbox.is_verified(call.account):
        raise WxError(48001)
    media_id = call.text("media_id", limit=64, code=40007)
    async with call.sandbox.db.transaction() as session:
        draft = await _draft(session, call.account, media_id)
        refused = call.sandbox.faults.submit_error()
        if refused is not None:
            raise WxError(refused)
        outcome = call.sandbox.faults.publish_outcome()
        row = SandboxPublish(
            account=call.account,
            publish_id=new_id(10),
            msg_data_id=new_id(10),
            article_id=secrets.token_urlsafe(36)[:48],
            media_id=media_id,
            articles=draft.articles,
            status=1,
            outcome=outcome,
            submitted_at=call.now,
            finish_at=call.now
            + timedelta(seconds=call.sandbox.settings.sandbox.publish_delay_seconds),
            event_sent=False,
        )
        session.add(row)
    return {"publish_id": row.publish_id, "msg_data_id": row.msg_data_id}


async def finish_due(sandbox: Sandbox, session: AsyncSession | None = None) -> None:
    """Settle publish jobs whose time has come (their outcome becomes their status); the
    draft of a job that succeeded leaves the draft box, as in WeChat's 草稿箱."""
    if session is None:
        async with sandbox.db.transaction() as own:
            await finish_due(sandbox, own)
        return
    settled = await session.execute(
        update(SandboxPublish)
        .where(SandboxPublish.status == 1, SandboxPublish.finish_at <= sandbox.clock.now())
        .values(status=SandboxPublish.outcome)
    )
    if not settled.rowcount:  # type: ignore[attr-defined]
        return
    # A failed job keeps its draft, so the office can fix it and submit again.
    published = select(SandboxPublish.media_id).where(
        SandboxPublish.status == 0, SandboxPublish.account == SandboxDraft.account
    )
    await session.execute(
        delete(SandboxDraft)
        .where(SandboxDraft.media_id.in_(published))
        .execution_options(synchronize_session=False)
    )


async def _publish(session: AsyncSession, account: str, publish_id: str) -> SandboxPublish:
    row = (
        await session.execute(
            select(SandboxPublish).where(
                SandboxPublish.publish_id == publish_id, SandboxPublish.account == account
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise WxError(53600, "invalid publish_id")
    return row


def publish_detail(request: web.Request, row: SandboxPublish) -> dict[str, Any]:
    """``freepublish/get``'s answer for a job."""
    data: dict[str, Any] = {"publish_id": row.publish_id, "publish_status": row.status}
    if row.status in (0, 5):
        count = len(row.articles.get("news_item", []))
        data["article_id"] = row.article_id
        data["article_detail"] = {
            "count": count,
            "item": [
                {"idx": i + 1, "article_url": article_url(request, row.article_id, i + 1)}
                for i in range(count)
            ],
        }
        data["fail_idx"] = []
    elif row.status != 1:
        data["fail_idx"] = list(range(1, len(row.articles.get("news_item", [])) + 1))
    return data


async def freepublish_get(call: Call) -> dict[str, Any]:
    """``freepublish/get {publish_id}``."""
    publish_id = call.text("publish_id", limit=32, code=53600)
    await finish_due(call.sandbox)
    async with call.sandbox.db.sessions() as session:
        row = await _publish(session, call.account, publish_id)
    return publish_detail(call.request, row)


def _published_items(
    request: web.Request, row: SandboxPublish, no_content: bool
) -> list[dict[str, Any]]:
    deleted = set(row.articles.get("deleted", []))
    items = _items(request, row.articles, lambda i: article_url(request, row.article_id, i + 1))
    for index, item in enumerate(items):
        item["is_deleted"] = index + 1 in deleted
        if no_content:
            item.pop("content", None)
    return items


async def freepublish_batchget(call: Call) -> dict[str, Any]:
    """``freepublish/batchget {offset, count (1-20), no_content}``: published articles."""
    offset = call.number("offset", 0, 0, 10**7)
    count = call.number("count", 20, 1, 20)
    no_content = bool(call.number("no_content", 0, 0, 1))
    await finish_due(call.sandbox)
    where = (SandboxPublish.account == call.account) & (SandboxPublish.status == 0)
    async with call.sandbox.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(SandboxPublish).where(where))
        rows = (
            (
                await session.execute(
                    select(SandboxPublish)
                    .where(where)
                    .order_by(SandboxPublish.id.desc())
                    .offset(offset)
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
    item = [
        {
            "article_id": row.article_id,
            "content": {
                "news_item": _published_items(call.request, row, no_content),
                "create_time": int(row.finish_at.timestamp()),
                "update_time": int(row.finish_at.timestamp()),
            },
            "update_time": int(row.finish_at.timestamp()),
        }
        for row in rows
    ]
    return {"total_count": int(total or 0), "item_count": len(item), "item": item}


async def _article(session: AsyncSession, account: str, article_id: str) -> SandboxPublish:
    row = (
        await session.execute(
            select(SandboxPublish).where(
                SandboxPublish.article_id == article_id,
                SandboxPublish.account == account,
                SandboxPublish.status == 0,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise WxError(53600)
    return row


async def freepublish_getarticle(call: Call) -> dict[str, Any]:
    """``freepublish/getarticle {article_id}``."""
    article_id = call.text("article_id", limit=64, code=53600)
    await finish_due(call.sandbox)
    async with call.sandbox.db.sessions() as session:
        row = await _article(session, call.account, article_id)
    return {"news_item": _published_items(call.request, row, False)}


async def freepublish_delete(call: Call) -> dict[str, Any]:
    """``freepublish/delete {article_id, index}``: index 0 (or absent) deletes all."""
    article_id = call.text("article_id", limit=64, code=53600)
    index = call.number("index", 0, 0, 8)
    async with call.sandbox.db.transaction() as session:
        row = await _article(session, call.account, article_id)
        count = len(row.articles.get("news_item", []))
        if index > count:
            raise WxError(47001, "data format error hint: [index]")
        deleted = set(row.articles.get("deleted", []))
        deleted |= set(range(1, count + 1)) if index == 0 else {index}
        row.articles = {**row.articles, "deleted": sorted(deleted)}
        if len(deleted) >= count:
            row.status = 5
    return {}


# --- mass send ---------------------------------------------------------------------------


def mass_figures(sandbox: Sandbox, account: str, msg_id: str) -> tuple[int, int, int, int]:
    """TotalCount, FilterCount, SentCount, ErrorCount for one mass send (deterministic)."""
    total = len(sandbox.followers(account))
    seed = int(msg_id[-6:]) if msg_id[-6:].isdigit() else 0
    # About 1 % are filtered (blocked the account, over their monthly quota), 0.2 % fail.
    filtered = total - (total // 100 + seed % 7)
    errors = total // 500 + seed % 3
    filtered = max(filtered, 0)
    return total, filtered, max(filtered - errors, 0), min(errors, filtered)


def _media_of(call: Call) -> tuple[str, str]:
    msgtype = call.text("msgtype", limit=16)
    if msgtype == "mpnews":
        body = call.body.get("mpnews")
        if not isinstance(body, dict) or not isinstance(body.get("media_id"), str):
            raise WxError(40007)
        return msgtype, body["media_id"]
    if msgtype == "text":
        body = call.body.get("text")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content or len(content.encode()) > 2048:
            raise WxError(47001, "data format error hint: [text.content]")
        return msgtype, content
    raise WxError(40008, "invalid message type")


async def mass_sendall(call: Call) -> dict[str, Any]:
    """``message/mass/sendall``: quota per account type, clientmsgid dedup (45065)."""
    sandbox = call.sandbox
    if not sandbox.is_verified(call.account):
        raise WxError(48001)
    flt = call.body.get("filter")
    if not isinstance(flt, dict) or not isinstance(flt.get("is_to_all", False), bool):
        raise WxError(47001, "data format error hint: [filter]")
    msgtype, media = _media_of(call)
    clientmsgid = call.text("clientmsgid", required=False, limit=64)
    # Every call counts against the per-minute quota, refused or not: its own transaction.
    async with sandbox.db.transaction() as session:
        if not await take_quota(
            session,
            f"wechat:{call.account}",
            "mass_calls",
            minute_key(call.now),
            MASS_PER_MINUTE,
            call.now,
        ):
            raise WxError(45011)
    async with sandbox.db.transaction() as session:
        if msgtype == "mpnews":
            await _draft(session, call.account, media)
        if clientmsgid:
            earlier = (
                await session.execute(
                    select(SandboxMassSend).where(
                        SandboxMassSend.account == call.account,
                        SandboxMassSend.clientmsgid == clientmsgid,
                    )
                )
            ).scalar_one_or_none()
            if earlier is not None:
                raise WxError(45065, msg_id=int(earlier.msg_id))
        scope = f"wechat:{call.account}"
        if sandbox.is_subscription(call.account):
            ok = await take_quota(session, scope, "mass", day_key(call.now), 1, call.now)
        else:
            ok = await take_quota(session, scope, "mass", month_key(call.now), 4, call.now)
        if not ok:
            raise WxError(45028)
        msg_id = new_id(10)
        total, filtered, sent, errors = mass_figures(sandbox, call.account, msg_id)
        row = SandboxMassSend(
            account=call.account,
            msg_id=msg_id,
            msg_data_id=new_id(10),
            clientmsgid=clientmsgid or None,
            media_id=media[:64],
            total=total,
            filtered=filtered,
            sent=sent,
            errors=errors,
            sent_at=call.now,
            finish_at=call.now + timedelta(seconds=sandbox.settings.sandbox.publish_delay_seconds),
            event_sent=False,
        )
        session.add(row)
    return {
        "errcode": 0,
        "errmsg": "send job submission success",
        "msg_id": int(msg_id),
        "msg_data_id": int(row.msg_data_id),
    }


async def mass_get(call: Call) -> dict[str, Any]:
    """``message/mass/get {msg_id}``."""
    msg_id = call.text("msg_id", limit=32)
    async with call.sandbox.db.sessions() as session:
        row = (
            await session.execute(
                select(SandboxMassSend).where(
                    SandboxMassSend.msg_id == msg_id, SandboxMassSend.account == call.account
                )
            )
        ).scalar_one_or_none()
    if row is None:
        raise WxError(40003, "invalid msg_id")
    status = "SEND_SUCCESS" if call.now >= row.finish_at else "SENDING"
    return {"msg_id": int(row.msg_id), "msg_status": status}


async def _record_out(call: Call, openid: str, kind: str, content: str) -> None:
    async with call.sandbox.db.transaction() as session:
        session.add(
            SandboxMessage(
                account=call.account,
                openid=openid,
                direction="out",
                kind=kind,
                content=content,
                msg_id=None,
                created_at=call.now,
            )
        )


def _touser(call: Call) -> str:
    openid = call.text("touser", limit=64, code=40003)
    if not call.sandbox.is_follower(call.account, openid):
        raise WxError(40003)
    return openid


async def mass_preview(call: Call) -> dict[str, Any]:
    """``message/mass/preview``: one follower sees the message (100/day)."""
    openid = _touser(call)
    msgtype, media = _media_of(call)
    async with call.sandbox.db.transaction() as session:
        if msgtype == "mpnews":
            draft = await _draft(session, call.account, media)
            shown = "[图文预览] " + " / ".join(a["title"] for a in draft.articles["news_item"])
        else:
            shown = media
        if not await take_quota(
            session, f"wechat:{call.account}", "preview", day_key(call.now), 100, call.now
        ):
            raise WxError(45009)
    await _record_out(call, openid, "mass", shown)
    return {"errcode": 0, "errmsg": "preview success", "msg_id": int(new_id(10))}


# --- messages to one citizen ---------------------------------------------------------------


async def custom_send(call: Call) -> dict[str, Any]:
    """``message/custom/send``: within 48 h of the citizen's last message, 5 at most."""
    openid = _touser(call)
    msgtype = call.text("msgtype", limit=32)
    body = call.body.get(msgtype)
    if not isinstance(body, dict):
        raise WxError(47001, f"data format error hint: [{msgtype}]")
    if msgtype == "text":
        content = body.get("content")
        if not isinstance(content, str) or not content or len(content.encode()) > 2048:
            raise WxError(45002, "content size out of limit")
        shown = content
    elif msgtype == "news":
        articles = body.get("articles")
        if (
            not isinstance(articles, list)
            or len(articles) != 1
            or not isinstance(articles[0], dict)
        ):
            raise WxError(47001, "data format error hint: [news.articles]")
        shown = f"[图文] {articles[0].get('title', '')} {articles[0].get('url', '')}".strip()
    elif msgtype in (
        "image",
        "voice",
        "mpnews",
        "mpnewsarticle",
        "link",
        "menu",
        "miniprogrampage",
    ):
        shown = f"[{msgtype}]"
    else:
        raise WxError(40008, "invalid message type")
    async with call.sandbox.db.transaction() as session:
        refused = await _window_refusal(session, call, openid)
        if refused is not None:
            raise WxError(refused)
        session.add(
            SandboxMessage(
                account=call.account,
                openid=openid,
                direction="out",
                kind="custom",
                content=shown,
                msg_id=None,
                created_at=call.now,
            )
        )
    return {}


def _event_like(name: str) -> Any:
    # Inbound events are recorded as "[Event] key" (sandbox.callback.citizen_send).
    return SandboxMessage.content.startswith(f"[{name}]", autoescape=True)


async def _last_in(
    session: AsyncSession, call: Call, openid: str, *conditions: Any
) -> SandboxMessage | None:
    stmt = (
        select(SandboxMessage)
        .where(
            SandboxMessage.account == call.account,
            SandboxMessage.openid == openid,
            SandboxMessage.direction == "in",
            *conditions,
        )
        .order_by(SandboxMessage.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _open_windows(
    session: AsyncSession, call: Call, openid: str
) -> list[tuple[SandboxMessage, int]]:
    """The customer-service windows open now: (what opened it, how many sends it allows).

    The citizen's latest message opens 48 h for 5 sends; the latest menu click, follow or
    scan opens 1 min for 3. Both can be open at once. Nothing before an unfollow counts.
    """
    left = await _last_in(session, call, openid, _event_like("unsubscribe"))
    after = [SandboxMessage.id > left.id] if left is not None else []
    windows: list[tuple[SandboxMessage, int]] = []
    message = await _last_in(session, call, openid, SandboxMessage.kind != "event", *after)
    if message is not None and call.now - message.created_at <= CUSTOM_WINDOW:
        windows.append((message, CUSTOM_COUNT))
    event = await _last_in(
        session,
        call,
        openid,
        SandboxMessage.kind == "event",
        or_(*(_event_like(name) for name in WINDOW_EVENTS)),
        *after,
    )
    if event is not None and call.now - event.created_at <= EVENT_WINDOW:
        windows.append((event, EVENT_COUNT))
    return windows


async def _window_refusal(session: AsyncSession, call: Call, openid: str) -> int | None:
    """None when a send is allowed; 45015 with no window open, 45047 when all are used up."""
    windows = await _open_windows(session, call, openid)
    if not windows:
        return 45015
    for opened, limit in windows:
        sent = await session.scalar(
            select(func.count())
            .select_from(SandboxMessage)
            .where(
                SandboxMessage.account == call.account,
                SandboxMessage.openid == openid,
                SandboxMessage.kind == "custom",
                SandboxMessage.id > opened.id,
            )
        )
        if int(sent or 0) < limit:
            return None
    return 45047


async def template_send(call: Call) -> dict[str, Any]:
    """``message/template/send``: verified service accounts only."""
    if call.sandbox.is_subscription(call.account) or not call.sandbox.is_verified(call.account):
        raise WxError(48001)
    openid = _touser(call)
    template_id = call.text("template_id", limit=64, code=40037)
    data = call.body.get("data", {})
    if not isinstance(data, dict):
        raise WxError(47001, "data format error hint: [data]")
    lines = []
    for key, value in list(data.items())[:20]:
        text = value.get("value") if isinstance(value, dict) else value
        lines.append(f"{key}: {str(text)[:200]}")
    url = call.text("url", required=False, limit=1024)
    shown = f"[模板消息 {template_id}] " + "；".join(lines) + (f" {url}" if url else "")
    await _record_out(call, openid, "template", shown)
    return {"msgid": int(new_id(10))}


# --- menu and users -----------------------------------------------------------------------

_BUTTON_TYPES = {
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "article_id",
    "article_view_limited",
    "miniprogram",
}


def _check_button(button: object, top: bool) -> None:
    if not isinstance(button, dict):
        raise WxError(47001, "data format error hint: [button]")
    name = button.get("name")
    if not isinstance(name, str) or not name or len(name.encode()) > (16 if top else 60):
        raise WxError(40018)
    sub = button.get("sub_button")
    if top and sub is not None and sub != []:
        if not isinstance(sub, list) or not 1 <= len(sub) <= 5:
            raise WxError(40023)
        for child in sub:
            _check_button(child, top=False)
        return
    kind = button.get("type")
    if kind not in _BUTTON_TYPES:
        raise WxError(40017)
    if kind == "click" or kind.startswith(("scancode", "pic_", "location")):
        key = button.get("key")
        if not isinstance(key, str) or not key or len(key.encode()) > 128:
            raise WxError(40019)
    if kind == "view":
        url = button.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://", url) or len(url.encode()) > 1024:
            raise WxError(40020)


async def menu_create(call: Call) -> dict[str, Any]:
    """``menu/create {button}``: 1-3 buttons of 1-5 sub-buttons, WeChat's size limits."""
    buttons = call.body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise WxError(40016)
    for button in buttons:
        _check_button(button, top=True)
    async with call.sandbox.db.transaction() as session:
        row = await session.get(SandboxMenu, call.account)
        if row is None:
            session.add(
                SandboxMenu(account=call.account, menu={"button": buttons}, updated_at=call.now)
            )
        else:
            row.menu = {"button": buttons}
            row.updated_at = call.now
    return {}


async def menu_get(call: Call) -> dict[str, Any]:
    """``menu/get``."""
    async with call.sandbox.db.sessions() as session:
        row = await session.get(SandboxMenu, call.account)
    if row is None:
        raise WxError(46003)
    return {"menu": row.menu}


async def menu_delete(call: Call) -> dict[str, Any]:
    """``menu/delete``."""
    async with call.sandbox.db.transaction() as session:
        row = await session.get(SandboxMenu, call.account)
        if row is not None:
            await session.delete(row)
    return {}


async def user_get(call: Call) -> dict[str, Any]:
    """``user/get?next_openid=``: followers, 10,000 per page."""
    followers = call.sandbox.followers(call.account)
    after = call.request.query.get("next_openid", "")
    start = 0
    if after:
        if not call.sandbox.is_follower(call.account, after):
            raise WxError(40003)
        start = followers.index(after) + 1
    page = list(followers[start : start + 10_000])
    data: dict[str, Any] = {"total": len(followers), "count": len(page)}
    if page:
        data["data"] = {"openid": page}
    data["next_openid"] = page[-1] if page else ""
    return data


async def user_info(call: Call) -> dict[str, Any]:
    """``user/info?openid=&lang=``."""
    openid = call.request.query.get("openid", "")
    if call.request.query.get("lang", "zh_CN") not in ("zh_CN", "zh_TW", "en"):
        raise WxError(40005, "invalid lang")
    if not call.sandbox.is_follower(call.account, openid):
        raise WxError(40003)
    index = call.sandbox.followers(call.account).index(openid)
    return {
        "subscribe": 1,
        "openid": openid,
        "language": "zh_CN",
        "subscribe_time": 1_600_000_000 + index * 3_600,
        "unionid": "",
        "remark": "",
        "groupid": 0,
        "tagid_list": [],
        "subscribe_scene": "ADD_SCENE_SEARCH",
        "qr_scene": 0,
        "qr_scene_str": "",
    }


# --- events after jobs finish ------------------------------------------------------------


async def push_events(sandbox: Sandbox, origin: str) -> int:
    """Settle due jobs and push PUBLISHJOBFINISH / MASSSENDJOBFINISH once each."""
    now = sandbox.clock.now()
    pushes: list[tuple[str, str]] = []
    # One transaction per round: on SQLite every transaction takes the write lock.
    async with sandbox.db.transaction() as session:
        await finish_due(sandbox, session)
        pubs = (
            (
                await session.execute(
                    select(SandboxPublish)
                    .where(SandboxPublish.status != 1, SandboxPublish.event_sent.is_(False))
                    .limit(50)
                )
            )
            .scalars()
            .all()
        )
        for row in pubs:
            claimed = await session.execute(
                update(SandboxPublish)
                .where(SandboxPublish.id == row.id, SandboxPublish.event_sent.is_(False))
                .values(event_sent=True)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            pushes.append((row.account, publish_event(sandbox, origin, row)))
        masses = (
            (
                await session.execute(
                    select(SandboxMassSend)
                    .where(SandboxMassSend.finish_at <= now, SandboxMassSend.event_sent.is_(False))
                    .limit(50)
                )
            )
            .scalars()
            .all()
        )
        for mass in masses:
            claimed = await session.execute(
                update(SandboxMassSend)
                .where(SandboxMassSend.id == mass.id, SandboxMassSend.event_sent.is_(False))
                .values(event_sent=True)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            pushes.append((mass.account, mass_event(sandbox, mass)))
    for account, xml in pushes:
        if account in sandbox.settings.wechat.accounts:
            sandbox.spawn(callback.push_quietly(sandbox, account, xml))
    return len(pushes)


def publish_event(sandbox: Sandbox, origin: str, row: SandboxPublish) -> str:
    """The PUBLISHJOBFINISH event XML for a settled job."""
    inner = [
        "<PublishEventInfo>",
        f"<publish_id>{row.publish_id}</publish_id>",
        f"<publish_status>{row.status}</publish_status>",
    ]
    count = len(row.articles.get("news_item", []))
    if row.status == 0:
        inner.append(f"<article_id>{callback.cdata(row.article_id)}</article_id>")
        inner.append(f"<article_detail><count>{count}</count>")
        for i in range(1, count + 1):
            url = f"{origin}/sandbox/wechat/s/{row.article_id}?idx={i}"
            inner.append(
                f"<item><idx>{i}</idx><article_url>{callback.cdata(url)}</article_url></item>"
            )
        inner.append("</article_detail>")
    else:
        inner.append(
            "<fail_idx>" + "".join(f"<item>{i}</item>" for i in range(1, count + 1)) + "</fail_idx>"
        )
    inner.append("</PublishEventInfo>")
    return callback.event_xml(sandbox, row.account, "PUBLISHJOBFINISH", "".join(inner))


def mass_event(sandbox: Sandbox, row: SandboxMassSend) -> str:
    """The MASSSENDJOBFINISH event XML."""
    inner = (
        f"<MsgID>{row.msg_id}</MsgID><Status>{callback.cdata('send success')}</Status>"
        f"<TotalCount>{row.total}</TotalCount><FilterCount>{row.filtered}</FilterCount>"
        f"<SentCount>{row.sent}</SentCount><ErrorCount>{row.errors}</ErrorCount>"
    )
    return callback.event_xml(sandbox, row.account, "MASSSENDJOBFINISH", inner)


ROUTES: dict[str, tuple[str, Handler, str]] = {
    "media/uploadimg": ("POST", uploadimg, "raw"),
    "material/add_material": ("POST", add_material, "raw"),
    "material/add_news": ("POST", retired, "raw"),
    "material/update_news": ("POST", retired, "raw"),
    "draft/add": ("POST", draft_add, "json"),
    "draft/get": ("POST", draft_get, "json"),
    "draft/delete": ("POST", draft_delete, "json"),
    "draft/update": ("POST", draft_update, "json"),
    "draft/count": ("GET", draft_count, "json"),
    "draft/batchget": ("POST", draft_batchget, "json"),
    "freepublish/submit": ("POST", freepublish_submit, "json"),
    "freepublish/get": ("POST", freepublish_get, "json"),
    "freepublish/batchget": ("POST", freepublish_batchget, "json"),
    "freepublish/getarticle": ("POST", freepublish_getarticle, "json"),
    "freepublish/delete": ("POST", freepublish_delete, "json"),
    "message/mass/sendall": ("POST", mass_sendall, "json"),
    "message/mass/preview": ("POST", mass_preview, "json"),
    "message/mass/get": ("POST", mass_get, "json"),
    "message/custom/send": ("POST", custom_send, "json"),
    "message/template/send": ("POST", template_send, "json"),
    "menu/create": ("POST", menu_create, "json"),
    "menu/get": ("GET", menu_get, "json"),
    "menu/delete": ("GET", menu_delete, "json"),
    "user/get": ("GET", user_get, "json"),
    "user/info": ("GET", user_info, "json"),
}


def add_routes(app: web.Application, prefix: str = "/sandbox/wechat") -> None:
    """Mount the WeChat stand-in's routes."""
    base = f"{prefix}/cgi-bin"
    app.router.add_get(f"{base}/token", get_token)
    app.router.add_post(f"{base}/stable_token", stable_token)
    for path, (method, handler, body) in ROUTES.items():
        # GET endpoints take no body, even when a client sends them as POST.
        route = api(handler, body="none" if method == "GET" else body)
        app.router.add_route(method, f"{base}/{path}", route)
        # wechatpy and others sometimes use the other verb; WeChat accepts both for GETs.
        if method == "GET":
            app.router.add_route("POST", f"{base}/{path}", route)
    app.router.add_get(prefix + "/mmbiz/{media_id:[A-Za-z0-9_\\-]{1,64}}", serve_media)
