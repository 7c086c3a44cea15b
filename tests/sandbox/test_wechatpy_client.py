"""wechatpy's own synchronous client, pointed at a listening sandbox, works for the
endpoints it wraps: evidence the stand-in matches what real clients send and expect."""

from __future__ import annotations

import asyncio
import io
import time
from functools import partial
from typing import Any

import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from tests.sandbox.conftest import APPID, SECRET, Harness, png_bytes


class SandboxClient(WeChatClient):  # type: ignore[misc]
    """wechatpy pointed at the sandbox: its token URL is hard-coded, so override it."""

    def __init__(self, base: str) -> None:
        self.API_BASE_URL = f"{base}/sandbox/wechat/cgi-bin/"
        super().__init__(APPID, SECRET, timeout=10)

    def fetch_access_token(self) -> Any:
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def _scenario(base: str) -> dict[str, Any]:
    client = SandboxClient(base)
    out: dict[str, Any] = {}
    thumb = client.material.add("image", ("cover.png", io.BytesIO(png_bytes()), "image/png"))
    draft = client.draft.add(
        [
            {
                "title": "wechatpy 草稿",
                "content": "<p>正文</p>",
                "thumb_media_id": thumb["media_id"],
                "content_source_url": "http://127.0.0.1:8080/disclosure/9",
            }
        ]
    )
    out["draft_count"] = client.draft.count()["total_count"]
    out["draft_title"] = client.draft.get(draft["media_id"])["news_item"][0]["title"]
    out["draft_list"] = client.draft.batchget(0, 10)["item_count"]
    sub = client.freepublish.submit(draft["media_id"])
    status = None
    for _ in range(100):
        status = client.freepublish.get(sub["publish_id"])
        if status["publish_status"] != 1:
            break
        time.sleep(0.05)
    out["publish_status"] = status["publish_status"] if status else None
    listed = client.freepublish.batchget(0, 10)
    out["listed_source"] = listed["item"][0]["content"]["news_item"][0]["content_source_url"]
    article_id = listed["item"][0]["article_id"]
    out["article_title"] = client.freepublish.getarticle(article_id)["news_item"][0]["title"]
    client.menu.create({"button": [{"type": "click", "name": "最新", "key": "latest"}]})
    out["menu"] = client.menu.get()["menu"]["button"][0]["key"]
    client.menu.delete()
    out["menu_after_delete"] = client.menu.get()
    followers = client.user.get_followers()
    out["followers"] = followers["total"]
    out["user"] = client.user.get(followers["data"]["openid"][0])
    client.freepublish.delete(article_id)
    out["after_delete"] = client.freepublish.batchget(0, 10)["total_count"]
    # Published, the draft has left the draft box.
    try:
        client.draft.get(draft["media_id"])
    except WeChatClientException as exc:
        out["published_draft"] = exc.errcode
    out["draft_count_after_publish"] = client.draft.count()["total_count"]
    other = client.draft.add(
        [{"title": "另一篇", "content": "<p>正文</p>", "thumb_media_id": thumb["media_id"]}]
    )
    client.draft.delete(other["media_id"])
    try:
        client.draft.get(other["media_id"])
    except WeChatClientException as exc:
        out["missing_draft"] = exc.errcode
    return out


async def test_wechatpy_client_against_sandbox(h: Harness) -> None:
    out = await asyncio.to_thread(_scenario, h.base)
    assert out["draft_count"] == 1 and out["draft_list"] == 1
    assert out["draft_title"] == "wechatpy 草稿"
    assert out["publish_status"] == 0
    assert out["listed_source"] == "http://127.0.0.1:8080/disclosure/9"
    assert out["article_title"] == "wechatpy 草稿"
    assert out["menu"] == "latest" and out["menu_after_delete"] is None
    assert out["followers"] == 200
    assert out["user"]["subscribe"] == 1
    assert out["after_delete"] == 0
    assert out["published_draft"] == 40007 and out["draft_count_after_publish"] == 0
    assert out["missing_draft"] == 40007


