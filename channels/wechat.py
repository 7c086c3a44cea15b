"""The WeChat Official Account channel: free publishing of articles, mass sends to
followers, withdrawal, and reconciliation, for any number of accounts.

``publish`` re-hosts the images (``media/uploadimg``), uploads the cover as permanent
material, adds a draft and submits it (``freepublish/submit``). The platform publishes
asynchronously: the delivery waits in ``confirming`` until the ``PUBLISHJOBFINISH``
event (:func:`settle_publish_event`, called by the bot) or the polling tick
(``freepublish/get``) settles it, whichever comes first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import (
    ConfigurationError,
    DeliveryContext,
    DeliveryError,
    PermanentError,
    Receipt,
    TransientError,
    WaitForWindow,
)
from channels.token_models import WeChatSubmission, WeChatUpload
from channels.tokens import TokenHolder, TokenPolicy
from channels.wechat_api import (
    AmbiguousError,
    WeChatAPI,
    fetch_stable_token,
    seconds_to_next_day,
)
from channels.wechat_render import (
    ImageSlot,
    WeChatRendition,
    plain_cover,
    prepare_image,
    render_article,
)
from govcast.rediscache import SharedRedis
from govcast.scheduler import Tick
from govcast.settings import Settings, WechatAccountSettings
from publisher import queue, workflow
from publisher.db import Database
from publisher.models import Delivery, DeliveryAction, DeliveryState
from publisher.orm import utcnow
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot

log = logging.getLogger("govcast.channels")

CHANNEL = "wechat"
# freepublish/get and the PUBLISHJOBFINISH event: publish_status -> what staff read.
PUBLISH_STATUS_TEXT = {
    0: "发表成功",
    1: "发表中",
    2: "原创声明失败，文章未发表",
    3: "常规失败，文章未发表",
    4: "平台审核不通过，文章未发表",
    5: "成功后被用户删除",
    6: "成功后被系统封禁",
}
_BATCH_PAGES = 5
_BATCH_COUNT = 20
# After a lost submit answer: up to 1,000 articles back, bounded by the draft's time.
_DEEP_BATCH_PAGES = 50
_CLOCK_SLACK_SECONDS = 120
# WeChatUpload rows of kind "push_draft": a push's own draft, keyed by its clientmsgid.
_PUSH_DRAFT = "push_draft"
# freepublish/getarticle for an article that is not (any longer) published.
_ARTICLE_GONE = frozenset({53600})


def publish_status_error(status: int) -> DeliveryError | None:
    """None for success or still publishing, else the error staff will read (pure)."""
    if status in (0, 1):
        return None
    text = PUBLISH_STATUS_TEXT.get(status, "未知发表状态")
    return PermanentError(
        f"微信发表结果：{text}（publish_status {status}）", code=f"publish_{status}"
    )


def mass_status_error(status: str) -> DeliveryError | None:
    """None for a successful or running mass send, else the error staff will read (pure)."""
    normal = status.strip().lower().replace("_", " ")
    if normal in ("send success", "sending", "success"):
        return None
    if normal == "delete":
        return PermanentError(f"群发消息已被删除（{status}）", code="mass_deleted")
    return PermanentError(f"群发失败（{status[:80]}）", code="mass_failed")


@dataclass(frozen=True)
class _Account:
    key: str
    settings: WechatAccountSettings
    api: WeChatAPI


class WeChatChannel:
    """WeChat Official Accounts (one or more) behind the channel protocol."""

    name: ClassVar[str] = CHANNEL
    title: ClassVar[str] = "微信公众号"
    supports_retract: ClassVar[bool] = True
    supports_update: ClassVar[bool] = True
    supports_push: ClassVar[bool] = True

    def __init__(
        self,
        settings: Settings,
        db: Database,
        http: aiohttp.ClientSession,
        *,
        token_policy: TokenPolicy | None = None,
        submit_settle_seconds: float = 20.0,
        poll_seconds: float | None = None,
        request_timeout: float = 15.0,
        redis: SharedRedis | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.http = http
        self.submit_settle_seconds = submit_settle_seconds
        self.poll_seconds = poll_seconds or max(2.0, settings.scheduler.tick_seconds)
        zone = settings.office.zone
        holders: dict[tuple[str, str], TokenHolder] = {}
        self._accounts: dict[str, _Account] = {}
        for key, account in settings.wechat.accounts.items():
            holder_key = (account.api_base_url, account.app_id)
            if holder_key not in holders:
                holders[holder_key] = TokenHolder(
                    db,
                    platform=CHANNEL,
                    app_id=account.app_id,
                    fetch=_fetcher(http, account),
                    policy=token_policy,
                    zone=zone,
                    redis=redis,
                )
            api = WeChatAPI(
                http,
                account.api_base_url,
                holders[holder_key],
                account=key,
                timeout=request_timeout,
            )
            self._accounts[key] = _Account(key, account, api)

    # --- protocol ----------------------------------------------------------------------

    def accounts(self) -> Sequence[str]:
        """The configured account keys."""
        return tuple(self._accounts)

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        """Per-minute calls and the mass-send quota of the account's type."""
        settings = self._account(account).settings
        limits = [
            RateLimit(
                count=max(1, settings.per_minute // 4),  # a publish costs several calls
                per_seconds=60.0,
                actions=frozenset({"publish", "update", "retract"}),
            )
        ]
        if settings.account_type == "subscription":
            limits.append(RateLimit(count=1, per_seconds=86400.0, actions=frozenset({"push"})))
        else:
            limits.append(RateLimit(count=4, per_seconds=30 * 86400.0, actions=frozenset({"push"})))
        return tuple(limits)

    def api(self, account: str) -> WeChatAPI:
        """The typed API client of one account (for the bot and the console)."""
        return self._account(account).api

    def render(self, publication: PublicationSnapshot, account: str) -> WeChatRendition:
        """The article exactly as the account will show it (pure)."""
        settings = self._account(account).settings
        return render_article(publication, account, comments=settings.open_comments)

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Upload images and cover, add the draft, submit it; the result comes later."""
        assert isinstance(rendition, WeChatRendition)
        account = self._account(ctx.account)
        if ctx.attempt > 1:
            # An earlier attempt may have taken effect without us hearing the answer.
            found = await self._find_publish(
                account, ctx.publication_id, ctx.revision, rendition.content_source_url
            )
            if found is not None:
                return found
        return await self._submit(account, rendition, ctx.publication_id, ctx.revision)

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """A correction: publish the corrected article, then delete the superseded one.

        Published WeChat articles cannot be edited through the API.
        """
        assert isinstance(rendition, WeChatRendition)
        account = self._account(ctx.account)
        found = await self._find_submitted(account, ctx.publication_id, ctx.revision)
        receipt = found or await self._submit(account, rendition, ctx.publication_id, ctx.revision)
        old = ctx.remote_receipt.get("article_id")
        if isinstance(old, str) and old and old != receipt.detail.get("article_id"):
            await self._delete_article(account, old, rendition.content_source_url)
        return receipt

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        """Whether this delivery's effect is already on the platform."""
        account = self._account(ctx.account)
        if ctx.action == DeliveryAction.PUBLISH.value:
            return await self._find_publish(account, publication.id, ctx.revision, publication.url)
        if ctx.action == DeliveryAction.UPDATE.value:
            return await self._find_submitted(account, publication.id, ctx.revision)
        if ctx.action == DeliveryAction.RETRACT.value:
            known = ctx.remote_receipt.get("article_id")
            # Asked by id: an article far down a busy account's list is still up.
            if isinstance(known, str) and known and await self._article_live(account, known):
                return None
            # Others with the same link (corrections, reconciled publishes) among the recent.
            if await self._batch_find(account, publication.url) is None:
                return Receipt(remote_id=ctx.remote_id or "", detail={"deleted": True})
            return None
        # A repeated mass send is harmless: the clientmsgid makes the platform refuse it.
        return None

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        """Delete every published article of this publication on the account."""
        account = self._account(ctx.account)
        deleted: list[str] = []
        known = ctx.remote_receipt.get("article_id")
        if isinstance(known, str) and known:
            await self._delete_article(account, known, publication.url)
            deleted.append(known)
        # Corrections and reconciled publishes may have left others with the same link.
        for _ in range(3):
            found = await self._batch_find(account, publication.url)
            if found is None:
                break
            article_id = str(found.detail.get("article_id") or "")
            if not article_id or article_id in deleted:
                break
            await self._delete_article(account, article_id, publication.url)
            deleted.append(article_id)
        async with self.db.transaction() as session:
            # Nothing of this publication is live on the account any more.
            await session.execute(
                delete(WeChatSubmission).where(
                    WeChatSubmission.publication_id == publication.id,
                    WeChatSubmission.account == ctx.account,
                )
            )
        return Receipt(
            remote_id=deleted[0] if deleted else (ctx.remote_id or ""),
            detail={"deleted": deleted},
        )

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Mass-send the article to every follower, once (clientmsgid).

        A draft leaves the draft box once it is free-published, so the push cannot reuse
        the published draft: it adds a draft of its own, once per delivery (retries reuse
        it), and mass-sends that.
        """
        assert isinstance(rendition, WeChatRendition)
        account = self._account(ctx.account)
        # A successful publish's receipt carries article_id (settle or reconcile adds it);
        # a failed or missing publish has none, and its article must not reach followers.
        if "article_id" not in ctx.remote_receipt:
            raise PermanentError(
                "推送失败：该信息尚未在此公众号发表成功，不能群发", code="not_published"
            )
        clientmsgid = ctx.idempotency_key[:64]
        media_id = await self._push_draft(account, rendition, clientmsgid)
        try:
            data = await account.api.mass_sendall(media_id, clientmsgid)
        except DeliveryError as error:
            if error.code == 45065:
                # The same clientmsgid was sent before: an earlier attempt went through.
                return Receipt(
                    remote_id=clientmsgid, detail={"clientmsgid": clientmsgid, "repeat": True}
                )
            if error.code == 40007:
                # The push's draft is gone (deleted in the platform's console): add it again
                # on the next attempt rather than fail the push.
                await self._forget_push_draft(account, clientmsgid)
                raise TransientError(
                    f"群发用的草稿已不存在，将重新添加；{error.message}", code=40007
                ) from None
            if error.code == 45028 and not isinstance(error, WaitForWindow):
                raise WaitForWindow(
                    f"群发配额已用完，等待下一个配额周期（errcode 45028）；{error.message}",
                    code=45028,
                    retry_after=seconds_to_next_day(),
                ) from None
            raise
        msg_id = str(data.get("msg_id") or "")
        if not msg_id:
            raise AmbiguousError("微信 message/mass/sendall: 平台未返回 msg_id", code="garbage")
        return Receipt(
            remote_id=msg_id,
            pending=True,
            detail={
                "msg_id": msg_id,
                "msg_data_id": str(data.get("msg_data_id") or ""),
                "clientmsgid": clientmsgid,
                "media_id": media_id,
            },
        )

    def ticks(self) -> list[Tick]:
        """Poll the status of publishes and mass sends still waiting for their result."""
        return [Tick("wechat_confirm_status", self.poll_seconds, self.poll_confirming)]

    # --- confirmation ----------------------------------------------------------------

    async def poll_confirming(self, limit: int = 50) -> int:
        """Ask the platform about ``confirming`` deliveries; returns how many settled."""
        async with self.db.sessions() as session:
            rows = (
                await session.execute(
                    select(Delivery.account, Delivery.action, Delivery.remote_id)
                    .where(
                        Delivery.channel == CHANNEL,
                        Delivery.state == DeliveryState.CONFIRMING.value,
                    )
                    .order_by(Delivery.updated_at)
                    .limit(limit)
                )
            ).all()
        settled = 0
        for account_key, action, remote_id in rows:
            if account_key not in self._accounts or not remote_id:
                continue
            api = self._accounts[account_key].api
            try:
                if action == DeliveryAction.PUSH.value:
                    data = await api.mass_get(remote_id)
                    status = str(data.get("msg_status") or "")
                    if status.upper() == "SENDING" or not status:
                        continue
                    done = await settle_mass_send_event(
                        self.db,
                        account=account_key,
                        msg_id=remote_id,
                        status=status,
                        total=-1,
                        sent=-1,
                        errors=-1,
                    )
                else:
                    data = await api.freepublish_get(remote_id)
                    status_code = _int(data.get("publish_status"), 1)
                    if status_code == 1:
                        continue
                    article_id, urls = _article_of(data)
                    done = await settle_publish_event(
                        self.db,
                        account=account_key,
                        publish_id=remote_id,
                        publish_status=status_code,
                        article_id=article_id,
                        article_urls=urls,
                    )
            except DeliveryError as error:
                log.warning(
                    "status poll failed",
                    extra={"account": account_key, "error_code": error.code, "action": action},
                )
                continue
            settled += done is not None
        return settled

    # --- internals -------------------------------------------------------------------

    def _account(self, key: str) -> _Account:
        try:
            return self._accounts[key]
        except KeyError:
            raise ConfigurationError(
                f"微信账号 {key!r} 未配置（[wechat.accounts.{key}]）", code="no_account"
            ) from None

    async def _submit(
        self, account: _Account, rendition: WeChatRendition, publication_id: int, revision: int
    ) -> Receipt:
        urls: dict[str, str] = {}
        for slot in rendition.images:
            urls[slot.placeholder] = await self._upload_content_image(account, slot)
        thumb = await self._cover(account, rendition.cover)
        media_id = await account.api.draft_add([rendition.article(urls, thumb)])
        await self._record_draft(account.key, publication_id, revision, media_id)
        try:
            data = await account.api.freepublish_submit(media_id)
        except AmbiguousError:
            raise  # outcome unknown: the draft row makes the next attempt wait and look
        except DeliveryError:
            await self._forget_submission(account.key, publication_id, revision)
            raise
        publish_id = str(data["publish_id"])
        msg_data_id = str(data.get("msg_data_id") or "")
        await self._record_submit(account.key, publication_id, revision, publish_id, msg_data_id)
        log.info(
            "wechat article submitted",
            extra={"publication_id": publication_id, "account": account.key},
        )
        return Receipt(
            remote_id=publish_id,
            pending=True,
            detail={"publish_id": publish_id, "msg_data_id": msg_data_id, "media_id": media_id},
        )

    async def _find_submitted(
        self, account: _Account, publication_id: int, revision: int
    ) -> Receipt | None:
        """What the platform says about our recorded submission, if there is one."""
        sub = await self._submission(account.key, publication_id, revision)
        if sub is None:
            return None
        if not sub.publish_id:
            age = (utcnow() - sub.updated_at).total_seconds()
            if age < self.submit_settle_seconds:
                raise TransientError(
                    "上次提交发表的结果未知，等待平台确认后再核对",
                    code="submit_unknown",
                    retry_after=self.submit_settle_seconds - age + 1,
                )
            return None
        data = await account.api.freepublish_get(sub.publish_id)
        status = _int(data.get("publish_status"), 1)
        detail: dict[str, Any] = {
            "publish_id": sub.publish_id,
            "msg_data_id": sub.msg_data_id or "",
            "media_id": sub.media_id,
        }
        if status == 1:
            return Receipt(remote_id=sub.publish_id, pending=True, detail=detail)
        if status == 0:
            article_id, urls = _article_of(data)
            detail.update({"article_id": article_id or "", "article_urls": urls})
            return Receipt(
                remote_id=sub.publish_id, remote_url=urls[0] if urls else None, detail=detail
            )
        if status == 3:
            await self._forget_submission(account.key, publication_id, revision)
            return None  # failed without effect: publish again
        error = publish_status_error(status)
        assert error is not None
        raise error

    async def _find_publish(
        self, account: _Account, publication_id: int, revision: int, source_url: str
    ) -> Receipt | None:
        found = await self._find_submitted(account, publication_id, revision)
        if found is not None:
            return found
        sub = await self._submission(account.key, publication_id, revision)
        if sub is not None and not sub.publish_id:
            # A submit whose answer was lost: if it went through, our article is among
            # those published since the draft, however many the account posted since.
            return await self._batch_find(account, source_url, since=sub.created_at)
        return await self._batch_find(account, source_url)

    async def _batch_find(
        self, account: _Account, source_url: str, since: datetime | None = None
    ) -> Receipt | None:
        """The newest published article whose "read original" link is ``source_url``.

        Looks at the newest ``_BATCH_PAGES`` pages, or with ``since`` at every page down to
        articles published before then (at most ``_DEEP_BATCH_PAGES``): a busy account
        can publish hundreds of articles between a lost answer and the look.
        """
        if not source_url:
            return None
        pages = _BATCH_PAGES if since is None else _DEEP_BATCH_PAGES
        # The platform's times are whole seconds and its clock is not ours: some slack.
        oldest = None if since is None else int(since.timestamp()) - _CLOCK_SLACK_SECONDS
        for page in range(pages):
            data = await account.api.freepublish_batchget(page * _BATCH_COUNT, _BATCH_COUNT)
            items = data.get("item")
            if not isinstance(items, list) or not items:
                return None
            older = 0
            for item in items:
                if oldest is not None and isinstance(item, dict):
                    published = _int(item.get("update_time"), oldest)
                    older += published < oldest
                if not isinstance(item, dict):
                    continue
                news = (item.get("content") or {}).get("news_item") or []
                for article in news if isinstance(news, list) else []:
                    if (
                        isinstance(article, dict)
                        and article.get("content_source_url") == source_url
                        and not article.get("is_deleted")
                    ):
                        article_id = str(item.get("article_id") or "")
                        url = article.get("url") if isinstance(article.get("url"), str) else None
                        return Receipt(
                            remote_id=article_id,
                            remote_url=url,
                            detail={"article_id": article_id, "article_urls": [url] if url else []},
                        )
            total = _int(data.get("total_count"), 0)
            if (page + 1) * _BATCH_COUNT >= total or older == len(items):
                return None  # the end of the list, or a whole page from before ``since``
        return None

    async def _delete_article(self, account: _Account, article_id: str, source_url: str) -> None:
        try:
            await account.api.freepublish_delete(article_id, 0)
        except PermanentError as error:
            if isinstance(error, ConfigurationError):
                raise
            # Already gone (a repeated withdrawal) is success; anything else is not.
            if await self._article_live(account, article_id):
                raise

    async def _push_draft(
        self, account: _Account, rendition: WeChatRendition, clientmsgid: str
    ) -> str:
        """The media_id of this push's own draft: added once, reused by every retry."""
        key = _push_key(account.key, clientmsgid)
        app_id = account.settings.app_id
        recorded = await self._recorded_upload(app_id, key, _PUSH_DRAFT)
        if recorded:
            return recorded
        urls: dict[str, str] = {}
        for slot in rendition.images:
            urls[slot.placeholder] = await self._upload_content_image(account, slot)
        thumb = await self._cover(account, rendition.cover)
        media_id = await account.api.draft_add([rendition.article(urls, thumb)])
        builder = pg_insert if self.db.is_postgresql else sqlite_insert
        async with self.db.transaction() as session:
            await session.execute(
                builder(WeChatUpload)
                .values(
                    app_id=app_id,
                    sha256=key,
                    kind=_PUSH_DRAFT,
                    remote=media_id,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["app_id", "sha256", "kind"])
            )
        return media_id

    async def _forget_push_draft(self, account: _Account, clientmsgid: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                delete(WeChatUpload).where(
                    WeChatUpload.app_id == account.settings.app_id,
                    WeChatUpload.sha256 == _push_key(account.key, clientmsgid),
                    WeChatUpload.kind == _PUSH_DRAFT,
                )
            )

    async def _article_live(self, account: _Account, article_id: str) -> bool:
        """Whether a published article is still up, asked by its id (not by a list page)."""
        try:
            data = await account.api.freepublish_getarticle(article_id)
        except PermanentError as error:
            if not isinstance(error, ConfigurationError) and error.code in _ARTICLE_GONE:
                return False
            raise
        items = data.get("news_item")
        if not isinstance(items, list):
            return True  # an answer we cannot read: assume it is up, deleting is idempotent
        return any(isinstance(item, dict) and not item.get("is_deleted") for item in items)

    async def _upload_content_image(self, account: _Account, slot: ImageSlot) -> str:
        content = await _read_file(slot.path)
        return await self._uploaded(account, content, "content")

    async def _cover(self, account: _Account, cover: ImageSlot | None) -> str:
        if cover is not None:
            content = await _read_file(cover.path)
        elif account.settings.default_cover:
            path = Path(account.settings.default_cover)
            if not path.is_absolute():
                path = self.settings.source.parent / path
            try:
                content = await asyncio.to_thread(path.read_bytes)
            except OSError:
                raise ConfigurationError(
                    f"默认封面图片无法读取：wechat.accounts.{account.key}.default_cover",
                    code="default_cover",
                ) from None
        else:
            content = plain_cover()
        return await self._uploaded(account, content, "cover")

    async def _recorded_upload(self, app_id: str, key: str, kind: str) -> str | None:
        """What an earlier upload (or push draft) of this app and key left: URL or id."""
        async with self.db.sessions() as session:
            return (
                await session.execute(
                    select(WeChatUpload.remote).where(
                        WeChatUpload.app_id == app_id,
                        WeChatUpload.sha256 == key,
                        WeChatUpload.kind == kind,
                    )
                )
            ).scalar_one_or_none()

    async def _uploaded(self, account: _Account, content: bytes, kind: str) -> str:
        """Upload once per app and image: later publishes reuse the remote URL or id."""
        digest = hashlib.sha256(content).hexdigest()
        app_id = account.settings.app_id
        remote = await self._recorded_upload(app_id, digest, kind)
        if remote:
            return remote
        prepared, filename, content_type = await asyncio.to_thread(prepare_image, content)
        if kind == "content":
            remote = await account.api.upload_image(prepared, filename, content_type)
        else:
            remote = await account.api.add_image_material(prepared, filename, content_type)
        builder = pg_insert if self.db.is_postgresql else sqlite_insert
        async with self.db.transaction() as session:
            await session.execute(
                builder(WeChatUpload)
                .values(app_id=app_id, sha256=digest, kind=kind, remote=remote, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["app_id", "sha256", "kind"])
            )
        return remote

    async def _submission(
        self, account: str, publication_id: int, revision: int
    ) -> WeChatSubmission | None:
        async with self.db.sessions() as session:
            return (
                await session.execute(
                    select(WeChatSubmission).where(
                        WeChatSubmission.publication_id == publication_id,
                        WeChatSubmission.account == account,
                        WeChatSubmission.revision == revision,
                    )
                )
            ).scalar_one_or_none()

    async def _record_draft(
        self, account: str, publication_id: int, revision: int, media_id: str
    ) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                delete(WeChatSubmission).where(
                    WeChatSubmission.publication_id == publication_id,
                    WeChatSubmission.account == account,
                    WeChatSubmission.revision == revision,
                )
            )
            session.add(
                WeChatSubmission(
                    publication_id=publication_id,
                    account=account,
                    revision=revision,
                    media_id=media_id,
                    created_at=now,
                    updated_at=now,
                )
            )

    async def _record_submit(
        self, account: str, publication_id: int, revision: int, publish_id: str, msg_data_id: str
    ) -> None:
        async with self.db.transaction() as session:
            sub = (
                await session.execute(
                    select(WeChatSubmission).where(
                        WeChatSubmission.publication_id == publication_id,
                        WeChatSubmission.account == account,
                        WeChatSubmission.revision == revision,
                    )
                )
            ).scalar_one_or_none()
            if sub is not None:
                sub.publish_id = publish_id
                sub.msg_data_id = msg_data_id or None
                sub.updated_at = utcnow()

    async def _forget_submission(self, account: str, publication_id: int, revision: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                delete(WeChatSubmission).where(
                    WeChatSubmission.publication_id == publication_id,
                    WeChatSubmission.account == account,
                    WeChatSubmission.revision == revision,
                )
            )


