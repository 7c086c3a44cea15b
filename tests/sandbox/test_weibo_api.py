"""Table tests of the Weibo stand-in against the platform facts."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sandbox.weibo import has_safe_link, weibo_length
from tests.sandbox.conftest import WEIBO_TOKEN, Harness, MakeHarness, jpeg_bytes, png_bytes

LINK = "http://127.0.0.1:8080/disclosure/1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("中文", 2), ("ab", 1), ("abc", 2), ("", 0), ("中a", 2), ("😀", 1)],
)
def test_weibo_length(text: str, expected: int) -> None:
    assert weibo_length(text) == expected


@pytest.mark.parametrize(
    ("text", "domain", "ok"),
    [
        (f"通知 {LINK}", "127.0.0.1", True),
        ("通知 https://www.gov.example.cn/a", "gov.example.cn", True),
        ("通知 https://gov.example.cn.evil.com/a", "gov.example.cn", False),
        ("通知 https://evilgov.example.cn/a", "gov.example.cn", False),
        ("通知 127.0.0.1/a", "127.0.0.1", False),
        ("通知", "127.0.0.1", False),
    ],
)
def test_safe_link(text: str, domain: str, ok: bool) -> None:
    assert has_safe_link(text, domain) is ok


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"status": "长" * 130 + " " + LINK}, 400, 20012),
        ({"status": "没有链接的微博"}, 400, 10017),
        ({"status": "别的域名 http://example.com/x"}, 400, 10017),
        ({}, 400, 10016),
        ({"status": "   "}, 400, 10016),
    ],
)
async def test_share_errors(h: Harness, fields: dict[str, str], status: int, code: int) -> None:
    got_status, data = await h.wb("POST", "statuses/share.json", **fields)
    assert (got_status, data["error_code"]) == (status, code)
    assert data["request"] == "/2/statuses/share.json" and data["error"]
    _, timeline = await h.wb("GET", "statuses/user_timeline.json")
    assert timeline["total_number"] == 0


async def test_share_repeat_and_rate_limit(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"weibo.accounts.main.posts_per_hour": 2})
    assert (await h.wb("POST", "statuses/share.json", status=f"一 {LINK}"))[0] == 200
    status, data = await h.wb("POST", "statuses/share.json", status=f"一 {LINK}")
    assert (status, data["error_code"]) == (400, 20019)
    assert (await h.wb("POST", "statuses/share.json", status=f"二 {LINK}"))[0] == 200
    status, data = await h.wb("POST", "statuses/share.json", status=f"三 {LINK}")
    assert (status, data["error_code"]) == (403, 10023)
    h.sandbox.clock.advance(3601)
    assert (await h.wb("POST", "statuses/share.json", status=f"三 {LINK}"))[0] == 200


@pytest.mark.parametrize(
    ("token", "status", "code"), [(None, 403, 21301), ("wrong-token", 403, 21332)]
)
async def test_bad_tokens(h: Harness, token: str | None, status: int, code: int) -> None:
    params = {"access_token": token} if token else {}
    resp = await h.client.get("/sandbox/weibo/2/statuses/user_timeline.json", params=params)
    assert resp.status == status
    assert (await resp.json())["error_code"] == code


async def test_oauth2_header_and_token_expiry(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"sandbox.weibo_token_lifetime_seconds": 3600.0})
    headers = {"Authorization": f"OAuth2 {WEIBO_TOKEN}"}
    resp = await h.client.get("/sandbox/weibo/2/statuses/user_timeline.json", headers=headers)
    assert resp.status == 200
    h.sandbox.clock.advance(3601)
    resp = await h.client.get("/sandbox/weibo/2/statuses/user_timeline.json", headers=headers)
    assert resp.status == 403 and (await resp.json())["error_code"] == 21327


async def _share_pic(h: Harness, content: bytes, text: str = f"配图 {LINK}") -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("access_token", WEIBO_TOKEN)
    form.add_field("status", text)
    form.add_field("pic", content, filename="p.png", content_type="image/png")
    resp = await h.client.post("/sandbox/weibo/2/statuses/share.json", data=form)
    return resp.status, await resp.json()


async def test_share_with_pictures(h: Harness) -> None:
    status, data = await _share_pic(h, png_bytes())
    assert status == 200 and data["original_pic"].startswith(h.base)
    assert (await h.client.get(data["original_pic"].removeprefix(h.base))).status == 200
    status, data = await _share_pic(h, b"MZ executable", text=f"坏图 {LINK}")
    assert (status, data["error_code"]) == (400, 20005)
    status, data = await _share_pic(h, jpeg_bytes(5 * 1024 * 1024 + 10), text=f"大图 {LINK}")
    assert (status, data["error_code"]) == (400, 20006)


async def test_show_destroy_timeline(h: Harness) -> None:
    ids = []
    for i in range(3):
        status, data = await h.wb("POST", "statuses/share.json", status=f"第{i}条 {LINK}")
        assert status == 200
        ids.append(data["id"])
        assert data["user"]["screen_name"] and data["created_at"].endswith("2026")
    _, page = await h.wb("GET", "statuses/user_timeline.json", count="2", page="1")
    assert [s["id"] for s in page["statuses"]] == [ids[2], ids[1]] and page["total_number"] == 3
    _, shown = await h.wb("GET", "statuses/show.json", id=str(ids[0]))
    assert shown["text"] == f"第0条 {LINK}"
    status, _ = await h.wb("POST", "statuses/destroy.json", id=str(ids[0]))
    assert status == 200
    status, data = await h.wb("GET", "statuses/show.json", id=str(ids[0]))
    assert (status, data["error_code"]) == (400, 20101)
    status, data = await h.wb("POST", "statuses/destroy.json", id=str(ids[0]))
    assert (status, data["error_code"]) == (400, 20101)
    # After deletion the same text may be posted again.
    assert (await h.wb("POST", "statuses/share.json", status=f"第0条 {LINK}"))[0] == 200


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("statuses/show.json", {"id": "abc"}),
        ("statuses/show.json", {"id": "9" * 40}),
        ("statuses/user_timeline.json", {"count": "-1"}),
        ("statuses/user_timeline.json", {"count": "100000"}),
        ("comments/show.json", {"id": "1", "count": "x"}),
        ("comments/to_me.json", {"since_id": "1e9"}),
    ],
)
async def test_bad_parameters(h: Harness, path: str, fields: dict[str, str]) -> None:
    status, data = await h.wb("GET", path, **fields)
    assert status == 400 and data["error_code"] in (10008, 20101)


async def test_hostile_bodies(h: Harness) -> None:
    url = "/sandbox/weibo/2/statuses/share.json"
    for raw, ctype in [
        (b"\xff\xfe\x00", "application/x-www-form-urlencoded"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b"a" * (7 * 1024 * 1024), "application/x-www-form-urlencoded"),
    ]:
        resp = await h.client.post(url, data=raw, headers={"Content-Type": ctype})
        assert 400 <= resp.status < 500
        assert "error_code" in await resp.json()


async def test_comments(h: Harness) -> None:
    _, post = await h.wb("POST", "statuses/share.json", status=f"征求意见 {LINK}")
    resp = await h.client.post(
        "/sandbox/weibo/_followers/comment",
        json={"status_id": post["id"], "follower": 7, "text": "<b>支持</b>"},
    )
    assert resp.status == 200
    theirs = await resp.json()
    _, inbox = await h.wb("GET", "comments/to_me.json")
    assert inbox["total_number"] == 1 and inbox["comments"][0]["text"] == "<b>支持</b>"
    assert inbox["comments"][0]["status"]["id"] == post["id"]
    status, reply = await h.wb(
        "POST", "comments/reply.json", cid=str(theirs["id"]), id=str(post["id"]), comment="感谢关注"
    )
    assert status == 200 and reply["reply_comment"]["id"] == theirs["id"]
    status, _ours = await h.wb(
        "POST", "comments/create.json", id=str(post["id"]), comment="补充说明"
    )
    assert status == 200
    _, shown = await h.wb("GET", "comments/show.json", id=str(post["id"]))
    assert shown["total_number"] == 3
    _, inbox = await h.wb("GET", "comments/to_me.json", since_id=str(theirs["id"]))
    assert inbox["comments"] == []
    for fields, code in [
        ({"cid": "999999", "id": str(post["id"]), "comment": "x"}, 20201),
        ({"cid": str(theirs["id"]), "id": str(post["id"]), "comment": "长" * 141}, 20012),
        ({"cid": str(theirs["id"]), "id": str(post["id"]), "comment": ""}, 10016),
        ({"cid": str(theirs["id"]), "id": "12345", "comment": "x"}, 20101),
    ]:
        status, data = await h.wb("POST", "comments/reply.json", **fields)
        assert data["error_code"] == code, fields
    _, timeline = await h.wb("GET", "statuses/user_timeline.json")
    assert timeline["statuses"][0]["comments_count"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"status_id": 1, "text": "x"},
        {"status_id": "abc", "text": "x"},
        {"text": "x"},
        {"status_id": 1, "text": ""},
        {"status_id": 1, "text": "x" * 601},
        [1],
        "str",
        {"status_id": 1, "text": "x", "follower": -1},
        {"status_id": True, "text": "x"},
        {"status_id": 1, "text": "x", "account": "nosuch"},
    ],
)
async def test_follower_comment_validation(h: Harness, body: Any) -> None:
    resp = await h.client.post("/sandbox/weibo/_followers/comment", json=body)
    assert resp.status == 400 and "error" in await resp.json()


async def test_picture_of_exactly_five_megabytes_is_refused(h: Harness) -> None:
    limit = 5 * 1024 * 1024
    exact = jpeg_bytes(limit - 6)
    under = jpeg_bytes(limit - 7)
    assert (len(exact), len(under)) == (limit, limit - 1)
    status, data = await _share_pic(h, exact, text=f"整五兆 {LINK}")
    assert (status, data["error_code"]) == (400, 20006)
    _, timeline = await h.wb("GET", "statuses/user_timeline.json")
    assert timeline["total_number"] == 0
    status, data = await _share_pic(h, under, text=f"差一字节 {LINK}")
    assert status == 200 and data["original_pic"].startswith(h.base)


async def test_comments_hourly_limit(h: Harness) -> None:
    # Start at the top of an hour (Beijing time) so the 61 comments share one hour.
    from datetime import timedelta

    from sandbox.core import BEIJING

    now = h.sandbox.clock.now().astimezone(BEIJING)
    top = (now + timedelta(hours=1)).replace(minute=0, second=1, microsecond=0)
    h.sandbox.clock.advance((top - now).total_seconds())
    _, post = await h.wb("POST", "statuses/share.json", status=f"征求意见 {LINK}")
    for i in range(60):
        status, data = await h.wb(
            "POST", "comments/create.json", id=str(post["id"]), comment=f"说明{i}"
        )
        assert status == 200, data
    status, data = await h.wb("POST", "comments/create.json", id=str(post["id"]), comment="多一条")
    assert (status, data["error_code"]) == (403, 10023)
    _, shown = await h.wb("GET", "comments/show.json", id=str(post["id"]))
    assert shown["total_number"] == 60
    h.sandbox.clock.advance(3600)
    status, _ = await h.wb("POST", "comments/create.json", id=str(post["id"]), comment="下一小时")
    assert status == 200
