"""The Weibo channel against canned platform answers: posting with a picture, repeat
content reconciled from the timeline, rate limits and configuration errors, withdrawal."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels.base import ConfigurationError, PermanentError, TransientError
from channels.conformance import context
from channels.weibo import WeiboChannel
from channels.weibo_api import AmbiguousWeiboError
from publisher.db import Database
from publisher.outcomes import Receipt
from tests.channels.helpers import Canned, image_bytes, make_publication, media
from tests.conftest import make_settings

TOKEN = "sandbox-weibo-token-main"


class Platform:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.share_error: tuple[int, int] | None = None  # (http status, error_code)
        self.destroyed: list[str] = []
        self.pics: list[int] = []
        # Like the real platform: links in the stored text become t.cn short links.
        self.shorten = False
        self.shown: list[str] = []
        self.canned = Canned(
            routes={
                "2/statuses/share.json": self._share,
                "2/statuses/user_timeline.json": self._timeline,
                "2/statuses/show.json": self._show,
                "2/statuses/destroy.json": self._destroy,
            }
        )

    async def _share(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        assert form["access_token"] == TOKEN
        pic = form.get("pic")
        if isinstance(pic, web.FileField):
            self.pics.append(len(pic.file.read()))
        if self.share_error is not None:
            status, code = self.share_error
            return web.json_response(
                {"error": "nope", "error_code": code, "request": "/2/statuses/share.json"},
                status=status,
            )
        text = str(form["status"])
        if self.shorten:
            text = re.sub(r"https?://\S+", "http://t.cn/A6x", text)
        number = 4900000000000000 + len(self.posts) + len(self.destroyed)
        post = {"id": number, "idstr": str(number), "text": text}
        self.posts.insert(0, post)
        return web.json_response(post)

    async def _timeline(self, request: web.Request) -> web.StreamResponse:
        assert request.query["access_token"] == TOKEN
        page, count = int(request.query["page"]), int(request.query["count"])
        return web.json_response({"statuses": self.posts[(page - 1) * count : page * count]})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        assert request.query["access_token"] == TOKEN
        sid = request.query["id"]
        self.shown.append(sid)
        for post in self.posts:
            if post["idstr"] == sid:
                return web.json_response(post)
        return web.json_response(
            {"error": "target weibo does not exist!", "error_code": 20101}, status=400
        )

    async def _destroy(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        sid = str(form["id"])
        if not any(p["idstr"] == sid for p in self.posts):
            return web.json_response(
                {"error": "target weibo does not exist!", "error_code": 20101}, status=400
            )
        self.posts = [p for p in self.posts if p["idstr"] != sid]
        self.destroyed.append(sid)
        return web.json_response({"idstr": sid})


@pytest.fixture
async def setup(aiohttp_server: Any, db: Database, database_url: str, tmp_path: Path) -> Any:
    platform = Platform()
    server = await aiohttp_server(platform.canned.app())
    settings = make_settings(
        tmp_path,
        database_url,
        **{
            "weibo.accounts.main.api_base_url": str(server.make_url("/2")),
            "weibo.accounts.main.hashtags": True,
        },
    )
    async with aiohttp.ClientSession() as http:
        yield platform, settings, WeiboChannel(settings, db, http)


async def test_publish_posts_once_with_picture(setup: Any, db: Database, tmp_path: Path) -> None:
    platform, settings, channel = setup
    pic = media(tmp_path, image_bytes(seed=5), "a.png")
    pub = dataclasses.replace(await make_publication(db, settings), images=(pic,))
    rendition = channel.render(pub, "main")
    receipt = await channel.publish(rendition, context(pub, "main", "publish", delivery_id=1))
    assert receipt.remote_id == platform.posts[0]["idstr"]
    assert platform.posts[0]["text"] == rendition.status and "#服务公开#" in rendition.status
    assert platform.pics == [pic.size]
    # A retry after a lost answer finds the post instead of posting again.
    again = await channel.publish(
        rendition, context(pub, "main", "publish", delivery_id=1, attempt=2)
    )
    assert again.remote_id == receipt.remote_id and len(platform.posts) == 1
    found = await channel.find(pub, context(pub, "main", "publish", delivery_id=1, attempt=2))
    assert found is not None and found.remote_id == receipt.remote_id
    [limit] = channel.rate_limits_for("main")
    assert limit.count == 30 and limit.per_seconds == 3600


@pytest.mark.parametrize("code", [20019, 20017, 20111])
async def test_repeat_content_is_reconciled(setup: Any, db: Database, code: int) -> None:
    platform, settings, channel = setup
    pub = await make_publication(db, settings)
    rendition = channel.render(pub, "main")
    await channel.publish(rendition, context(pub, "main", "publish", delivery_id=1))
    platform.share_error = (400, code)
    receipt = await channel.publish(rendition, context(pub, "main", "publish", delivery_id=2))
    assert receipt.remote_id == platform.posts[0]["idstr"] and len(platform.posts) == 1
    # A repeat that is not ours on the timeline is retried later, not forever at once.
    other = await make_publication(db, settings, title="另一条通知")
    with pytest.raises(TransientError) as info:
        await channel.publish(
            channel.render(other, "main"), context(other, "main", "publish", delivery_id=3)
        )
    assert info.value.code == code and info.value.retry_after == 60.0


async def test_repeat_content_is_found_behind_hundreds_of_newer_posts(
    setup: Any, db: Database
) -> None:
    # A busy account: our post went through, then 400 others; a retry answered "repeat
    # content" must still find ours rather than wait and dead-letter.
    platform, settings, channel = setup
    pub = await make_publication(db, settings)
    rendition = channel.render(pub, "main")
    first = await channel.publish(rendition, context(pub, "main", "publish", delivery_id=1))
    for n in range(400):
        platform.posts.insert(0, {"id": n, "idstr": f"other-{n}", "text": f"别的微博 {n}"})
    platform.share_error = (400, 20019)
    again = await channel.publish(rendition, context(pub, "main", "publish", delivery_id=2))
    assert again.remote_id == first.remote_id


@pytest.mark.parametrize(
    ("status", "code", "kind", "retry_after"),
    [
        (403, 10023, TransientError, 900.0),
        (403, 10022, TransientError, 600.0),
        (403, 10024, TransientError, 600.0),
        (400, 20016, TransientError, 120.0),
        (400, 10017, ConfigurationError, None),
        (403, 21327, ConfigurationError, None),
        (403, 21321, ConfigurationError, None),
        (403, 10014, ConfigurationError, None),
        (400, 20012, PermanentError, None),
        (500, 10001, TransientError, None),
    ],
)
async def test_share_errors_are_typed(
    setup: Any, db: Database, status: int, code: int, kind: type, retry_after: float | None
) -> None:
    platform, settings, channel = setup
    pub = await make_publication(db, settings)
    platform.share_error = (status, code)
    with pytest.raises(kind) as info:
        await channel.publish(
            channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
        )
    assert info.value.code == code
    assert TOKEN not in info.value.message
    if retry_after is not None:
        assert info.value.retry_after == retry_after


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("<html>gateway</html>", 502),
        ("not json", 200),
        ("[1, 2]", 200),
        ('{"error_code": "x"}', 400),
    ],
)
async def test_garbage_answers_are_ambiguous(
    setup: Any, db: Database, answer: str, status: int
) -> None:
    platform, settings, channel = setup

    async def garbage(_request: web.Request) -> web.StreamResponse:
        return web.Response(text=answer, status=status)

    platform.canned.routes["2/statuses/share.json"] = garbage
    pub = await make_publication(db, settings)
    with pytest.raises(AmbiguousWeiboError):
        await channel.publish(
            channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
        )


async def test_retract_is_idempotent(setup: Any, db: Database) -> None:
    platform, settings, channel = setup
    pub = await make_publication(db, settings)
    receipt = await channel.publish(
        channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
    )
    ctx = context(pub, "main", "retract", delivery_id=2, remote=receipt)
    await channel.retract(pub, ctx)
    assert platform.destroyed == [receipt.remote_id] and platform.posts == []
    await channel.retract(pub, ctx)  # 20101: already gone
    assert await channel.find(pub, ctx) is not None  # retract's effect is there
    assert await channel.find(pub, context(pub, "main", "publish", delivery_id=1)) is None


async def test_correction_replaces_the_post(setup: Any, db: Database) -> None:
    platform, settings, channel = setup
    pub = await make_publication(db, settings)
    first = await channel.publish(
        channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
    )
    ctx = dataclasses.replace(
        context(pub, "main", "update", delivery_id=2, remote=Receipt(first.remote_id)), revision=2
    )
    receipt = await channel.update(channel.render(pub, "main"), ctx)
    assert receipt.remote_id != first.remote_id
    assert [p["text"][:4] for p in platform.posts] == ["【更正】"]
    assert platform.destroyed == [first.remote_id]
    with pytest.raises(PermanentError):
        await channel.push(channel.render(pub, "main"), ctx)


async def test_same_title_different_links_are_never_confused(setup: Any, db: Database) -> None:
    # Two publications with one title (a notice reissued for another district): each is
    # posted once, and withdrawing one leaves the other's post alone.
    platform, settings, channel = setup
    title = "关于调整部分公交线路的通告"
    a = await make_publication(db, settings, title=title)
    b = await make_publication(db, settings, title=title)
    assert a.url != b.url
    post_a = await channel.publish(
        channel.render(a, "main"), context(a, "main", "publish", delivery_id=1)
    )
    # B's retry (its first answer was lost) must post B, not "find" A's post.
    post_b = await channel.publish(
        channel.render(b, "main"), context(b, "main", "publish", delivery_id=2, attempt=2)
    )
    assert post_b.remote_id != post_a.remote_id and len(platform.posts) == 2
    again = await channel.publish(
        channel.render(b, "main"), context(b, "main", "publish", delivery_id=2, attempt=3)
    )
    assert again.remote_id == post_b.remote_id and len(platform.posts) == 2

    withdraw_a = context(a, "main", "retract", delivery_id=3, remote=post_a)
    receipt = await channel.retract(a, withdraw_a)
    assert receipt.detail["deleted"] == [post_a.remote_id]
    assert platform.destroyed == [post_a.remote_id]
    assert [p["idstr"] for p in platform.posts] == [post_b.remote_id]
    assert await channel.find(a, withdraw_a) is not None  # A is withdrawn
    found_b = await channel.find(b, context(b, "main", "publish", delivery_id=2, attempt=2))
    assert found_b is not None and found_b.remote_id == post_b.remote_id
    # Withdrawing A again touches nothing of B's.
    await channel.retract(a, withdraw_a)
    assert [p["idstr"] for p in platform.posts] == [post_b.remote_id]


async def test_withdrawal_check_asks_for_the_post_by_id(setup: Any, db: Database) -> None:
    # After a crash, a post 400 places down a busy timeline is still there: asking by id
    # says so, where a look at the newest pages would call it deleted.
    platform, settings, channel = setup
    pub = await make_publication(db, settings)
    post = await channel.publish(
        channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
    )
    for n in range(400):
        platform.posts.insert(0, {"id": n, "idstr": f"other-{n}", "text": f"别的微博 {n}"})
    withdraw = context(pub, "main", "retract", delivery_id=2, attempt=2, remote=post)
    assert await channel.find(pub, withdraw) is None
    assert post.remote_id in platform.shown
    await channel.retract(pub, withdraw)
    assert platform.destroyed == [post.remote_id] and len(platform.posts) == 400
    assert await channel.find(pub, withdraw) is not None


async def test_a_post_with_a_shortened_link_is_found_by_its_recorded_id(
    setup: Any, db: Database
) -> None:
    # The real platform rewrites links to t.cn: after a crash between the post and its
    # receipt, only the id recorded at share time tells which post is ours.
    from publisher import queue
    from publisher.models import Delivery

    platform, settings, channel = setup
    platform.shorten = True
    pub = await make_publication(db, settings)
    async with db.transaction() as session:
        await queue.enqueue(session, publication_id=pub.id, channel="weibo", account="main")
    [claimed] = await queue.claim(db, worker_id="w", limit=1, lease_seconds=60)
    ctx = context(pub, "main", "publish", delivery_id=claimed.id)
    rendition = channel.render(pub, "main")
    first = await channel.publish(rendition, ctx)  # the worker dies before recording it
    assert pub.url not in platform.posts[0]["text"]
    async with db.sessions() as session:
        row = await session.get(Delivery, claimed.id)
        assert row is not None and row.receipt["idstr"] == first.remote_id
    retry = dataclasses.replace(ctx, attempt=2)
    assert (await channel.publish(rendition, retry)).remote_id == first.remote_id
    found = await channel.find(pub, retry)
    assert found is not None and found.remote_id == first.remote_id
    assert len(platform.posts) == 1


@pytest.mark.parametrize("problem", ["missing", "not_an_image"])
async def test_an_unusable_picture_is_noted_not_silently_dropped(
    setup: Any, db: Database, tmp_path: Path, problem: str
) -> None:
    platform, settings, channel = setup
    pic = media(tmp_path, image_bytes(seed=9), "a.png")
    if problem == "missing":
        pic.path.unlink()
    else:
        pic.path.write_bytes(b"\x89PNG this is not a picture")
    pub = dataclasses.replace(await make_publication(db, settings), images=(pic,))
    receipt = await channel.publish(
        channel.render(pub, "main"), context(pub, "main", "publish", delivery_id=1)
    )
    assert platform.pics == [] and len(platform.posts) == 1  # posted, without the picture
    assert "不带图发布" in receipt.detail["picture"]


async def test_an_oversized_picture_is_noted_before_approval(
    setup: Any, db: Database, tmp_path: Path
) -> None:
    _platform, settings, channel = setup
    pic = dataclasses.replace(media(tmp_path, image_bytes(seed=3), "big.png"), size=12_000_000)
    pub = dataclasses.replace(await make_publication(db, settings), images=(pic,))
    rendition = channel.render(pub, "main")
    assert any("5 MB" in note for note in rendition.notes)
    small = dataclasses.replace(pub, images=(media(tmp_path, image_bytes(seed=4), "s.png"),))
    assert not any("5 MB" in note for note in channel.render(small, "main").notes)
