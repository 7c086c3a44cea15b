"""Table tests of the WeChat stand-in's endpoints against the platform facts."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from sandbox.wechat import mass_figures
from tests.sandbox.conftest import Harness, MakeHarness, jpeg_bytes, multipart, png_bytes


async def _thumb(h: Harness, token: str) -> str:
    data = await h.wx(
        "material/add_material",
        token=token,
        params={"type": "image"},
        data=multipart("media", png_bytes(), "t.png", "image/png"),
    )
    return str(data["media_id"])


async def _img_url(h: Harness, token: str) -> str:
    data = await h.wx(
        "media/uploadimg", token=token, data=multipart("media", jpeg_bytes(), "a.jpg", "image/jpeg")
    )
    return str(data["url"])


def _article(thumb: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": "关于医保缴费的通知",
        "author": "市医保局",
        "content": "<p>正文内容</p>",
        "content_source_url": "http://127.0.0.1:8080/disclosure/1",
        "thumb_media_id": thumb,
        **extra,
    }


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"title": "题" * 33}, 45003),
        ({"title": ""}, 45003),
        ({"author": "作" * 17}, 45110),
        ({"digest": "摘" * 129}, 45004),
        ({"content": "字" * 20_000}, 45002),
        ({"content": ""}, 44003),
        ({"content_source_url": "http://x/" + "a" * 1100}, 45005),
        ({"thumb_media_id": ""}, 40007),
        ({"thumb_media_id": "nosuchmedia"}, 40007),
        ({"title": ["list"]}, 47001),
        ({"need_open_comment": 7}, 47001),
    ],
)
async def test_draft_add_field_limits(h: Harness, change: dict[str, Any], errcode: int) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    data = await h.wx("draft/add", {"articles": [_article(thumb, **change)]}, token=token)
    assert data["errcode"] == errcode
    count = await h.wx("draft/count", token=token, method="GET")
    assert count["total_count"] == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"articles": []}, 44003),
        ({"articles": "x"}, 44003),
        ({}, 44003),
        ({"articles": [1]}, 47001),
    ],
)
async def test_draft_add_bad_bodies(h: Harness, body: dict[str, Any], errcode: int) -> None:
    assert (await h.wx("draft/add", body))["errcode"] == errcode


@pytest.mark.parametrize(
    ("raw", "errcode"), [(b"", 44002), (b"{oops", 47001), (b'"str"', 47001), (b"\x00\xff", 47001)]
)
async def test_malformed_json_everywhere(h: Harness, raw: bytes, errcode: int) -> None:
    token = await h.token()
    for path in (
        "draft/add",
        "freepublish/submit",
        "message/mass/sendall",
        "menu/create",
        "message/custom/send",
        "freepublish/batchget",
        "comment/list",
    ):
        data = await h.wx(path, token=token, data=raw)
        assert data["errcode"] == errcode, path


async def test_draft_cleans_content(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    ours = await _img_url(h, token)
    content = (
        f'<p onclick="steal()">文</p><script>alert(1)</script><img src="{ours}">'
        '<img src="http://evil.example/x.png"><a href="javascript:alert(1)">x</a>'
        "<SCRIPT src=//evil></SCRIPT>"
    )
    added = await h.wx("draft/add", {"articles": [_article(thumb, content=content)]}, token=token)
    got = await h.wx("draft/get", {"media_id": added["media_id"]}, token=token)
    item = got["news_item"][0]
    assert "script" not in item["content"].lower()
    assert "onclick" not in item["content"]
    assert "javascript:" not in item["content"]
    assert ours in item["content"]
    assert "evil.example" not in item["content"]
    assert item["digest"] == "文 x"
    assert item["thumb_url"].startswith(h.base)
    # The image URL is served by the sandbox.
    resp = await h.client.get(ours.removeprefix(h.base))
    assert resp.status == 200 and resp.content_type == "image/jpeg"


async def test_draft_default_digest_is_54_chars(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    added = await h.wx(
        "draft/add",
        {"articles": [_article(thumb, content="<p>" + "长" * 300 + "</p>")]},
        token=token,
    )
    got = await h.wx("draft/get", {"media_id": added["media_id"]}, token=token)
    assert got["news_item"][0]["digest"] == "长" * 54


async def test_draft_batchget_count_update_delete(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    ids = [
        (await h.wx("draft/add", {"articles": [_article(thumb, title=f"稿{i}")]}, token=token))[
            "media_id"
        ]
        for i in range(3)
    ]
    page = await h.wx("draft/batchget", {"offset": 0, "count": 2, "no_content": 1}, token=token)
    assert page["total_count"] == 3 and page["item_count"] == 2
    assert "content" not in page["item"][0]["content"]["news_item"][0]
    assert page["item"][0]["content"]["news_item"][0]["title"] == "稿2"
    assert (await h.wx("draft/batchget", {"offset": 0, "count": 21}, token=token))[
        "errcode"
    ] == 47001
    upd = await h.wx(
        "draft/update",
        {"media_id": ids[0], "index": 0, "articles": _article(thumb, title="改")},
        token=token,
    )
    assert upd["errcode"] == 0
    assert (await h.wx("draft/get", {"media_id": ids[0]}, token=token))["news_item"][0][
        "title"
    ] == "改"
    assert (await h.wx("draft/delete", {"media_id": ids[0]}, token=token))["errcode"] == 0
    assert (await h.wx("draft/get", {"media_id": ids[0]}, token=token))["errcode"] == 40007
    assert (await h.wx("draft/count", token=token, method="GET"))["total_count"] == 2


@pytest.mark.parametrize(
    ("path", "params", "content", "filename", "ctype", "errcode"),
    [
        ("media/uploadimg", {}, b"GIF89a" + b"\0" * 20, "a.gif", "image/gif", 40005),
        ("media/uploadimg", {}, png_bytes(1024 * 1024), "big.png", "image/png", 40006),
        ("media/uploadimg", {}, b"<?php evil ?>", "a.png", "image/png", 40005),
        ("material/add_material", {"type": "bogus"}, png_bytes(), "a.png", "image/png", 40004),
        ("material/add_material", {"type": "thumb"}, png_bytes(), "a.png", "image/png", 40005),
        (
            "material/add_material",
            {"type": "thumb"},
            jpeg_bytes(70 * 1024),
            "a.jpg",
            "image/jpeg",
            40006,
        ),
        ("material/add_news", {}, png_bytes(), "a.png", "image/png", 45103),
        ("material/update_news", {}, png_bytes(), "a.png", "image/png", 45103),
    ],
)
async def test_media_errors(
    h: Harness,
    path: str,
    params: dict[str, str],
    content: bytes,
    filename: str,
    ctype: str,
    errcode: int,
) -> None:
    data = await h.wx(path, params=params, data=multipart("media", content, filename, ctype))
    assert data["errcode"] == errcode


async def test_media_needs_multipart(h: Harness) -> None:
    assert (await h.wx("media/uploadimg", data=b"raw"))["errcode"] == 41005
    wrong_field = multipart("file", png_bytes(), "a.png", "image/png")
    assert (await h.wx("media/uploadimg", data=wrong_field))["errcode"] == 41005
    assert (await h.client.get("/sandbox/wechat/mmbiz/nosuch")).status == 404


async def _published(h: Harness, token: str, thumb: str, **extra: Any) -> dict[str, Any]:
    draft = await h.wx("draft/add", {"articles": [_article(thumb, **extra)]}, token=token)
    sub = await h.wx("freepublish/submit", {"media_id": draft["media_id"]}, token=token)
    assert sub["errcode"] == 0, sub
    h.sandbox.clock.advance(1)
    got = await h.wx("freepublish/get", {"publish_id": sub["publish_id"]}, token=token)
    return {**sub, **got, "media_id": draft["media_id"]}


async def test_freepublish_is_asynchronous(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"sandbox.publish_delay_seconds": 60.0})
    token = await h.token()
    thumb = await _thumb(h, token)
    draft = await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token)
    sub = await h.wx("freepublish/submit", {"media_id": draft["media_id"]}, token=token)
    assert re.fullmatch(r"\d+", sub["publish_id"]) and sub["msg_data_id"]
    first = await h.wx("freepublish/get", {"publish_id": sub["publish_id"]}, token=token)
    assert first["publish_status"] == 1
    assert (await h.wx("freepublish/batchget", {"offset": 0, "count": 20}, token=token))[
        "total_count"
    ] == 0
    h.sandbox.clock.advance(60)
    done = await h.wx("freepublish/get", {"publish_id": sub["publish_id"]}, token=token)
    assert done["publish_status"] == 0
    assert done["article_detail"]["item"][0]["article_url"].startswith(
        h.base + "/sandbox/wechat/s/"
    )
    listed = await h.wx(
        "freepublish/batchget", {"offset": 0, "count": 20, "no_content": 0}, token=token
    )
    item = listed["item"][0]
    assert item["article_id"] == done["article_id"]
    news = item["content"]["news_item"][0]
    assert news["content_source_url"] == "http://127.0.0.1:8080/disclosure/1"
    assert news["url"] == done["article_detail"]["item"][0]["article_url"]
    page = await h.client.get(news["url"].removeprefix(h.base))
    assert page.status == 200 and "关于医保缴费的通知" in await page.text()


async def test_freepublish_errors_and_delete(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    assert (await h.wx("freepublish/submit", {"media_id": "nosuch"}, token=token))[
        "errcode"
    ] == 40007
    assert (await h.wx("freepublish/get", {"publish_id": "123"}, token=token))["errcode"] == 53600
    assert (await h.wx("freepublish/getarticle", {"article_id": "x"}, token=token))[
        "errcode"
    ] == 53600
    pub = await _published(h, token, thumb)
    art = await h.wx("freepublish/getarticle", {"article_id": pub["article_id"]}, token=token)
    assert art["news_item"][0]["title"] == "关于医保缴费的通知"
    assert (
        await h.wx("freepublish/delete", {"article_id": pub["article_id"], "index": 9}, token=token)
    )["errcode"] == 47001
    assert (
        await h.wx("freepublish/delete", {"article_id": pub["article_id"], "index": 1}, token=token)
    )["errcode"] == 0
    assert (await h.wx("freepublish/get", {"publish_id": pub["publish_id"]}, token=token))[
        "publish_status"
    ] == 5
    assert (await h.wx("freepublish/batchget", {"offset": 0, "count": 5}, token=token))[
        "total_count"
    ] == 0


async def test_unverified_account_cannot_publish(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"sandbox.unverified_accounts": ["main"]})
    token = await h.token()
    thumb = await _thumb(h, token)
    draft = await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token)
    assert draft["errcode"] == 0
    sub = await h.wx("freepublish/submit", {"media_id": draft["media_id"]}, token=token)
    assert sub["errcode"] == 48001
    mass = await h.wx(
        "message/mass/sendall",
        {
            "filter": {"is_to_all": True},
            "msgtype": "mpnews",
            "mpnews": {"media_id": draft["media_id"]},
        },
        token=token,
    )
    assert mass["errcode"] == 48001


async def test_publish_failure_injected(h: Harness) -> None:
    resp = await h.client.post(
        "/sandbox/_faults", json={"platform": "wechat", "publish_failure_rate": 1.0}
    )
    assert resp.status == 200
    token = await h.token()
    thumb = await _thumb(h, token)
    pub = await _published(h, token, thumb)
    assert pub["publish_status"] == 3 and pub["fail_idx"] == [1]


def _mass(media_id: str, clientmsgid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filter": {"is_to_all": True},
        "mpnews": {"media_id": media_id},
        "msgtype": "mpnews",
        "send_ignore_reprint": 0,
    }
    if clientmsgid:
        body["clientmsgid"] = clientmsgid
    return body


async def test_mass_send_service_quota_and_dedup(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    first = await h.wx("message/mass/sendall", _mass(media, "pub-1"), token=token)
    assert first["errcode"] == 0 and first["msg_id"] and first["msg_data_id"]
    dup = await h.wx("message/mass/sendall", _mass(media, "pub-1"), token=token)
    assert dup["errcode"] == 45065 and dup["msg_id"] == first["msg_id"]
    for i in range(3):
        assert (await h.wx("message/mass/sendall", _mass(media, f"pub-{i + 2}"), token=token))[
            "errcode"
        ] == 0
    assert (await h.wx("message/mass/sendall", _mass(media, "pub-6"), token=token))[
        "errcode"
    ] == 45028
    h.sandbox.clock.advance(32 * 86400)
    token = await h.token()
    assert (await h.wx("message/mass/sendall", _mass(media, "pub-7"), token=token))["errcode"] == 0
    assert (await h.wx("message/mass/sendall", _mass("nosuch"), token=token))["errcode"] == 40007
    assert (await h.wx("message/mass/sendall", {"msgtype": "mpnews"}, token=token))[
        "errcode"
    ] == 47001


async def test_mass_send_subscription_daily_quota(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.account_type": "subscription"})
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    assert (await h.wx("message/mass/sendall", _mass(media), token=token))["errcode"] == 0
    assert (await h.wx("message/mass/sendall", _mass(media), token=token))["errcode"] == 45028
    h.sandbox.clock.advance(86400)
    token = await h.token()
    assert (await h.wx("message/mass/sendall", _mass(media), token=token))["errcode"] == 0


async def test_mass_send_event_counts(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain", "sandbox.followers": 3000})
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    sent = await h.wx("message/mass/sendall", _mass(media, "m-1"), token=token)
    for _ in range(100):
        if any("MASSSENDJOBFINISH" in r["body"] for r in h.bot.requests):
            break
        await asyncio.sleep(0.05)
    body = next(r["body"] for r in h.bot.requests if "MASSSENDJOBFINISH" in r["body"])
    total, filtered, ok, errors = mass_figures(h.sandbox, "main", str(sent["msg_id"]))
    assert total == 3000 and 2900 < filtered < 3000 and ok + errors == filtered
    assert f"<TotalCount>{total}</TotalCount>" in body and f"<SentCount>{ok}</SentCount>" in body
    assert f"<MsgID>{sent['msg_id']}</MsgID>" in body
    status = await h.wx("message/mass/get", {"msg_id": str(sent["msg_id"])}, token=token)
    assert status["msg_status"] == "SEND_SUCCESS"


async def test_preview_and_template(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    openid = h.sandbox.followers("main")[3]
    ok = await h.wx(
        "message/mass/preview",
        {"touser": openid, "msgtype": "mpnews", "mpnews": {"media_id": media}},
        token=token,
    )
    assert ok["errcode"] == 0
    bad = await h.wx(
        "message/mass/preview",
        {"touser": "ostranger", "msgtype": "mpnews", "mpnews": {"media_id": media}},
        token=token,
    )
    assert bad["errcode"] == 40003
    tpl = await h.wx(
        "message/template/send",
        {"touser": openid, "template_id": "TPL1", "data": {"first": {"value": "您的留言已答复"}}},
        token=token,
    )
    assert tpl["errcode"] == 0 and tpl["msgid"]
    assert (await h.wx("message/template/send", {"touser": openid}, token=token))[
        "errcode"
    ] == 40037


async def test_custom_send_window_and_count(h: Harness) -> None:
    token = await h.token()
    openid = h.sandbox.followers("main")[5]
    msg = {"touser": openid, "msgtype": "text", "text": {"content": "答复"}}
    assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 45015
    resp = await h.client.post(
        "/sandbox/wechat/_citizen/send", json={"follower": 5, "content": "你好"}
    )
    assert resp.status == 200
    for _ in range(5):
        assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 0
    assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 45047
    await h.client.post("/sandbox/wechat/_citizen/send", json={"follower": 5, "content": "还在吗"})
    assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 0
    h.sandbox.clock.advance(48 * 3600 + 1)
    token = await h.token()
    assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 45015
    bad = {"touser": "onobody", "msgtype": "text", "text": {"content": "x"}}
    assert (await h.wx("message/custom/send", bad, token=token))["errcode"] == 40003
    long = {**msg, "text": {"content": "长" * 2000}}
    assert (await h.wx("message/custom/send", long, token=token))["errcode"] == 45002


async def test_custom_send_after_click_three_per_minute(h: Harness) -> None:
    token = await h.token()
    openid = h.sandbox.followers("main")[6]
    await h.client.post(
        "/sandbox/wechat/_citizen/send",
        json={"follower": 6, "msgtype": "event", "event": "CLICK", "event_key": "k"},
    )
    msg = {"touser": openid, "msgtype": "text", "text": {"content": "菜单"}}
    for _ in range(3):
        assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 0
    assert (await h.wx("message/custom/send", msg, token=token))["errcode"] == 45047


MENU = {
    "button": [
        {"type": "click", "name": "最新发布", "key": "latest"},
        {
            "name": "互动",
            "sub_button": [{"type": "view", "name": "网站", "url": "http://127.0.0.1/"}],
        },
    ]
}


@pytest.mark.parametrize(
    ("menu", "errcode"),
    [
        ({"button": []}, 40016),
        ({"button": [{"type": "click", "name": "a", "key": "k"}] * 4}, 40016),
        ({"button": [{"type": "click", "name": "名" * 6, "key": "k"}]}, 40018),
        ({"button": [{"type": "click", "name": "", "key": "k"}]}, 40018),
        ({"button": [{"type": "click", "name": "a", "key": "k" * 129}]}, 40019),
        ({"button": [{"type": "teleport", "name": "a"}]}, 40017),
        ({"button": [{"type": "view", "name": "a", "url": "ftp://x"}]}, 40020),
        (
            {
                "button": [
                    {"name": "a", "sub_button": [{"type": "click", "name": "b", "key": "k"}] * 6}
                ]
            },
            40023,
        ),
        ({"button": ["x"]}, 47001),
    ],
)
async def test_menu_errors(h: Harness, menu: dict[str, Any], errcode: int) -> None:
    token = await h.token()
    assert (await h.wx("menu/create", menu, token=token))["errcode"] == errcode
    assert (await h.wx("menu/get", token=token, method="GET"))["errcode"] == 46003


async def test_menu_round_trip(h: Harness) -> None:
    token = await h.token()
    assert (await h.wx("menu/create", MENU, token=token))["errcode"] == 0
    assert (await h.wx("menu/get", token=token, method="GET"))["menu"] == MENU
    assert (await h.wx("menu/delete", token=token, method="GET"))["errcode"] == 0
    assert (await h.wx("menu/get", token=token, method="GET"))["errcode"] == 46003


async def test_users(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"sandbox.followers": 12_345})
    token = await h.token()
    page = await h.wx("user/get", token=token, method="GET")
    assert page["total"] == 12_345 and page["count"] == 10_000
    assert len(set(page["data"]["openid"])) == 10_000
    rest = await h.wx(
        "user/get", token=token, method="GET", params={"next_openid": page["next_openid"]}
    )
    assert rest["count"] == 2_345
    assert (await h.wx("user/get", token=token, method="GET", params={"next_openid": "oX"}))[
        "errcode"
    ] == 40003
    openid = page["data"]["openid"][0]
    info = await h.wx(
        "user/info", token=token, method="GET", params={"openid": openid, "lang": "zh_CN"}
    )
    assert info["subscribe"] == 1 and info["openid"] == openid
    assert (await h.wx("user/info", token=token, method="GET", params={"openid": "nobody"}))[
        "errcode"
    ] == 40003
    # Deterministic from the seed: a second sandbox on the same seed has the same followers.
    again = await make_harness(**{"sandbox.followers": 12_345})
    assert again.sandbox.followers("main") == h.sandbox.followers("main")
    assert all(len(o) == 28 and o.startswith("o") for o in page["data"]["openid"][:50])


async def test_get_endpoints_accept_post_without_body(h: Harness) -> None:
    token = await h.token()
    for path in ("menu/get", "menu/delete", "draft/count", "user/get"):
        data = await h.wx(path, token=token, data=b"")
        assert data["errcode"] in (0, 46003), path
