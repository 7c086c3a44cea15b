"""First light: token, upload, draft, publish, batchget; Weibo share and timeline."""

from __future__ import annotations

import asyncio

from tests.sandbox.conftest import Harness, multipart, png_bytes


async def test_publish_round_trip(h: Harness) -> None:
    token = await h.token()
    thumb = await h.wx(
        "material/add_material",
        token=token,
        params={"type": "image"},
        data=multipart("media", png_bytes(), "a.png", "image/png"),
    )
    assert thumb["media_id"]
    draft = await h.wx(
        "draft/add",
        {
            "articles": [
                {
                    "title": "标题",
                    "content": "<p>正文</p>",
                    "thumb_media_id": thumb["media_id"],
                    "content_source_url": "http://127.0.0.1:8080/disclosure/x",
                }
            ]
        },
        token=token,
    )
    sub = await h.wx("freepublish/submit", {"media_id": draft["media_id"]}, token=token)
    assert sub["errcode"] == 0
    await asyncio.sleep(0.1)
    got = await h.wx("freepublish/get", {"publish_id": sub["publish_id"]}, token=token)
    assert got["publish_status"] == 0
    listed = await h.wx(
        "freepublish/batchget", {"offset": 0, "count": 20, "no_content": 1}, token=token
    )
    assert listed["item"][0]["content"]["news_item"][0]["content_source_url"].endswith(
        "/disclosure/x"
    )
    for _ in range(40):
        if h.bot.requests:
            break
        await asyncio.sleep(0.05)
    assert "PUBLISHJOBFINISH" not in h.bot.requests[0]["body"]  # safe mode: encrypted


async def test_weibo_round_trip(h: Harness) -> None:
    status, data = await h.wb(
        "POST", "statuses/share.json", status="通知 http://127.0.0.1:8080/d/1"
    )
    assert status == 200, data
    status, tl = await h.wb("GET", "statuses/user_timeline.json")
    assert tl["statuses"][0]["text"].endswith("http://127.0.0.1:8080/d/1")
