"""The Sina Weibo open API (``/2/...``) spoken with aiohttp, with typed errors.

Errors come as JSON ``{"error", "error_code", "request"}`` (often with HTTP 400/403);
each code maps to a transient error with a retry-after, a configuration error naming the
setting, or a permanent error. The access token is sent, never shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from govcast.settings import Secret
from publisher.outcomes import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    TransientError,
)

REPEAT_CODES = frozenset({20017, 20019, 20111})
GONE_CODES = frozenset({20101, 20102})
_MAX_RESPONSE_BYTES = 8 * 1024 * 1024

# error_code -> (kind, retry_after seconds or None, Chinese text)
_CODES: dict[int, tuple[str, float | None, str]] = {
    10001: ("transient", None, "系统错误"),
    10002: ("transient", None, "服务暂停"),
    10009: ("transient", 60.0, "任务过多，系统繁忙"),
    10010: ("transient", 60.0, "任务超时"),
    10012: ("permanent", None, "非法请求"),
    10022: ("transient", 600.0, "IP 请求频次超过上限"),
    10023: ("transient", 900.0, "用户请求频次超过上限"),
    10024: ("transient", 600.0, "用户请求该接口的频次超过上限"),
    20016: ("transient", 120.0, "发微博太频繁"),
    10014: ("config", None, "应用的接口访问权限受限（insufficient app permissions）"),
    10017: ("config", None, "微博正文中没有安全域名下的链接（检查 safe_domain 与网站地址）"),
    21321: ("config", None, "应用未通过审核，无法调用该接口"),
    21327: ("config", None, "access_token 已过期，请重新授权并更新 access_token"),
    21332: ("config", None, "access_token 无效，请更新 access_token"),
    21314: ("config", None, "access_token 已被使用"),
    21315: ("config", None, "access_token 已过期"),
    21316: ("config", None, "access_token 已被撤销"),
    21317: ("config", None, "access_token 被拒绝"),
    21301: ("config", None, "认证失败，请检查 access_token"),
    20003: ("config", None, "用户不存在"),
    20012: ("permanent", None, "微博正文超过 140 字"),
    20013: ("permanent", None, "微博正文超过 140 字"),
    20017: ("permanent", None, "刚刚发过相似内容"),
    20019: ("permanent", None, "不要重复发布相同内容"),
    20111: ("permanent", None, "不能发布相同的微博"),
    20101: ("permanent", None, "该微博不存在"),
    20102: ("permanent", None, "不是你发布的微博"),
    20018: ("permanent", None, "正文包含非法网址"),
    20020: ("permanent", None, "正文包含广告信息"),
    20021: ("permanent", None, "正文包含非法内容"),
}


def weibo_error(code: int, message: str, *, what: str) -> DeliveryError:
    """The typed error for a Weibo ``error_code`` (pure; ``what`` names the call)."""
    kind, retry_after, text = _CODES.get(code, ("permanent", None, "微博接口返回错误"))
    clean = "".join(ch for ch in str(message)[:200] if ch.isprintable())
    full = f"微博 {what}: {text} (error_code {code}: {clean})"
    if kind == "transient":
        return TransientError(full, code=code, retry_after=retry_after)
    if kind == "config":
        return ConfigurationError(full, code=code)
    return PermanentError(full, code=code)


class AmbiguousWeiboError(TransientError):
    """The call may have taken effect (timeout, 5xx, garbled answer)."""


def _parse(status: int, body: bytes, what: str) -> Any:
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and data.get("error_code") not in (None, 0, "0"):
        try:
            code = int(data["error_code"])
        except (TypeError, ValueError):
            raise AmbiguousWeiboError(f"微博 {what}: error_code 不是数字", code="garbage") from None
        raise weibo_error(code, str(data.get("error", "")), what=what)
    if status == 429 or status >= 500:
        raise AmbiguousWeiboError(
            f"微博 {what}: 平台暂时不可用 (HTTP {status})", code=f"http_{status}"
        )
    if status in (404, 405):
        raise ConfigurationError(
            f"微博 {what}: 接口地址不存在 (HTTP {status})，请检查 api_base_url",
            code=f"http_{status}",
        )
    if status != 200:
        raise PermanentError(f"微博 {what}: 平台拒绝请求 (HTTP {status})", code=f"http_{status}")
    if not isinstance(data, (dict, list)):
        raise AmbiguousWeiboError(f"微博 {what}: 平台返回了无法解析的内容", code="garbage")
    return data


class WeiboAPI:
    """Typed calls of one Weibo account."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        access_token: Secret,
        *,
        account: str,
        timeout: float = 15.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._token = access_token
        self.account = account
        self.timeout = timeout

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
        pic: tuple[bytes, str, str] | None = None,
    ) -> Any:
        """One API call; the token goes in the query (GET) or the body (POST)."""
        url = f"{self.base_url}/{path}"
        token = self._token.reveal()
        query = {k: str(v) for k, v in (params or {}).items()}
        data: Any = None
        if method == "GET":
            query["access_token"] = token
        elif pic is not None:
            form = aiohttp.FormData()
            form.add_field("access_token", token)
            for key, value in (fields or {}).items():
                form.add_field(key, str(value))
            form.add_field("pic", pic[0], filename=pic[1], content_type=pic[2])
            data = form
        else:
            data = {"access_token": token, **{k: str(v) for k, v in (fields or {}).items()}}
        try:
            async with self.http.request(
                method,
                url,
                params=query,
                data=data,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                body = await response.content.read(_MAX_RESPONSE_BYTES + 1)
                status = response.status
        except TimeoutError as exc:
            raise AmbiguousWeiboError(f"微博 {path}: 请求超时", code="timeout") from exc
        except aiohttp.ClientError as exc:
            raise AmbiguousWeiboError(
                f"微博 {path}: 网络错误 ({type(exc).__name__})", code="network"
            ) from None
        if len(body) > _MAX_RESPONSE_BYTES:
            raise AmbiguousWeiboError(f"微博 {path}: 平台返回内容过大", code="oversized")
        return _parse(status, body, path)

    async def share(
        self, status: str, pic: tuple[bytes, str, str] | None = None, rip: str | None = None
    ) -> dict[str, Any]:
        """``statuses/share.json``: post ``status`` (with a safe-domain link) and ``pic``."""
        fields: dict[str, Any] = {"status": status}
        if rip:
            fields["rip"] = rip
        data = await self.call("POST", "statuses/share.json", fields=fields, pic=pic)
        return _dict(data, "statuses/share.json")

    async def user_timeline(self, page: int = 1, count: int = 50) -> dict[str, Any]:
        """``statuses/user_timeline.json``: the account's own posts, newest first."""
        data = await self.call(
            "GET", "statuses/user_timeline.json", params={"page": page, "count": count}
        )
        return _dict(data, "statuses/user_timeline.json")

    async def show(self, status_id: str) -> dict[str, Any]:
        """``statuses/show.json``: one post by id (20101 when it no longer exists)."""
        data = await self.call("GET", "statuses/show.json", params={"id": status_id})
        return _dict(data, "statuses/show.json")

    async def destroy(self, status_id: str) -> dict[str, Any]:
        """``statuses/destroy.json``: delete one of the account's posts."""
        data = await self.call("POST", "statuses/destroy.json", fields={"id": status_id})
        return _dict(data, "statuses/destroy.json")

    async def comments_to_me(
        self, since_id: int | str = 0, count: int = 50, page: int = 1
    ) -> dict[str, Any]:
        """``comments/to_me.json``: comments on the account's posts since ``since_id``."""
        data = await self.call(
            "GET",
            "comments/to_me.json",
            params={"since_id": since_id, "count": count, "page": page},
        )
        return _dict(data, "comments/to_me.json")

    async def comments_show(
        self, status_id: int | str, since_id: int | str = 0, count: int = 50
    ) -> dict[str, Any]:
        """``comments/show.json``: comments on one post."""
        data = await self.call(
            "GET",
            "comments/show.json",
            params={"id": status_id, "since_id": since_id, "count": count},
        )
        return _dict(data, "comments/show.json")

    async def comment_reply(
        self, cid: int | str, status_id: int | str, text: str
    ) -> dict[str, Any]:
        """``comments/reply.json``: answer a comment (text within 140 characters)."""
        data = await self.call(
            "POST",
            "comments/reply.json",
            fields={"cid": cid, "id": status_id, "comment": text},
        )
        return _dict(data, "comments/reply.json")

    async def comment_create(self, status_id: int | str, text: str) -> dict[str, Any]:
        """``comments/create.json``: comment on a post."""
        data = await self.call(
            "POST", "comments/create.json", fields={"id": status_id, "comment": text}
        )
        return _dict(data, "comments/create.json")


def _dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AmbiguousWeiboError(f"微博 {what}: 平台返回了无法解析的内容", code="garbage")
    return data


__all__ = [
    "GONE_CODES",
    "REPEAT_CODES",
    "AmbiguousWeiboError",
    "WeiboAPI",
    "weibo_error",
]