def _push_key(account: str, clientmsgid: str) -> str:
    """The row key of a push's draft (clientmsgid is unique per delivery)."""
    return hashlib.sha256(f"push\0{account}\0{clientmsgid}".encode()).hexdigest()


def _fetcher(http: aiohttp.ClientSession, account: WechatAccountSettings) -> Any:
    async def fetch(force: bool) -> tuple[str, float]:
        return await fetch_stable_token(
            http, account.api_base_url, account.app_id, account.app_secret, force
        )

    return fetch


async def _read_file(path: str) -> bytes:
    try:
        return await asyncio.to_thread(Path(path).read_bytes)
    except OSError:
        raise PermanentError(
            f"图片文件缺失，无法转存到微信（{Path(path).name[:16]}…）", code="image_missing"
        ) from None


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _article_of(data: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(article_id, article URLs) from a ``freepublish/get`` answer."""
    article_id = data.get("article_id")
    urls: list[str] = []
    detail = data.get("article_detail")
    if isinstance(detail, dict):
        for item in detail.get("item") or []:
            if isinstance(item, dict) and isinstance(item.get("article_url"), str):
                urls.append(item["article_url"])
    return (str(article_id) if article_id else None), urls


# --- settling from platform events (called by the bot) -------------------------------------


async def settle_publish_event(
    db: Database | AsyncSession,
    *,
    account: str,
    publish_id: str,
    publish_status: int,
    article_id: str | None,
    article_urls: list[str],
) -> int | None:
    """Settle the delivery a ``PUBLISHJOBFINISH`` event (or a poll) reports; its id or None."""
    if publish_status == 1:
        return None
    error = publish_status_error(publish_status)
    receipt = None
    if error is None:
        urls = [u for u in article_urls if isinstance(u, str)][:8]
        receipt = Receipt(
            remote_id=publish_id,
            remote_url=urls[0] if urls else None,
            detail={
                "publish_id": publish_id,
                "article_id": article_id or "",
                "article_urls": urls,
                "publish_status": publish_status,
            },
        )
    return await _settle(db, account, publish_id, receipt, error)


async def settle_mass_send_event(
    db: Database | AsyncSession,
    *,
    account: str,
    msg_id: str,
    status: str,
    total: int,
    sent: int,
    errors: int,
) -> int | None:
    """Settle the push a ``MASSSENDJOBFINISH`` event (or a poll) reports; its id or None."""
    if status.strip().lower() == "sending":
        return None
    error = mass_status_error(status)
    receipt = None
    if error is None:
        detail: dict[str, Any] = {"msg_id": msg_id, "status": status[:80]}
        if total >= 0:
            detail.update({"total": total, "sent": sent, "errors": errors})
        receipt = Receipt(remote_id=msg_id, detail=detail)
    return await _settle(db, account, msg_id, receipt, error)


async def _settle(
    db: Database | AsyncSession,
    account: str,
    remote_id: str,
    receipt: Receipt | None,
    error: DeliveryError | None,
) -> int | None:
    if isinstance(db, AsyncSession):
        # The caller's transaction (the bot records the event in the same one).
        delivery_id = await _settle_in(db, account, remote_id, receipt, error)
    else:
        async with db.transaction() as session:
            delivery_id = await _settle_in(session, account, remote_id, receipt, error)
    if delivery_id is not None:
        log.info(
            "wechat delivery settled",
            extra={"delivery_id": delivery_id, "account": account, "ok": error is None},
        )
    return delivery_id


async def _settle_in(
    session: AsyncSession,
    account: str,
    remote_id: str,
    receipt: Receipt | None,
    error: DeliveryError | None,
) -> int | None:
    delivery_id = await queue.settle_confirming(
        session,
        channel=CHANNEL,
        remote_id=remote_id,
        receipt=receipt,
        error=error,
        account=account,
    )
    if delivery_id is None:
        return None
    row = await session.get(Delivery, delivery_id)
    if row is not None and row.action == DeliveryAction.PUBLISH.value:
        await workflow.mark_published_if_settled(session, row.publication_id)
    return delivery_id


def build(
    settings: Settings,
    db: Database,
    http: aiohttp.ClientSession,
    *,
    redis: SharedRedis | None = None,
) -> WeChatChannel | None:
    """The WeChat channel of this deployment, or None when no account is configured."""
    if not settings.wechat.accounts:
        return None
    return WeChatChannel(settings, db, http, redis=redis)


__all__ = [
    "PUBLISH_STATUS_TEXT",
    "WeChatChannel",
    "build",
    "mass_status_error",
    "publish_status_error",
    "settle_mass_send_event",
    "settle_publish_event",
]
