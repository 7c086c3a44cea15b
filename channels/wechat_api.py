"""The WeChat Official Account HTTP API, spoken with aiohttp (wechatpy's client is
synchronous and hard-codes the real hosts).

Every call goes through :meth:`WeChatAPI.call`: the shared token is attached, a token
error (40001/40014/42001) triggers at most one refresh and one retry, and every failure
comes back as a typed error (:class:`TransientError` with ``retry_after``,
:class:`PermanentError`, :class:`ConfigurationError`). The access token and the AppSecret
never appear in an error message or a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from channels.tokens import TokenHolder
from govcast.settings import Secret
from publisher.orm import utcnow
from publisher.outcomes import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    TransientError,
    WaitForWindow,
)

log = logging.getLogger("govcast.channels")

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
_ZONE = ZoneInfo("Asia/Shanghai")
_MAX_RESPONSE_BYTES = 8 * 1024 * 1024

# errcode -> (kind, Chinese text staff can read). kind: transient | day | minute | config
# | permanent. Codes not listed are permanent with the platform's own errmsg.
_CODES: dict[int, tuple[str, str]] = {
    -1: ("transient", "系统繁忙，稍后重试"),
    40001: ("transient", "access_token 无效或不是最新"),
    40014: ("transient", "access_token 不合法"),
    42001: ("transient", "access_token 已过期"),
    40013: ("config", "AppID 无效，请检查 app_id 设置"),
    40125: ("config", "AppSecret 无效，请检查 app_secret 设置"),
    40164: ("config", "调用接口的 IP 不在公众号白名单中"),
    41001: ("config", "缺少 access_token"),
    45009: ("day", "接口调用次数已达今日上限"),
    45011: ("minute", "接口调用过于频繁（每分钟限额）"),
    45028: ("quota", "群发配额已用完"),
    45047: ("permanent", "客服消息下发条数超过上限"),
    45015: ("permanent", "回复时间超过限制（48 小时客服窗口）"),
    45065: ("permanent", "相同 clientmsgid 已存在群发记录"),
    45103: ("permanent", "该接口已下线（平台已停用）"),
    48001: (
        "config",
        "公众号未获得该接口权限（account not verified: publishing APIs need a verified "
        "organisation account）",
    ),
    48004: ("config", "接口被封禁，请登录公众平台查看"),
    40007: ("permanent", "media_id 无效"),
    40009: ("permanent", "图片尺寸或大小超过限制"),
    40005: ("permanent", "文件类型不合法"),
    45002: ("permanent", "消息内容超过限制"),
    45003: ("permanent", "标题超过限制"),
    45004: ("permanent", "摘要超过限制"),
    45005: ("permanent", "链接字段超过限制"),
    45110: ("permanent", "作者超过限制"),
    53503: ("permanent", "该草稿未通过发布检查"),
    53504: ("permanent", "需前往公众平台官网使用草稿"),
    53505: ("permanent", "请手动保存成功后再发表"),
    88000: ("permanent", "公众号没有留言权限"),
    40018: ("permanent", "菜单名称长度不合法"),
    40003: ("permanent", "OpenID 无效"),
    43004: ("permanent", "用户未关注公众号"),
}


def seconds_to_next_day(now: datetime | None = None, zone: ZoneInfo = _ZONE) -> float:
    """Seconds until just after midnight in the platform's zone (daily quotas reset)."""
    local = (now or utcnow()).astimezone(zone)
    nxt = (local + timedelta(days=1)).replace(hour=0, minute=0, second=30, microsecond=0)
    return max(60.0, (nxt - local).total_seconds())


def wechat_error(
    errcode: int, errmsg: str, *, what: str, now: datetime | None = None
) -> DeliveryError:
    """The typed error for a WeChat ``errcode`` (pure; ``what`` names the call)."""
    kind, text = _CODES.get(errcode, ("permanent", ""))
    detail = text or "微信接口返回错误"
    platform_msg = _clean(errmsg)
    message = f"微信 {what}: {detail} (errcode {errcode}: {platform_msg})"
    if kind == "transient":
        return TransientError(message, code=errcode)
    if kind == "minute":
        return TransientError(message, code=errcode, retry_after=60.0)
    if kind == "quota":
        # Out of mass-send quota: a wait for the next window, not a failed attempt.
        return WaitForWindow(message, code=errcode, retry_after=seconds_to_next_day(now))
    if kind == "day":
        return TransientError(message, code=errcode, retry_after=seconds_to_next_day(now))
    if kind == "config":
        return ConfigurationError(message, code=errcode)
    return PermanentError(message, code=errcode)


