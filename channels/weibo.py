"""The Sina Weibo channel: one post per publication per account via ``statuses/share``.

A repeat-content answer (20017/20019/20111) means our own earlier attempt got through:
it is reconciled through the account's timeline, never retried forever. Retries after an
answer we did not hear (timeout, 5xx) look at the timeline before posting again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from channels.base import (
    ConfigurationError,
    DeliveryContext,
    DeliveryError,
    PermanentError,
    Receipt,
    TransientError,
)
from channels.wechat_render import prepare_image
from channels.weibo_api import GONE_CODES, REPEAT_CODES, WeiboAPI
from channels.weibo_render import WeiboRendition, render_status
from govcast.settings import Settings, WeiboAccountSettings
from publisher.db import Database
from publisher.models import DeliveryAction
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot

log = logging.getLogger("govcast.channels")

CHANNEL = "weibo"
PIC_MAX_BYTES = 5 * 1024 * 1024 - 1
_TIMELINE_PAGES = 4
_TIMELINE_COUNT = 50
# After a repeat-content answer the platform has told us the post exists: look further
# back before giving up (a busy account may have posted hundreds since).
_REPEAT_SEARCH_PAGES = 20


@dataclass(frozen=True)
class _Account:
    key: str
    settings: WeiboAccountSettings
    api: WeiboAPI


def status_url(status: dict[str, Any]) -> str | None:
    """The public address of a post, from the platform's answer."""
    idstr = str(status.get("idstr") or status.get("id") or "")
    return f"https://m.weibo.cn/status/{idstr}" if idstr else None


