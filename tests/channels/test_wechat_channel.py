"""The WeChat channel against canned platform answers: uploads, drafts, submit, push,
settling by event, error mapping, and reconciling calls whose answer was lost."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import select

from channels.base import ConfigurationError, PermanentError, TransientError, WaitForWindow
from channels.conformance import context
from channels.wechat import WeChatChannel, settle_mass_send_event, settle_publish_event
from channels.wechat_api import AmbiguousError
from govcast.settings import Settings
from publisher import queue
from publisher.db import Database
from publisher.models import Alert, Delivery
from publisher.outcomes import Receipt
from tests.channels.helpers import Canned, image_bytes, json_answer, make_publication, media
from tests.conftest import make_settings

TOKEN = {"access_token": "AT", "expires_in": 7200}


class Platform:
    """Canned WeChat answers; records what was sent."""

    def __init__(self) -> None:
        self.sent: dict[str, list[Any]] = {}
        self.uploaded_sizes: list[int] = []
        self.batch: list[dict[str, Any]] = []
        self.status = 0
        self.submit: web.StreamResponse | None = None
        self.canned = Canned(
            routes={
                "cgi-bin/stable_token": json_answer(TOKEN),
                "cgi-bin/media/uploadimg": self._upload("url"),
                "cgi-bin/material/add_material": self._upload("media_id"),
                "cgi-bin/draft/add": self._json("draft/add", {"media_id": "DRAFT-1"}),
                "cgi-bin/freepublish/submit": self._submit,
                "cgi-bin/freepublish/get": self._get,
                "cgi-bin/freepublish/batchget": self._batchget,
                "cgi-bin/freepublish/delete": self._json("freepublish/delete", {"errcode": 0}),
                "cgi-bin/message/mass/sendall": self._json(
                    "mass/sendall", {"errcode": 0, "msg_id": 1000001, "msg_data_id": 2247}
                ),
            }
        )

    def _upload(self, key: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            form = await request.post()
            media = form["media"]
            assert isinstance(media, web.FileField)
            data = media.file.read()
            self.uploaded_sizes.append(len(data))
            Image.open(io.BytesIO(data)).verify()
            value = (
                f"https://mmbiz.qpic.cn/{len(self.uploaded_sizes)}" if key == "url" else "THUMB-1"
            )
            return web.json_response({key: value})

        return handler

    def _json(self, name: str, answer: dict[str, Any]) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.sent.setdefault(name, []).append(json.loads(await request.read()))
            return web.json_response(answer)

        return handler

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        self.sent.setdefault("submit", []).append(json.loads(await request.read()))
        if self.submit is not None:
            return self.submit
        return web.json_response({"errcode": 0, "publish_id": "PUB-1", "msg_data_id": "2247"})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "publish_id": "PUB-1",
                "publish_status": self.status,
                "article_id": "ART-1" if self.status == 0 else None,
                "article_detail": {
                    "count": 1,
                    "item": [{"idx": 1, "article_url": "https://mp.weixin.qq.com/s/ART-1"}],
                },
            }
        )

    async def _batchget(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.sent.setdefault("batchget", []).append(body)
        items = self.batch[body["offset"] : body["offset"] + body["count"]]
        return web.json_response(
            {"total_count": len(self.batch), "item_count": len(items), "item": items}
        )


@pytest.fixture
async def platform(aiohttp_server: Any) -> Any:
    plat = Platform()
    server = await aiohttp_server(plat.canned.app())
    plat.base = str(server.make_url("/cgi-bin"))  # type: ignore[attr-defined]
    return plat


def _settings(tmp_path: Path, database_url: str, base: str, **extra: Any) -> Settings:
    return make_settings(
        tmp_path, database_url, **{"wechat.accounts.main.api_base_url": base, **extra}
    )


async def test_publish_rehosts_images_and_submits(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    small = media(tmp_path, image_bytes(seed=2), "a.png")
    big = media(tmp_path, image_bytes((1400, 1000), noise=True), "big.png")
    pub = await make_publication(db, settings)
    pub = dataclasses.replace(
        pub,
        body_html=f'<p>一</p><img src="{small.url}"><p>二</p><img src="{big.url}"><img src="{small.url}">',
        images=(small, big),
    )
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        rendition = channel.render(pub, "main")
        receipt = await channel.publish(rendition, context(pub, "main", "publish", delivery_id=1))
        assert receipt.pending and receipt.remote_id == "PUB-1"
        assert receipt.detail == {
            "publish_id": "PUB-1",
            "msg_data_id": "2247",
            "media_id": "DRAFT-1",
        }
        [draft] = platform.sent["draft/add"]
        article = draft["articles"][0]
        assert "govcast-img" not in article["content"]
        assert article["content"].count("https://mmbiz.qpic.cn/") == 3
        assert article["thumb_media_id"] == "THUMB-1"
        assert article["content_source_url"] == pub.url
        assert platform.uploaded_sizes[1] < 1024 * 1024  # the big one was downscaled
        assert platform.sent["submit"] == [{"media_id": "DRAFT-1"}]
        uploads = platform.canned.calls["cgi-bin/media/uploadimg"]
        assert uploads == 2

        # The same images are not uploaded twice (a retry or a later publication).
        platform.status = 0
        found = await channel.find(pub, context(pub, "main", "publish", delivery_id=1, attempt=2))
        assert found is not None and not found.pending
        assert found.detail["article_id"] == "ART-1"
        assert found.remote_url == "https://mp.weixin.qq.com/s/ART-1"
        other = await make_publication(db, settings)
        other = dataclasses.replace(other, body_html=f'<img src="{small.url}">', images=(small,))
        await channel.publish(
            channel.render(other, "main"), context(other, "main", "publish", delivery_id=2)
        )
        assert platform.canned.calls["cgi-bin/media/uploadimg"] == uploads


async def test_publish_without_images_uses_generated_cover(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        await channel.publish(
            channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
        )
    assert platform.canned.calls["cgi-bin/material/add_material"] == 1
    assert "cgi-bin/media/uploadimg" not in platform.canned.calls


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        ({"errcode": 48001, "errmsg": "api unauthorized"}, ConfigurationError, 48001),
        ({"errcode": -1, "errmsg": "system error"}, TransientError, -1),
        ({"errcode": 45009, "errmsg": "reach max api daily quota limit"}, TransientError, 45009),
        ({"errcode": 45011, "errmsg": "api minute-quota reach limit"}, TransientError, 45011),
        ({"errcode": 45103, "errmsg": "This API has been unsupported"}, PermanentError, 45103),
        ({"errcode": 53503, "errmsg": "draft can not be published"}, PermanentError, 53503),
    ],
)
async def test_submit_errors_are_typed(
    platform: Platform,
    db: Database,
    database_url: str,
    tmp_path: Path,
    answer: dict[str, Any],
    kind: type,
    code: int,
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    platform.submit = web.json_response(answer)
    pub = await make_publication(db, settings)
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        with pytest.raises(kind) as info:
            await channel.publish(
                channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
            )
        assert info.value.code == code
        if code == 45009:
            assert (info.value.retry_after or 0) >= 60
        # A definite refusal leaves nothing to wait for: the next attempt publishes at once.
        platform.submit = None
        receipt = await channel.publish(
            channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1, attempt=2)
        )
        assert receipt.remote_id == "PUB-1"


async def test_lost_submit_answer_is_reconciled_not_resubmitted(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    platform.submit = web.Response(status=502, text="bad gateway")
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http, submit_settle_seconds=0.5)
        rendition = channel.render(pub, "main")
        with pytest.raises(AmbiguousError):
            await channel.publish(rendition, context(pub, "main", "publish", delivery_id=1))
        # Right after: unknown outcome, wait rather than submit a second copy.
        with pytest.raises(TransientError) as info:
            await channel.publish(
                rendition, context(pub, "main", "publish", delivery_id=1, attempt=2)
            )
        assert info.value.code == "submit_unknown"
        assert len(platform.sent["submit"]) == 1
        # The platform did publish it: the article shows up in batchget.
        platform.batch = [
            {
                "article_id": "OTHER",
                "content": {"news_item": [{"content_source_url": "http://x/other", "url": "u0"}]},
            },
            {
                "article_id": "ART-9",
                "content": {
                    "news_item": [
                        {"content_source_url": pub.url, "url": "https://mp.weixin.qq.com/s/9"}
                    ]
                },
            },
        ]
        await asyncio.sleep(0.6)
        receipt = await channel.publish(
            rendition, context(pub, "main", "publish", delivery_id=1, attempt=3)
        )
        assert receipt.detail["article_id"] == "ART-9" and not receipt.pending
        assert len(platform.sent["submit"]) == 1


async def test_push_is_deduplicated_and_waits_for_quota(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    remote = Receipt(remote_id="PUB-1", detail={"media_id": "DRAFT-7", "article_id": "ART-1"})
    ctx = context(pub, "main", "push", delivery_id=5, remote=remote)
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        rendition = channel.render(pub, "main")
        receipt = await channel.push(rendition, ctx)
        assert receipt.pending and receipt.remote_id == "1000001"
        # The published draft (DRAFT-7) left the draft box when it was published: the
        # push mass-sends a draft of its own, with the same article.
        [added] = platform.sent["draft/add"]
        assert added["articles"][0]["content_source_url"] == pub.url
        sent = platform.sent["mass/sendall"][0]
        assert sent["clientmsgid"] == ctx.idempotency_key and sent["mpnews"] == {
            "media_id": "DRAFT-1"
        }
        platform.canned.routes["cgi-bin/message/mass/sendall"] = json_answer(
            {"errcode": 45065, "errmsg": "clientmsgid exist"}
        )
        again = await channel.push(rendition, dataclasses.replace(ctx, attempt=2))
        assert not again.pending and again.detail["repeat"] is True
        platform.canned.routes["cgi-bin/message/mass/sendall"] = json_answer(
            {"errcode": 45028, "errmsg": "has no masssend quota"}
        )
        with pytest.raises(WaitForWindow) as info:
            await channel.push(rendition, ctx)
        assert info.value.code == 45028 and (info.value.retry_after or 0) >= 60
        # Every retry reused the push's draft: one draft/add in all.
        assert len(platform.sent["draft/add"]) == 1
        assert all(s["mpnews"]["media_id"] == "DRAFT-1" for s in platform.sent["mass/sendall"])
        limits = channel.rate_limits_for("main")
        assert any(lim.actions == frozenset({"push"}) and lim.count == 4 for lim in limits)
        # Not published on this account (no publish receipt): nothing to push.
        with pytest.raises(PermanentError) as refused:
            await channel.push(rendition, context(pub, "main", "push", delivery_id=6))
        assert refused.value.code == "not_published"
        assert len(platform.sent["draft/add"]) == 1


async def test_push_adds_its_draft_again_when_it_was_deleted(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    remote = Receipt(remote_id="PUB-1", detail={"article_id": "ART-1"})
    ctx = context(pub, "main", "push", delivery_id=5, remote=remote)
    platform.canned.routes["cgi-bin/message/mass/sendall"] = json_answer(
        {"errcode": 40007, "errmsg": "invalid media_id"}
    )
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        rendition = channel.render(pub, "main")
        with pytest.raises(TransientError) as info:
            await channel.push(rendition, ctx)
        assert info.value.code == 40007 and not isinstance(info.value, WaitForWindow)
        platform.canned.routes["cgi-bin/message/mass/sendall"] = json_answer(
            {"errcode": 0, "msg_id": 1000002, "msg_data_id": 2248}
        )
        receipt = await channel.push(rendition, dataclasses.replace(ctx, attempt=2))
    assert receipt.remote_id == "1000002"
    assert len(platform.sent["draft/add"]) == 2


async def test_withdrawal_check_asks_for_the_article_by_id(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    # After a crash, an article far down a busy account's list (not in the newest pages
    # of freepublish/batchget) is still up: asking by article_id says so.
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    live = {"ART-1": True}

    async def getarticle(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        platform.sent.setdefault("getarticle", []).append(body)
        if not live.get(body["article_id"]):
            return web.json_response({"errcode": 53600, "errmsg": "Article ID 无效"})
        return web.json_response(
            {"news_item": [{"title": pub.title, "url": "u", "is_deleted": False}]}
        )

    async def delete(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        platform.sent.setdefault("freepublish/delete", []).append(body)
        ok = live.pop(body["article_id"], False)
        return web.json_response({"errcode": 0} if ok else {"errcode": 53600, "errmsg": "x"})

    platform.canned.routes["cgi-bin/freepublish/getarticle"] = getarticle
    platform.canned.routes["cgi-bin/freepublish/delete"] = delete
    platform.batch = [
        {"article_id": f"OTHER-{n}", "content": {"news_item": [{"content_source_url": "x"}]}}
        for n in range(150)
    ]
    ctx = context(
        pub,
        "main",
        "retract",
        delivery_id=3,
        attempt=2,
        remote=Receipt("PUB-1", detail={"article_id": "ART-1"}),
    )
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        assert await channel.find(pub, ctx) is None
        assert platform.sent["getarticle"] == [{"article_id": "ART-1"}]
        receipt = await channel.retract(pub, ctx)
        assert receipt.detail["deleted"] == ["ART-1"]
        found = await channel.find(pub, ctx)
        assert found is not None and found.detail["deleted"] is True
        # A repeated withdrawal: the delete answers 53600 and the article is confirmed gone.
        again = await channel.retract(pub, ctx)
        assert again.detail["deleted"] == ["ART-1"]


async def test_retract_deletes_the_article(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        ctx = context(
            pub,
            "main",
            "retract",
            delivery_id=3,
            remote=Receipt("PUB-1", detail={"article_id": "ART-1"}),
        )
        receipt = await channel.retract(pub, ctx)
    assert platform.sent["freepublish/delete"] == [{"article_id": "ART-1", "index": 0}]
    assert receipt.detail["deleted"] == ["ART-1"]


async def _confirming(db: Database, pub_id: int, remote_id: str, action: str = "publish") -> int:
    async with db.transaction() as session:
        await queue.enqueue(
            session, publication_id=pub_id, channel="wechat", account="main", action=action
        )
    [claimed] = await queue.claim(db, worker_id="w", limit=1, lease_seconds=60, channels=["wechat"])
    async with db.transaction() as session:
        await queue.complete(
            session, claimed, Receipt(remote_id=remote_id, pending=True, detail={"media_id": "D"})
        )
    return claimed.id


@pytest.mark.parametrize(
    ("status", "state", "words"),
    [(0, "done", ""), (2, "dead", "原创"), (4, "dead", "审核"), (6, "dead", "封禁")],
)
async def test_publish_event_settles_the_delivery(
    db: Database, settings: Settings, status: int, state: str, words: str
) -> None:
    pub = await make_publication(db, settings)
    delivery_id = await _confirming(db, pub.id, "PUB-77")
    assert (
        await settle_publish_event(
            db,
            account="other",
            publish_id="PUB-77",
            publish_status=status,
            article_id="A",
            article_urls=["u"],
        )
        is None
    )
    assert (
        await settle_publish_event(
            db,
            account="main",
            publish_id="PUB-77",
            publish_status=1,
            article_id=None,
            article_urls=[],
        )
        is None
    )
    settled = await settle_publish_event(
        db,
        account="main",
        publish_id="PUB-77",
        publish_status=status,
        article_id="ART-7",
        article_urls=["https://mp.weixin.qq.com/s/7"],
    )
    assert settled == delivery_id
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None and row.state == state
        if state == "done":
            assert row.remote_url == "https://mp.weixin.qq.com/s/7"
            assert row.receipt["article_id"] == "ART-7" and row.receipt["media_id"] == "D"
        else:
            assert words in (row.last_error or "")
            alerts = (
                (await session.execute(select(Alert).where(Alert.delivery_id == delivery_id)))
                .scalars()
                .all()
            )
            assert alerts
    # A repeated event changes nothing.
    assert (
        await settle_publish_event(
            db,
            account="main",
            publish_id="PUB-77",
            publish_status=status,
            article_id="ART-7",
            article_urls=[],
        )
        is None
    )


async def test_mass_send_event_settles_the_push(db: Database, settings: Settings) -> None:
    pub = await make_publication(db, settings)
    delivery_id = await _confirming(db, pub.id, "MSG-1", action="push")
    assert (
        await settle_mass_send_event(
            db, account="main", msg_id="MSG-1", status="sending", total=1, sent=0, errors=0
        )
        is None
    )
    assert (
        await settle_mass_send_event(
            db, account="main", msg_id="MSG-1", status="send success", total=10, sent=9, errors=1
        )
        == delivery_id
    )
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None and row.state == "done" and row.receipt["sent"] == 9


async def test_poll_tick_settles_confirming_publishes(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    delivery_id = await _confirming(db, pub.id, "PUB-1")
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http)
        [tick] = channel.ticks()
        platform.status = 1
        assert await tick.run() == 0
        platform.status = 0
        assert await tick.run() == 1
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None and row.state == "done" and row.receipt["article_id"] == "ART-1"


async def test_event_settles_inside_the_callers_transaction(
    db: Database, settings: Settings
) -> None:
    pub = await make_publication(db, settings)
    delivery_id = await _confirming(db, pub.id, "PUB-88")
    async with db.transaction() as session:
        assert (
            await settle_publish_event(
                session,
                account="main",
                publish_id="PUB-88",
                publish_status=0,
                article_id="A",
                article_urls=[],
            )
            == delivery_id
        )
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None and row.state == "done"


async def test_lost_submit_is_found_behind_hundreds_of_newer_articles(
    platform: Platform, db: Database, database_url: str, tmp_path: Path
) -> None:
    # A busy account: our submit went through but its answer was lost, then 400 other
    # articles were published before the next attempt looked. Found, not posted again.
    settings = _settings(tmp_path, database_url, platform.base)  # type: ignore[attr-defined]
    pub = await make_publication(db, settings)
    platform.submit = web.Response(status=502, text="bad gateway")
    now = int(time.time())
    async with aiohttp.ClientSession() as http:
        channel = WeChatChannel(settings, db, http, submit_settle_seconds=0.0)
        rendition = channel.render(pub, "main")
        with pytest.raises(AmbiguousError):
            await channel.publish(rendition, context(pub, "main", "publish", delivery_id=1))
        ours = {
            "article_id": "ART-OURS",
            "update_time": now,
            "content": {"news_item": [{"content_source_url": pub.url, "url": "u-ours"}]},
        }
        others = [
            {
                "article_id": f"OTHER-{n}",
                "update_time": now,
                "content": {"news_item": [{"content_source_url": f"http://x/{n}", "url": "u"}]},
            }
            for n in range(400)
        ]
        platform.batch = [*others, ours]
        receipt = await channel.publish(
            rendition, context(pub, "main", "publish", delivery_id=1, attempt=2)
        )
        assert receipt.detail["article_id"] == "ART-OURS"
        assert len(platform.sent["submit"]) == 1
        pages = len(platform.sent["batchget"])
        assert pages == 21  # 401 articles, 20 a page

        # Not there at all: the look stops at the first page older than the draft, rather
        # than walking the account's whole history, and then the article is submitted.
        second = await make_publication(db, settings)
        rendition = channel.render(second, "main")
        platform.submit = web.Response(status=502, text="bad gateway")
        with pytest.raises(AmbiguousError):
            await channel.publish(rendition, context(second, "main", "publish", delivery_id=2))
        platform.submit = None
        platform.batch = [others[0], *({**item, "update_time": now - 86_400} for item in others)]
        before = len(platform.sent["batchget"])
        receipt = await channel.publish(
            rendition, context(second, "main", "publish", delivery_id=2, attempt=2)
        )
        assert receipt.remote_id == "PUB-1" and receipt.pending
        assert len(platform.sent["batchget"]) - before == 2
        assert len(platform.sent["submit"]) == 3