def _clean(text: Any) -> str:
    # Platform messages end up in alerts: keep them short and printable.
    return "".join(ch for ch in str(text)[:200] if ch.isprintable())


def http_error(status: int, what: str) -> DeliveryError:
    """The typed error for a non-200 HTTP answer."""
    if status == 429 or status >= 500:
        return TransientError(f"微信 {what}: 平台暂时不可用 (HTTP {status})", code=f"http_{status}")
    if status in (404, 405):
        return ConfigurationError(
            f"微信 {what}: 接口地址不存在 (HTTP {status})，请检查 api_base_url",
            code=f"http_{status}",
        )
    return PermanentError(f"微信 {what}: 平台拒绝请求 (HTTP {status})", code=f"http_{status}")


class AmbiguousError(TransientError):
    """The request may or may not have taken effect (timeout, 5xx, garbled answer)."""


async def _read(response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    if response.status != 200:
        error = http_error(response.status, what)
        if isinstance(error, TransientError):
            raise AmbiguousError(error.message, code=error.code)
        raise error
    body = await response.content.read(_MAX_RESPONSE_BYTES + 1)
    if len(body) > _MAX_RESPONSE_BYTES:
        raise AmbiguousError(f"微信 {what}: 平台返回内容过大", code="oversized")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AmbiguousError(f"微信 {what}: 平台返回了无法解析的内容", code="garbage") from None
    if not isinstance(data, dict):
        raise AmbiguousError(f"微信 {what}: 平台返回了无法解析的内容", code="garbage")
    return data


def check(data: Mapping[str, Any], what: str) -> None:
    """Raise the typed error when a WeChat answer carries a non-zero errcode."""
    errcode = data.get("errcode", 0)
    try:
        code = int(errcode or 0)
    except (TypeError, ValueError):
        raise AmbiguousError(f"微信 {what}: errcode 不是数字", code="garbage") from None
    if code != 0:
        raise wechat_error(code, str(data.get("errmsg", "")), what=what)


async def fetch_stable_token(
    http: aiohttp.ClientSession,
    base_url: str,
    app_id: str,
    secret: Secret,
    force: bool,
    *,
    wait_seconds: float = 10.0,
) -> tuple[str, float]:
    """``POST stable_token``: (access_token, expires_in). The secret is sent, never shown."""
    what = "stable_token"
    payload = {
        "grant_type": "client_credential",
        "appid": app_id,
        "secret": secret.reveal(),
        "force_refresh": force,
    }
    try:
        async with http.post(
            f"{base_url.rstrip('/')}/stable_token",
            json=payload,
            timeout=aiohttp.ClientTimeout(total=wait_seconds),
        ) as response:
            data = await _read(response, what)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransientError(
            f"微信 {what}: 网络错误 ({type(exc).__name__})", code="network"
        ) from None
    check(data, what)
    token = data.get("access_token")
    expires_in = data.get("expires_in", 7200)
    if not isinstance(token, str) or not token or len(token) > 2048:
        raise TransientError(f"微信 {what}: 平台未返回有效的 access_token", code="garbage")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        raise TransientError(f"微信 {what}: expires_in 无效", code="garbage")
    return token, float(min(max(expires_in, 0), 7 * 86400))


class WeChatAPI:
    """Typed calls of one WeChat account, sharing the deployment's token holder."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        tokens: TokenHolder,
        *,
        account: str,
        timeout: float = 15.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.account = account
        self.timeout = timeout

    async def call(
        self,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        form: aiohttp.FormData | None = None,
        method: str = "POST",
    ) -> dict[str, Any]:
        """One API call; token errors refresh once and retry once."""
        token = await self.tokens.token()
        try:
            return await self._once(path, token, payload, params, form, method)
        except DeliveryError as error:
            if error.code not in TOKEN_ERRORS:
                raise
        log.warning(
            "wechat token rejected; refreshing once",
            extra={"account": self.account, "call": path},
        )
        token = await self.tokens.refresh(token)
        try:
            return await self._once(path, token, payload, params, form, method)
        except DeliveryError as error:
            if error.code in TOKEN_ERRORS:
                raise TransientError(
                    f"微信 {path}: 刷新后 access_token 仍被拒绝 ({error.code})", code=error.code
                ) from None
            raise

    async def _once(
        self,
        path: str,
        token: str,
        payload: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        form: aiohttp.FormData | None,
        method: str,
    ) -> dict[str, Any]:
        query = {**(params or {}), "access_token": token}
        url = f"{self.base_url}/{path}"
        body: Any = None
        headers = {}
        if payload is not None:
            # ensure_ascii=False: WeChat stores \uXXXX escapes literally in article bodies.
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        elif form is not None:
            body = form
        try:
            async with self.http.request(
                method,
                url,
                params=query,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                data = await _read(response, path)
        except TimeoutError as exc:
            raise AmbiguousError(f"微信 {path}: 请求超时", code="timeout") from exc
        except aiohttp.ClientError as exc:
            raise AmbiguousError(
                f"微信 {path}: 网络错误 ({type(exc).__name__})", code="network"
            ) from None
        check(data, path)
        return data

    # --- media -----------------------------------------------------------------------

    async def upload_image(self, content: bytes, filename: str, content_type: str) -> str:
        """``media/uploadimg``: an image for article bodies; returns its mmbiz URL."""
        form = aiohttp.FormData()
        form.add_field("media", content, filename=filename, content_type=content_type)
        data = await self.call("media/uploadimg", form=form)
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise AmbiguousError("微信 media/uploadimg: 未返回图片地址", code="garbage")
        return url

    async def add_image_material(self, content: bytes, filename: str, content_type: str) -> str:
        """``material/add_material?type=image``: a permanent image; returns its media_id."""
        form = aiohttp.FormData()
        form.add_field("media", content, filename=filename, content_type=content_type)
        data = await self.call("material/add_material", params={"type": "image"}, form=form)
        return _str(data, "media_id", "material/add_material")

    # --- drafts and free publishing -----------------------------------------------

    async def draft_add(self, articles: Sequence[Mapping[str, Any]]) -> str:
        """``draft/add``: returns the draft's media_id."""
        data = await self.call("draft/add", payload={"articles": list(articles)})
        return _str(data, "media_id", "draft/add")

    async def freepublish_submit(self, media_id: str) -> dict[str, Any]:
        """``freepublish/submit``: {publish_id, msg_data_id}; accepted, not yet published."""
        data = await self.call("freepublish/submit", payload={"media_id": media_id})
        _str(data, "publish_id", "freepublish/submit")
        return data

    async def freepublish_get(self, publish_id: str) -> dict[str, Any]:
        """``freepublish/get``: the publish job's status and, when done, the article."""
        return await self.call("freepublish/get", payload={"publish_id": publish_id})

    async def freepublish_batchget(
        self, offset: int, count: int = 20, no_content: bool = True
    ) -> dict[str, Any]:
        """``freepublish/batchget``: a page of published articles, newest first."""
        return await self.call(
            "freepublish/batchget",
            payload={"offset": offset, "count": count, "no_content": 1 if no_content else 0},
        )

    async def freepublish_getarticle(self, article_id: str) -> dict[str, Any]:
        """``freepublish/getarticle``: one published article by id (53600 when unknown)."""
        return await self.call("freepublish/getarticle", payload={"article_id": article_id})

    async def freepublish_delete(self, article_id: str, index: int = 0) -> dict[str, Any]:
        """``freepublish/delete``: remove a published article (index 0: all of it)."""
        return await self.call(
            "freepublish/delete", payload={"article_id": article_id, "index": index}
        )

    # --- mass send -----------------------------------------------------------------

    async def mass_sendall(self, media_id: str, clientmsgid: str) -> dict[str, Any]:
        """``message/mass/sendall`` of an mpnews draft to every follower."""
        return await self.call(
            "message/mass/sendall",
            payload={
                "filter": {"is_to_all": True},
                "mpnews": {"media_id": media_id},
                "msgtype": "mpnews",
                "send_ignore_reprint": 0,
                "clientmsgid": clientmsgid[:64],
            },
        )

    async def mass_get(self, msg_id: str) -> dict[str, Any]:
        """``message/mass/get``: the status of a mass send."""
        return await self.call("message/mass/get", payload={"msg_id": msg_id})

    # --- messages to one citizen ---------------------------------------------------

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        """``message/custom/send`` text (within the 48-hour window; 45015/45047 beyond)."""
        return await self.call(
            "message/custom/send",
            payload={"touser": openid, "msgtype": "text", "text": {"content": text}},
        )

    async def send_custom_news(
        self, openid: str, articles: Sequence[Mapping[str, str]]
    ) -> dict[str, Any]:
        """``message/custom/send`` news: [{title, description, url, picurl}] (one shown)."""
        return await self.call(
            "message/custom/send",
            payload={"touser": openid, "msgtype": "news", "news": {"articles": list(articles)}},
        )

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        url: str | None = None,
    ) -> dict[str, Any]:
        """``message/template/send``; ``data`` values may be plain strings."""
        fields = {
            key: value if isinstance(value, Mapping) else {"value": str(value)}
            for key, value in data.items()
        }
        payload: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": fields}
        if url:
            payload["url"] = url
        return await self.call("message/template/send", payload=payload)

    # --- menu ----------------------------------------------------------------------

    async def create_menu(self, menu: Mapping[str, Any]) -> dict[str, Any]:
        """``menu/create`` with ``{"button": [...]}``."""
        return await self.call("menu/create", payload=menu)

    async def get_menu(self) -> dict[str, Any]:
        """``menu/get``: the current menu."""
        return await self.call("menu/get", method="GET")

    # --- comments on published articles -----------------------------------------------

    async def comment_list(
        self, msg_data_id: str, index: int = 0, begin: int = 0, count: int = 49, type_: int = 0
    ) -> dict[str, Any]:
        """``comment/list``: {comment: [...], total}."""
        return await self.call(
            "comment/list",
            payload={
                "msg_data_id": msg_data_id,
                "index": index,
                "begin": begin,
                "count": min(max(count, 1), 49),
                "type": type_,
            },
        )

    async def comment_reply(
        self, msg_data_id: str, index: int, user_comment_id: int, content: str
    ) -> dict[str, Any]:
        """``comment/reply/add``: answer one comment."""
        return await self.call(
            "comment/reply/add",
            payload={
                "msg_data_id": msg_data_id,
                "index": index,
                "user_comment_id": user_comment_id,
                "content": content,
            },
        )

    async def comment_open(self, msg_data_id: str, index: int = 0) -> dict[str, Any]:
        """``comment/open``."""
        return await self.call("comment/open", payload={"msg_data_id": msg_data_id, "index": index})

    async def comment_close(self, msg_data_id: str, index: int = 0) -> dict[str, Any]:
        """``comment/close``."""
        return await self.call(
            "comment/close", payload={"msg_data_id": msg_data_id, "index": index}
        )

    async def comment_markelect(
        self, msg_data_id: str, index: int, user_comment_id: int
    ) -> dict[str, Any]:
        """``comment/markelect``: feature a comment."""
        return await self.call(
            "comment/markelect",
            payload={
                "msg_data_id": msg_data_id,
                "index": index,
                "user_comment_id": user_comment_id,
            },
        )

    async def comment_delete(
        self, msg_data_id: str, index: int, user_comment_id: int
    ) -> dict[str, Any]:
        """``comment/delete``."""
        return await self.call(
            "comment/delete",
            payload={
                "msg_data_id": msg_data_id,
                "index": index,
                "user_comment_id": user_comment_id,
            },
        )


def _str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise AmbiguousError(f"微信 {what}: 平台未返回 {key}", code="garbage")
    return value


__all__ = [
    "TOKEN_ERRORS",
    "AmbiguousError",
    "WeChatAPI",
    "check",
    "fetch_stable_token",
    "http_error",
    "seconds_to_next_day",
    "wechat_error",
]
