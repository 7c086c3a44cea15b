"""Every endpoint answers hostile, malformed and oversized input with the platform's own
error (WeChat errcode, Weibo error JSON, a 4xx on control endpoints), never a 500."""

from __future__ import annotations

import itertools

from sandbox import comments, wechat, weibo
from tests.sandbox.conftest import WEIBO_TOKEN, Harness

JUNK = [
    (b"", "application/json"),
    (b"\x00\xff\xfe garbage", "application/json"),
    (
        b'{"articles": [{"title": {"$gt": 1}}], "media_id": [1], "touser": {"a": 1}}',
        "application/json",
    ),
    (
        b'{"offset": -5, "count": 1e99, "index": "x", "msg_data_id": null, "begin": []}',
        "application/json",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="media"\r\n\r\nxx',
        "multipart/form-data; boundary=b",
    ),
    (b"x" * (2 * 1024 * 1024 + 10), "application/octet-stream"),
]


async def test_wechat_routes_never_fail_hard(h: Harness) -> None:
    token = await h.token()
    for path, (raw, ctype) in itertools.product(sorted([*wechat.ROUTES, *comments.ROUTES]), JUNK):
        resp = await h.client.post(
            f"/sandbox/wechat/cgi-bin/{path}",
            params={"access_token": token, "type": "image", "openid": "\u0000", "next_openid": "x"},
            data=raw,
            headers={"Content-Type": ctype},
        )
        assert resp.status == 200, (path, raw[:40])
        data = await resp.json()
        assert isinstance(data["errcode"], int), path
        lenient = (
            "draft/count",
            "user/get",
            "menu/delete",
            "draft/batchget",
            "freepublish/batchget",
        )
        if path not in lenient:
            assert data["errcode"] != 0, (path, raw[:40], data)


async def test_weibo_routes_never_fail_hard(h: Harness) -> None:
    for path, (raw, ctype) in itertools.product(sorted(weibo.ROUTES), JUNK):
        resp = await h.client.post(
            f"/sandbox/weibo/2/{path}",
            params={"access_token": WEIBO_TOKEN, "id": "x"},
            data=raw,
            headers={"Content-Type": ctype},
        )
        assert resp.status in (400, 403, 405), (path, raw[:40], resp.status)
        if resp.status != 405:
            assert "error_code" in await resp.json()
        resp = await h.client.get(
            f"/sandbox/weibo/2/{path}",
            params={"access_token": WEIBO_TOKEN, "id": "\u0000", "count": "9" * 30, "page": "-1"},
        )
        assert resp.status in (400, 403, 405), (path, resp.status)