class WeiboChannel:
    """Weibo accounts (one or more) behind the channel protocol."""

    name: ClassVar[str] = CHANNEL
    title: ClassVar[str] = "新浪微博"
    supports_retract: ClassVar[bool] = True
    supports_update: ClassVar[bool] = True
    supports_push: ClassVar[bool] = False

    def __init__(
        self,
        settings: Settings,
        db: Database,
        http: aiohttp.ClientSession,
        *,
        request_timeout: float = 15.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self._accounts = {
            key: _Account(
                key,
                account,
                WeiboAPI(
                    http,
                    account.api_base_url,
                    account.access_token,
                    account=key,
                    timeout=request_timeout,
                ),
            )
            for key, account in settings.weibo.accounts.items()
        }

    def accounts(self) -> Sequence[str]:
        """The configured account keys."""
        return tuple(self._accounts)

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        """The account's posts per hour."""
        per_hour = self._account(account).settings.posts_per_hour
        return (
            RateLimit(count=per_hour, per_seconds=3600.0, actions=frozenset({"publish", "update"})),
        )

    def api(self, account: str) -> WeiboAPI:
        """The typed API client of one account (for the bot's comment handling)."""
        return self._account(account).api

    def render(
        self, publication: PublicationSnapshot, account: str, *, correction: bool = False
    ) -> WeiboRendition:
        """The post exactly as followers will see it (pure)."""
        settings = self._account(account).settings
        return render_status(
            publication,
            account,
            safe_domain=settings.safe_domain,
            hashtags=settings.hashtags,
            correction=correction,
        )

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Post once; a repeat of our own post is reconciled from the timeline."""
        assert isinstance(rendition, WeiboRendition)
        account = self._account(ctx.account)
        if ctx.attempt > 1:
            found = await self._find(account, rendition.link, rendition.head, exclude=())
            if found is not None:
                return found
        return await self._share(account, rendition, exclude=())

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """A correction: post the corrected text, then delete the superseded post."""
        assert isinstance(rendition, WeiboRendition)
        account = self._account(ctx.account)
        corrected = replace(
            rendition, status=rendition.correction_status, head=rendition.correction_head
        )
        old = (ctx.remote_id,) if ctx.remote_id else ()
        found = await self._find(account, corrected.link, corrected.head, exclude=old)
        receipt = found or await self._share(account, corrected, exclude=old)
        if ctx.remote_id and ctx.remote_id != receipt.remote_id:
            await self._destroy(account, ctx.remote_id)
        return receipt

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        """Whether this delivery's effect is already on the account's timeline."""
        account = self._account(ctx.account)
        if ctx.action == DeliveryAction.RETRACT.value:
            rendition = self.render(publication, ctx.account)
            present = await self._find(account, rendition.link, rendition.head, exclude=())
            if present is None:
                return Receipt(remote_id=ctx.remote_id or "", detail={"deleted": True})
            return None
        if ctx.action == DeliveryAction.PUSH.value:
            return None
        correction = ctx.action == DeliveryAction.UPDATE.value
        rendition = self.render(publication, ctx.account, correction=correction)
        exclude = (ctx.remote_id,) if correction and ctx.remote_id else ()
        return await self._find(account, rendition.link, rendition.head, exclude=exclude)

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        """Delete the post (and any other post of ours carrying the item's link)."""
        account = self._account(ctx.account)
        deleted: list[str] = []
        if ctx.remote_id:
            await self._destroy(account, ctx.remote_id)
            deleted.append(ctx.remote_id)
        rendition = self.render(publication, ctx.account)
        for _ in range(3):
            found = await self._find(account, rendition.link, rendition.head, exclude=deleted)
            if found is None:
                break
            await self._destroy(account, found.remote_id)
            deleted.append(found.remote_id)
        return Receipt(
            remote_id=deleted[0] if deleted else (ctx.remote_id or ""),
            detail={"deleted": deleted},
        )

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Weibo has no push to followers beyond the post itself."""
        raise PermanentError("微博渠道不支持推送", code="no_push")

    # --- internals -------------------------------------------------------------------

    def _account(self, key: str) -> _Account:
        try:
            return self._accounts[key]
        except KeyError:
            raise ConfigurationError(
                f"微博账号 {key!r} 未配置（[weibo.accounts.{key}]）", code="no_account"
            ) from None

    async def _share(
        self, account: _Account, rendition: WeiboRendition, exclude: Sequence[str]
    ) -> Receipt:
        pic = await self._picture(rendition)
        try:
            data = await account.api.share(rendition.status, pic)
        except DeliveryError as error:
            if error.code not in REPEAT_CODES:
                raise
            found = await self._find(
                account, rendition.link, rendition.head, exclude=exclude, pages=_REPEAT_SEARCH_PAGES
            )
            if found is not None:
                log.info(
                    "weibo repeat content reconciled",
                    extra={"publication_id": rendition.publication_id, "account": account.key},
                )
                return found
            raise TransientError(
                f"{error.message}；时间线上暂未找到该条，稍后核对",
                code=error.code,
                retry_after=60.0,
            ) from None
        idstr = str(data.get("idstr") or data.get("id") or "")
        if not idstr:
            raise PermanentError("微博 statuses/share.json: 平台未返回微博 id", code="garbage")
        return Receipt(remote_id=idstr, remote_url=status_url(data), detail={"idstr": idstr})

    async def _picture(self, rendition: WeiboRendition) -> tuple[bytes, str, str] | None:
        if not rendition.pic_path:
            return None
        try:
            content = await asyncio.to_thread(Path(rendition.pic_path).read_bytes)
            return await asyncio.to_thread(prepare_image, content, PIC_MAX_BYTES)
        except (OSError, PermanentError):
            # A post without its picture beats no post: the link carries the full item.
            log.warning(
                "weibo picture skipped",
                extra={"publication_id": rendition.publication_id, "account": rendition.account},
            )
            return None

    async def _find(
        self,
        account: _Account,
        link: str,
        head: str,
        exclude: Sequence[str],
        pages: int = _TIMELINE_PAGES,
    ) -> Receipt | None:
        """Our post carrying ``link`` (or starting with ``head``), newest first."""
        for page in range(1, pages + 1):
            data = await account.api.user_timeline(page=page, count=_TIMELINE_COUNT)
            statuses = data.get("statuses")
            if not isinstance(statuses, list) or not statuses:
                return None
            for status in statuses:
                if not isinstance(status, dict):
                    continue
                text = str(status.get("text") or "")
                idstr = str(status.get("idstr") or status.get("id") or "")
                if not idstr or idstr in exclude:
                    continue
                if link in text or (head and text.startswith(head)):
                    return Receipt(
                        remote_id=idstr, remote_url=status_url(status), detail={"idstr": idstr}
                    )
            if len(statuses) < _TIMELINE_COUNT:
                return None
        return None

    async def _destroy(self, account: _Account, status_id: str) -> None:
        try:
            await account.api.destroy(status_id)
        except DeliveryError as error:
            if error.code in GONE_CODES and error.code != 20102:
                return  # already deleted: a repeated withdrawal
            raise


def build(settings: Settings, db: Database, http: aiohttp.ClientSession) -> WeiboChannel | None:
    """The Weibo channel of this deployment, or None when no account is configured."""
    if not settings.weibo.accounts:
        return None
    return WeiboChannel(settings, db, http)


__all__ = ["WeiboChannel", "build", "status_url"]
