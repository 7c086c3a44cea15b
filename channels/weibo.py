"""The Sina Weibo channel: one post per publication per account via ``statuses/share``.

A repeat-content answer (20017/20019/20111) means our own earlier attempt got through:
it is reconciled through the account's timeline, never retried forever. Retries after an
answer we did not hear (timeout, 5xx) look at the timeline before posting again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from sqlalchemy import and_, select, update

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
from channels.weibo_render import (
    CORRECTION_MARK,
    PIC_LIMIT_BYTES,
    WeiboRendition,
    render_status,
)
from govcast.settings import Settings, WeiboAccountSettings
from publisher.db import Database
from publisher.models import Delivery, DeliveryAction, DeliveryState
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot

log = logging.getLogger("govcast.channels")

CHANNEL = "weibo"
PIC_MAX_BYTES = PIC_LIMIT_BYTES
_TIMELINE_PAGES = 4
_TIMELINE_COUNT = 50
# After a repeat-content answer the platform has told us the post exists: look further
# back before giving up (a busy account may have posted hundreds since).
_REPEAT_SEARCH_PAGES = 20
# Characters that may continue a URL: a link followed by one of these is a longer link.
_URL_CHAR = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


@dataclass(frozen=True)
class _Account:
    key: str
    settings: WeiboAccountSettings
    api: WeiboAPI


def carries_link(status: dict[str, Any], link: str) -> bool:
    """Whether a post carries ``link`` itself, not merely a longer link starting with it.

    The real platform shows links as t.cn short links; its ``url_struct`` keeps the
    original, so that is looked at too.
    """
    if not link:
        return False
    text = str(status.get("text") or "")
    at = text.find(link)
    while at >= 0:
        end = at + len(link)
        if end == len(text) or not _URL_CHAR.match(text[end]):
            return True
        at = text.find(link, at + 1)
    for entry in status.get("url_struct") or ():
        if isinstance(entry, dict) and link in (entry.get("ori_url"), entry.get("long_url")):
            return True
    return False


def _this_delivery(ctx: DeliveryContext) -> Any:
    # The delivery row this call serves (the account and publication guard against a
    # context that names another row's id).
    return and_(
        Delivery.id == ctx.delivery_id,
        Delivery.publication_id == ctx.publication_id,
        Delivery.channel == CHANNEL,
        Delivery.account == ctx.account,
    )


def _known_ids(ctx: DeliveryContext) -> tuple[str, ...]:
    """The ids of the posts the publish on this account made, as far as recorded."""
    ids: list[str] = []
    for value in (ctx.remote_id, ctx.remote_receipt.get("idstr")):
        if value and str(value) not in ids:
            ids.append(str(value))
    return tuple(ids)


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
            found = await self._find_own(account, ctx, rendition.link, correction=False)
            if found is not None:
                return found
        return await self._share(account, rendition, ctx, exclude=(), correction=False)

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """A correction: post the corrected text, then delete the superseded post."""
        assert isinstance(rendition, WeiboRendition)
        account = self._account(ctx.account)
        corrected = replace(
            rendition, status=rendition.correction_status, head=rendition.correction_head
        )
        old = _known_ids(ctx)
        found = await self._find_own(account, ctx, corrected.link, correction=True, exclude=old)
        receipt = found or await self._share(account, corrected, ctx, exclude=old, correction=True)
        for status_id in old:
            if status_id != receipt.remote_id:
                await self._destroy(account, status_id)
        return receipt

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        """Whether this delivery's effect is already on the account."""
        account = self._account(ctx.account)
        if ctx.action == DeliveryAction.RETRACT.value:
            known = _known_ids(ctx)
            for status_id in known:
                # Asked by id: a post far down a busy timeline is still there.
                if await self._show(account, status_id) is not None:
                    return None
            # No known post left; any other post of ours carrying this very link?
            stray = await self._find(account, publication.url, exclude=known, correction=None)
            if stray is None:
                return Receipt(
                    remote_id=ctx.remote_id or (known[0] if known else ""),
                    detail={"deleted": True},
                )
            return None
        if ctx.action == DeliveryAction.PUSH.value:
            return None
        correction = ctx.action == DeliveryAction.UPDATE.value
        exclude = _known_ids(ctx) if correction else ()
        return await self._find_own(
            account, ctx, publication.url, correction=correction, exclude=exclude
        )

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        """Delete the post (and any other post of ours carrying the item's own link)."""
        account = self._account(ctx.account)
        deleted: list[str] = []
        for status_id in _known_ids(ctx):
            await self._destroy(account, status_id)
            deleted.append(status_id)
        # Corrections and reconciled publishes may have left others: only posts carrying
        # this publication's link, never one that merely shares its title.
        for _ in range(3):
            found = await self._find(account, publication.url, exclude=deleted, correction=None)
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
        self,
        account: _Account,
        rendition: WeiboRendition,
        ctx: DeliveryContext,
        exclude: Sequence[str],
        correction: bool,
    ) -> Receipt:
        pic, pic_note = await self._picture(rendition)
        try:
            data = await account.api.share(rendition.status, pic)
        except DeliveryError as error:
            if error.code not in REPEAT_CODES:
                raise
            found = await self._find(
                account,
                rendition.link,
                exclude=exclude,
                correction=correction,
                pages=_REPEAT_SEARCH_PAGES,
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
        await self._note(ctx, idstr)
        detail: dict[str, Any] = {"idstr": idstr}
        if pic_note:
            detail["picture"] = pic_note
        return Receipt(remote_id=idstr, remote_url=status_url(data), detail=detail)

    async def _picture(
        self, rendition: WeiboRendition
    ) -> tuple[tuple[bytes, str, str] | None, str]:
        """The picture to attach, or None and why it was left out (for the receipt)."""
        if not rendition.pic_path:
            return None, ""
        try:
            content = await asyncio.to_thread(Path(rendition.pic_path).read_bytes)
        except OSError:
            note = "配图文件无法读取，已不带图发布"
        else:
            try:
                return await asyncio.to_thread(prepare_image, content, PIC_MAX_BYTES), ""
            except PermanentError as error:
                note = f"配图无法使用（{error.message[:80]}），已不带图发布"
        # A post without its picture beats no post: the link carries the full item.
        log.warning(
            "weibo picture skipped",
            extra={"publication_id": rendition.publication_id, "account": rendition.account},
        )
        return None, note

    async def _note(self, ctx: DeliveryContext, status_id: str) -> None:
        """Record the new post's id on the delivery at once, before the receipt.

        A worker that dies between the post and its receipt leaves the id behind, so the
        next attempt asks for that post by id: the real platform shortens links to t.cn,
        so the timeline's text alone may not show which post is ours.
        """
        async with self.db.transaction() as session:
            await session.execute(
                update(Delivery)
                .where(_this_delivery(ctx), Delivery.state == DeliveryState.SENDING.value)
                .values(receipt={"idstr": status_id, "noted": True})
            )

    async def _noted(self, ctx: DeliveryContext) -> str | None:
        """The post id an earlier attempt of this delivery recorded, if any."""
        async with self.db.sessions() as session:
            receipt = (
                await session.execute(select(Delivery.receipt).where(_this_delivery(ctx)))
            ).scalar_one_or_none()
        value = (receipt or {}).get("idstr") if isinstance(receipt, dict) else None
        return str(value) if value else None

    async def _show(self, account: _Account, status_id: str) -> dict[str, Any] | None:
        """The post with this id, or None when it no longer exists."""
        try:
            data = await account.api.show(status_id)
        except DeliveryError as error:
            if error.code == 20101:
                return None
            raise
        if str(data.get("deleted") or "0") not in ("0", "false", "False"):
            return None
        return data

    async def _find_own(
        self,
        account: _Account,
        ctx: DeliveryContext,
        link: str,
        *,
        correction: bool,
        exclude: Sequence[str] = (),
    ) -> Receipt | None:
        """This delivery's post: by the id an earlier attempt recorded, else by link."""
        noted = await self._noted(ctx)
        if noted and noted not in exclude:
            status = await self._show(account, noted)
            if status is not None:
                return Receipt(
                    remote_id=noted, remote_url=status_url(status), detail={"idstr": noted}
                )
            exclude = (*exclude, noted)
        return await self._find(account, link, exclude=exclude, correction=correction)

    async def _find(
        self,
        account: _Account,
        link: str,
        *,
        exclude: Sequence[str],
        correction: bool | None,
        pages: int = _TIMELINE_PAGES,
    ) -> Receipt | None:
        """Our newest post carrying exactly ``link``; ``correction`` None: either kind.

        Never by title: two publications may share a title, and only the link (the
        publication's own address) tells their posts apart.
        """
        for page in range(1, pages + 1):
            data = await account.api.user_timeline(page=page, count=_TIMELINE_COUNT)
            statuses = data.get("statuses")
            if not isinstance(statuses, list) or not statuses:
                return None
            for status in statuses:
                if not isinstance(status, dict):
                    continue
                idstr = str(status.get("idstr") or status.get("id") or "")
                if not idstr or idstr in exclude or not carries_link(status, link):
                    continue
                text = str(status.get("text") or "")
                if correction is not None and text.startswith(CORRECTION_MARK) != correction:
                    continue
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


__all__ = ["WeiboChannel", "build", "carries_link", "status_url"]
