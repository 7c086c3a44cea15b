"""WeChat's side of the callback: signing, encryption, 5-second timeout, 3 tries with
the same MsgId, and what the citizen finally sees."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp import web
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from govcast.settings import SandboxSettings
from sandbox.core import UNAVAILABLE
from tests.sandbox.conftest import Harness, MakeHarness

TOKEN = "sandboxtoken"
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxsandbox00000001"


def _crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, AES, APPID)


def plain_echo(request: web.Request, body: str) -> str:
    q = request.query
    check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
    msg = parse_message(body)
    return str(TextReply(content=f"收到：{msg.content}", message=msg).render())


def safe_echo(request: web.Request, body: str) -> str:
    q = request.query
    check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
    assert q["encrypt_type"] == "aes"
    plain = _crypto().decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
    msg = parse_message(plain)
    reply = TextReply(content=f"收到：{msg.content}", message=msg).render()
    return str(_crypto().encrypt_message(reply, q["nonce"], q["timestamp"]))


async def _send(h: Harness, **body: Any) -> dict[str, Any]:
    resp = await h.client.post("/sandbox/wechat/_citizen/send", json={"follower": 1, **body})
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def test_default_timeout_is_five_seconds() -> None:
    assert SandboxSettings().callback_timeout_seconds == 5.0


async def test_plain_mode_signed_and_reply_shown(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    h.bot.default = plain_echo
    out = await _send(h, content="查询医保")
    assert out == {
        "openid": h.sandbox.followers("main")[1],
        "msg_id": out["msg_id"],
        "tries": 1,
        "ok": True,
        "shown": "收到：查询医保",
        "create_time": out["create_time"],
        "seconds": out["seconds"],
        "failures": [],
    }
    req = h.bot.requests[0]
    assert req["query"]["openid"] == out["openid"] and "encrypt_type" not in req["query"]
    assert f"<MsgId>{out['msg_id']}</MsgId>" in req["body"]
    assert f"<CreateTime>{out['create_time']}</CreateTime>" in req["body"]
    assert 0 <= out["seconds"] < 0.5


async def test_safe_mode_encrypted_both_ways(h: Harness) -> None:
    h.bot.default = safe_echo
    out = await _send(h, content="你好<x>&amp;")
    assert out["shown"] == "收到：你好<x>&amp;" and out["tries"] == 1
    body = h.bot.requests[0]["body"]
    assert "<Encrypt>" in body and "你好" not in body and "<MsgType>" not in body


async def test_compatible_mode_carries_both(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "compatible"})

    def check(request: web.Request, body: str) -> str:
        q = request.query
        plain = _crypto().decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        assert parse_message(plain).content == parse_message(body).content == "兼容"
        return plain_echo(request, body)

    h.bot.default = check
    assert (await _send(h, content="兼容"))["shown"] == "收到：兼容"


async def test_slow_bot_three_tries_same_msgid(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    h.sandbox.callback_timeout = 0.2
    h.bot.script = [1.0, 1.0, 1.0]
    out = await _send(h, content="慢")
    assert out["tries"] == 3 and out["ok"] is False and out["shown"] == UNAVAILABLE
    ids = {re.search(r"<MsgId>(\d+)</MsgId>", r["body"]).group(1) for r in h.bot.requests}  # type: ignore[union-attr]
    assert len(h.bot.requests) == 3 and ids == {out["msg_id"]}
    page = await (await h.client.get("/sandbox/wechat/main/phone?follower=1")).text()
    assert UNAVAILABLE in page and "慢" in page


async def test_slow_once_then_answered(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    h.sandbox.callback_timeout = 0.2
    h.bot.script = [1.0, plain_echo]
    out = await _send(h, content="重试")
    assert (out["tries"], out["shown"]) == (2, "收到：重试")
    # The answered try is timed on its own, not with the 0.2-second try that timed out.
    assert out["failures"] == ["timeout"] and out["seconds"] < 0.2


async def test_refused_connection_is_a_failed_try(make_harness: MakeHarness) -> None:
    import socket

    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        h.sandbox.origin_override = f"http://127.0.0.1:{sock.getsockname()[1]}"
        out = await _send(h, content="拒绝")
    assert (out["tries"], out["ok"], out["shown"]) == (3, False, UNAVAILABLE)
    assert out["failures"] == ["connection"] * 3


async def test_event_identity_is_sender_and_create_time(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    h.bot.script = [502, "success"]
    out = await _send(h, msgtype="event", event="subscribe")
    assert (out["tries"], out["failures"], out["msg_id"]) == (2, ["status 502"], None)
    bodies = {r["body"] for r in h.bot.requests}
    assert len(bodies) == 1  # the retry repeats the push byte for byte
    assert f"<CreateTime>{out['create_time']}</CreateTime>" in bodies.pop()


@pytest.mark.parametrize(
    ("script", "tries", "shown"),
    [
        (["success"], 1, None),
        ([""], 1, None),
        (["<xml><oops"], 1, UNAVAILABLE),
        (["<xml><MsgType>text</MsgType><Content>plain in safe</Content></xml>"], 1, UNAVAILABLE),
        ([500, 500, 500], 3, UNAVAILABLE),
        ([502, "success"], 2, None),
        (["<!DOCTYPE x [<!ENTITY a 'b'>]><xml>&a;</xml>"], 1, UNAVAILABLE),
    ],
)
async def test_reply_outcomes(h: Harness, script: list[Any], tries: int, shown: str | None) -> None:
    h.bot.script = list(script)
    out = await _send(h, content="测")
    assert (out["tries"], out["shown"]) == (tries, shown)


@pytest.mark.parametrize(
    "body",
    [
        {"content": ""},
        {"content": 5},
        {"content": "x" * 2001},
        {"follower": -1, "content": "x"},
        {"follower": 10**9, "content": "x"},
        {"follower": "1", "content": "x"},
        {"openid": "onotafollower", "content": "x"},
        {"account": "nosuch", "content": "x"},
        {"msgtype": "image"},
        {"msgtype": "event", "event": "EXPLODE"},
        {"msgtype": "event", "event": "CLICK", "event_key": "k" * 2000},
        {"surprise": 1},
    ],
)
async def test_citizen_endpoint_validation(h: Harness, body: dict[str, Any]) -> None:
    resp = await h.client.post("/sandbox/wechat/_citizen/send", json={"follower": 1, **body})
    assert resp.status == 400
    assert "error" in await resp.json()
    assert h.bot.requests == []


async def test_citizen_endpoint_rejects_non_json(h: Harness) -> None:
    for raw in (b"", b"{", b"[1]", b"\xff"):
        resp = await h.client.post("/sandbox/wechat/_citizen/send", data=raw)
        assert resp.status == 400


async def test_events_and_custom_messages_in_conversation(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    out = await _send(h, msgtype="event", event="CLICK", event_key="latest_releases")
    assert out["msg_id"] is None
    body = h.bot.requests[0]["body"]
    assert "<Event><![CDATA[CLICK]]></Event>" in body and "latest_releases" in body
    token = await h.token()
    openid = h.sandbox.followers("main")[1]
    sent = await h.wx(
        "message/custom/send",
        {"touser": openid, "msgtype": "text", "text": {"content": "<script>alert(1)</script>答复"}},
        token=token,
    )
    assert sent["errcode"] == 0
    page = await (await h.client.get("/sandbox/wechat/main/phone?follower=1")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;答复" in page and "<script>" not in page


async def test_publish_event_pushed_encrypted(h: Harness) -> None:
    from tests.sandbox.test_wechat_api import _article, _thumb

    token = await h.token()
    thumb = await _thumb(h, token)
    draft = await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token)
    sub = await h.wx("freepublish/submit", {"media_id": draft["media_id"]}, token=token)
    for _ in range(100):
        if h.bot.requests:
            break
        await asyncio.sleep(0.05)
    req = h.bot.requests[0]
    q = req["query"]
    plain = _crypto().decrypt_message(req["body"], q["msg_signature"], q["timestamp"], q["nonce"])
    assert "<Event><![CDATA[PUBLISHJOBFINISH]]></Event>" in plain
    assert f"<publish_id>{sub['publish_id']}</publish_id>" in plain
    assert "<publish_status>0</publish_status>" in plain and "/sandbox/wechat/s/" in plain
    await asyncio.sleep(0.6)
    assert len(h.bot.requests) == 1  # pushed once


async def test_phone_form(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    h.bot.default = plain_echo
    resp = await h.client.post(
        "/sandbox/wechat/main/phone",
        data={"follower": "2", "content": "表单"},
        allow_redirects=False,
    )
    assert resp.status == 303
    page = await (await h.client.get(resp.headers["Location"])).text()
    assert "收到：表单" in page
    resp = await h.client.post(
        "/sandbox/wechat/main/phone",
        data={"follower": "2", "click": "my_cases"},
        allow_redirects=False,
    )
    assert resp.status == 303 and "my_cases" in h.bot.requests[-1]["body"]
    for data in (
        {"follower": "x"},
        {"follower": "99999999"},
        {"content": "x" * 3000},
        {"click": "k" * 200},
    ):
        resp = await h.client.post("/sandbox/wechat/main/phone", data=data, allow_redirects=False)
        assert resp.status == 400
    resp = await h.client.post(
        "/sandbox/wechat/main/phone",
        data=b"x" * 20_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 413
    assert (await h.client.get("/sandbox/wechat/nosuch/phone")).status == 404
    assert (await h.client.get("/sandbox/wechat/main/phone?follower=-1")).status == 400
