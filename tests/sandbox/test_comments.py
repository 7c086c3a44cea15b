"""Comments (留言) on published WeChat articles, and the pages that show them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import Harness, MakeHarness
from tests.sandbox.test_wechat_api import _article, _published, _thumb


async def _setup(h: Harness, **extra: Any) -> tuple[str, dict[str, Any]]:
    token = await h.token()
    thumb = await _thumb(h, token)
    pub = await _published(h, token, thumb, **extra)
    return token, pub


async def _comment(h: Harness, msg_data_id: str, text: str, follower: int = 0) -> Any:
    return await h.client.post(
        "/sandbox/wechat/_followers/comment",
        json={"msg_data_id": msg_data_id, "index": 0, "follower": follower, "text": text},
    )


async def test_comment_lifecycle(h: Harness) -> None:
    token, pub = await _setup(h, need_open_comment=1)
    mdi = pub["msg_data_id"]
    first = await _comment(h, mdi, "<img src=x onerror=alert(1)>请问何时缴费？", follower=3)
    assert first.status == 200
    cid = (await first.json())["user_comment_id"]
    assert (await _comment(h, mdi, "第二条", follower=4)).status == 200
    listed = await h.wx(
        "comment/list",
        {"msg_data_id": mdi, "index": 0, "begin": 0, "count": 50, "type": 0},
        token=token,
    )
    assert listed["total"] == 2
    assert listed["comment"][0]["openid"] == h.sandbox.followers("main")[3]
    addr = {"msg_data_id": mdi, "index": 0, "user_comment_id": cid}
    assert (await h.wx("comment/markelect", addr, token=token))["errcode"] == 0
    elected = await h.wx(
        "comment/list",
        {"msg_data_id": mdi, "index": 0, "begin": 0, "count": 10, "type": 2},
        token=token,
    )
    assert [c["user_comment_id"] for c in elected["comment"]] == [cid]
    assert elected["comment"][0]["comment_type"] == 1
    assert (await h.wx("comment/reply/add", {**addr, "content": "12月31日前"}, token=token))[
        "errcode"
    ] == 0
    assert (await h.wx("comment/reply/add", {**addr, "content": "again"}, token=token))[
        "errcode"
    ] == 88005
    page = await (
        await h.client.get(pub["article_detail"]["item"][0]["article_url"].removeprefix(h.base))
    ).text()
    assert "12月31日前" in page and "精选" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert h.sandbox.followers("main")[3] not in page  # OpenIDs are masked publicly
    assert (await h.wx("comment/reply/delete", addr, token=token))["errcode"] == 0
    assert (await h.wx("comment/unmarkelect", addr, token=token))["errcode"] == 0
    assert (await h.wx("comment/delete", addr, token=token))["errcode"] == 0
    assert (await h.wx("comment/markelect", addr, token=token))["errcode"] == 88004
    listed = await h.wx(
        "comment/list",
        {"msg_data_id": mdi, "index": 0, "begin": 0, "count": 50, "type": 0},
        token=token,
    )
    assert listed["total"] == 1


async def test_open_close(h: Harness) -> None:
    token, pub = await _setup(h)
    mdi = pub["msg_data_id"]
    assert (await _comment(h, mdi, "关闭时")).status == 400
    assert (await h.wx("comment/open", {"msg_data_id": mdi, "index": 0}, token=token))[
        "errcode"
    ] == 0
    assert (await _comment(h, mdi, "开启后")).status == 200
    assert (await h.wx("comment/close", {"msg_data_id": mdi, "index": 0}, token=token))[
        "errcode"
    ] == 0
    assert (await _comment(h, mdi, "又关闭")).status == 400


@pytest.mark.parametrize(
    ("path", "body", "errcode"),
    [
        ("comment/open", {"msg_data_id": "999", "index": 0}, 88001),
        ("comment/open", {"index": 0}, 88001),
        ("comment/open", {"msg_data_id": "MDI", "index": 5}, 88001),
        (
            "comment/list",
            {"msg_data_id": "MDI", "index": 0, "begin": 0, "count": 51, "type": 0},
            88010,
        ),
        (
            "comment/list",
            {"msg_data_id": "MDI", "index": 0, "begin": 0, "count": 0, "type": 0},
            88010,
        ),
        (
            "comment/list",
            {"msg_data_id": "MDI", "index": 0, "begin": 0, "count": 5, "type": 9},
            47001,
        ),
        ("comment/markelect", {"msg_data_id": "MDI", "index": 0, "user_comment_id": 424242}, 88008),
        ("comment/reply/add", {"msg_data_id": "MDI", "index": 0, "user_comment_id": "x"}, 47001),
    ],
)
async def test_comment_errors(h: Harness, path: str, body: dict[str, Any], errcode: int) -> None:
    token, pub = await _setup(h, need_open_comment=1)
    body = {k: (pub["msg_data_id"] if v == "MDI" else v) for k, v in body.items()}
    assert (await h.wx(path, body, token=token))["errcode"] == errcode


async def test_reply_length(h: Harness) -> None:
    token, pub = await _setup(h, need_open_comment=1)
    cid = (await (await _comment(h, pub["msg_data_id"], "问")).json())["user_comment_id"]
    addr = {"msg_data_id": pub["msg_data_id"], "index": 0, "user_comment_id": cid}
    for content in ("", "长" * 601, 5):
        assert (await h.wx("comment/reply/add", {**addr, "content": content}, token=token))[
            "errcode"
        ] == 88007


async def test_without_comment_privilege(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"sandbox.no_comment_accounts": ["main"]})
    token = await h.token()
    thumb = await _thumb(h, token)
    draft = await h.wx(
        "draft/add", {"articles": [_article(thumb, need_open_comment=1)]}, token=token
    )
    assert draft["errcode"] == 88000
    pub = await _published(h, token, thumb)
    listed = await h.wx(
        "comment/list",
        {"msg_data_id": pub["msg_data_id"], "index": 0, "begin": 0, "count": 5, "type": 0},
        token=token,
    )
    assert listed["errcode"] == 88000


@pytest.mark.parametrize(
    "body",
    [
        {"msg_data_id": "abc", "text": "x"},
        {"msg_data_id": "1", "index": 9, "text": "x"},
        {"msg_data_id": "1", "text": "x"},
        {"text": "x"},
        [1],
        {"msg_data_id": "1", "text": ""},
    ],
)
async def test_follower_comment_validation(h: Harness, body: Any) -> None:
    resp = await h.client.post("/sandbox/wechat/_followers/comment", json=body)
    assert resp.status == 400


async def test_pages(h: Harness) -> None:
    _token, pub = await _setup(h, need_open_comment=1, title="<b>标题</b>")
    index = await (await h.client.get("/sandbox/")).text()
    assert "/sandbox/wechat/main/phone" in index and "/sandbox/weibo/main" in index
    articles = await (await h.client.get("/sandbox/wechat/main/articles")).text()
    assert "&lt;b&gt;标题&lt;/b&gt;" in articles
    url = pub["article_detail"]["item"][0]["article_url"].removeprefix(h.base)
    resp = await h.client.post(
        url.split("?")[0],
        data={"idx": "1", "follower": "2", "text": "页面留言"},
        allow_redirects=False,
    )
    assert resp.status == 303
    page = await h.client.get(url)
    assert "页面留言" in await page.text()
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    assert (await h.client.get("/sandbox/wechat/s/nosuch?idx=1")).status == 404
    assert (await h.client.get(url.split("?")[0] + "?idx=7")).status == 404
    assert (await h.client.get(url.split("?")[0] + "?idx=abc")).status == 400
    assert (await h.client.post(url.split("?")[0], data={"idx": "1", "text": ""})).status == 400
    # Weibo timeline page with a follower's comment through the form.
    _, post = await h.wb(
        "POST", "statuses/share.json", status="<i>微博</i> http://127.0.0.1:8080/x"
    )
    resp = await h.client.post(
        "/sandbox/weibo/main",
        data={"status_id": str(post["id"]), "follower": "5", "text": "<script>x</script>评论"},
        allow_redirects=False,
    )
    assert resp.status == 303
    timeline = await (await h.client.get("/sandbox/weibo/main")).text()
    assert (
        "&lt;i&gt;微博&lt;/i&gt;" in timeline and "&lt;script&gt;x&lt;/script&gt;评论" in timeline
    )
    for data in (
        {"status_id": "abc", "text": "x"},
        {"status_id": "1", "text": "x"},
        {"status_id": str(post["id"]), "text": ""},
    ):
        assert (await h.client.post("/sandbox/weibo/main", data=data)).status == 400
    assert (await h.client.get("/sandbox/weibo/nosuch")).status == 404