def _stale_token(base: str) -> int:
    client = SandboxClient(base)
    client.session.set(f"{APPID}_access_token", "staleTOKEN", 7200)
    # wechatpy refetches on 40001 and retries: the sandbox issues a fresh token.
    return int(client.user.get_followers()["total"])


async def test_wechatpy_recovers_from_stale_token(h: Harness) -> None:
    assert await asyncio.to_thread(_stale_token, h.base) == 200


def _retired(base: str) -> int:
    client = SandboxClient(base)
    try:
        client.post("material/add_news", data={"articles": []})
    except WeChatClientException as exc:
        return int(exc.errcode)
    raise AssertionError("add_news must fail")


@pytest.mark.parametrize("runner", [_retired])
async def test_wechatpy_sees_retired_api(h: Harness, runner: Any) -> None:
    assert await asyncio.to_thread(runner, h.base) == 45103


def _errcode(call: Any) -> int:
    try:
        call()
    except WeChatClientException as exc:
        return int(exc.errcode)
    return 0


def _messages(base: str, openid: str) -> dict[str, Any]:
    client = SandboxClient(base)
    out: dict[str, Any] = {}
    url = client.media.upload_image(("body.png", io.BytesIO(png_bytes(2048)), "image/png"))
    out["image_url"] = url
    thumb = client.material.add("image", ("cover.png", io.BytesIO(png_bytes()), "image/png"))
    draft = client.draft.add(
        [
            {
                "title": "群发图文",
                "content": f'<p>正文</p><img src="{url}">',
                "thumb_media_id": thumb["media_id"],
            }
        ]
    )
    out["content"] = client.draft.get(draft["media_id"])["news_item"][0]["content"]
    sent = client.message.send_mass_article(
        draft["media_id"], is_to_all=True, client_msg_id="wechatpy-mass-1"
    )
    out["mass"] = sent
    out["mass_again"] = _errcode(
        lambda: client.message.send_mass_article(
            draft["media_id"], is_to_all=True, client_msg_id="wechatpy-mass-1"
        )
    )
    out["mass_status"] = client.message.get_mass(sent["msg_id"])["msg_status"]
    out["preview"] = client.message.send_mass_article(draft["media_id"], openid, preview=True)[
        "errcode"
    ]
    out["text_no_window"] = _errcode(lambda: client.message.send_text(openid, "答复"))
    out["template"] = client.message.send_template(
        openid, "TPL-REPLY", {"first": {"value": "您的申请已受理"}}, url="http://127.0.0.1/c/1"
    )
    return out


def _text_in_window(base: str, openid: str) -> list[int]:
    client = SandboxClient(base)
    return [_errcode(partial(client.message.send_text, openid, f"答复{i}")) for i in range(6)]


async def test_wechatpy_messages_against_sandbox(h: Harness) -> None:
    openid = h.sandbox.followers("main")[8]
    out = await asyncio.to_thread(_messages, h.base, openid)
    assert out["image_url"].startswith(h.base + "/sandbox/wechat/mmbiz/")
    served = await h.client.get(out["image_url"].removeprefix(h.base))
    assert served.status == 200 and served.content_type == "image/png"
    # The uploadimg URL is accepted inside the article body (others are dropped).
    assert out["image_url"] in out["content"]
    assert out["mass"]["errcode"] == 0 and out["mass"]["msg_id"] and out["mass"]["msg_data_id"]
    assert out["mass_again"] == 45065
    assert out["mass_status"] in ("SENDING", "SEND_SUCCESS")
    assert out["preview"] == 0
    assert out["text_no_window"] == 45015
    assert out["template"]["errcode"] == 0 and out["template"]["msgid"]
    page = await (await h.client.get("/sandbox/wechat/main/phone?follower=8")).text()
    assert "TPL-REPLY" in page and "您的申请已受理" in page
    # After the citizen writes, wechatpy's send_text gets 5 through, then 45047.
    resp = await h.client.post(
        "/sandbox/wechat/_citizen/send", json={"follower": 8, "content": "请问进度"}
    )
    assert resp.status == 200
    codes = await asyncio.to_thread(_text_in_window, h.base, openid)
    assert codes == [0, 0, 0, 0, 0, 45047]
