"""Hostile and malformed input: always a clear 4xx, never a 500, nothing stored."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.models import InboundMessageRecord
from govcast.settings import Settings
from publisher.db import Database
from tests.bot.helpers import GH, WeChatSide, bot_app, bot_settings, sign, text_xml

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    f"<xml><ToUserName>{GH}</ToUserName><FromUserName>o1</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content>"
    "<MsgId>1</MsgId></xml>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f"<xml><ToUserName>{GH}</ToUserName><FromUserName>o1</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content>"
    "<MsgId>2</MsgId></xml>"
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return bot_settings(tmp_path, database_url, "compatible", **{"bot.max_body_bytes": 4096})


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, db: Database) -> TestClient:
    return await aiohttp_client(bot_app(settings, db))  # type: ignore[no-any-return]


def _plain(xml: str, **kw: Any) -> tuple[dict[str, str], str]:
    return WeChatSide().push(xml, "plain", **kw)


def _safe(xml: str, **kw: Any) -> tuple[dict[str, str], str]:
    return WeChatSide().push(xml, "safe", **kw)


def _tamper(
    key: str, value: str
) -> Callable[[tuple[dict[str, str], str]], tuple[dict[str, str], str]]:
    def apply(pair: tuple[dict[str, str], str]) -> tuple[dict[str, str], str]:
        query, body = pair
        return {**query, key: value}, body

    return apply


def _ok() -> str:
    return text_xml("你好", 9001)


def _cases() -> list[tuple[str, Callable[[], tuple[dict[str, str], str]], int]]:
    now = int(time.time())
    ts, nonce = str(now), "777"
    signed = {"timestamp": ts, "nonce": nonce, "signature": sign("spamtest", ts, nonce)}
    return [
        ("bad signature", lambda: _tamper("signature", "0" * 40)(_plain(_ok())), 401),
        ("no signature", lambda: ({"timestamp": ts, "nonce": nonce}, _ok()), 401),
        ("bad msg_signature", lambda: _tamper("msg_signature", "f" * 40)(_safe(_ok())), 401),
        ("stale timestamp", lambda: _plain(_ok(), timestamp=now - 3600), 403),
        ("future timestamp", lambda: _plain(_ok(), timestamp=now + 3600), 403),
        ("non-numeric timestamp", lambda: _tamper("timestamp", "abc")(_plain(_ok())), 400),
        ("malformed xml", lambda: (signed, "<xml><ToUserName>oops"), 400),
        ("not xml", lambda: (signed, "\x00\x01binary"), 400),
        ("empty body", lambda: (signed, ""), 400),
        ("billion laughs", lambda: (signed, BILLION_LAUGHS), 400),
        ("xxe", lambda: (signed, XXE), 400),
        ("oversized", lambda: (signed, _ok().replace("你好", "长" * 5000)), 413),
        ("missing MsgId", lambda: _plain(_ok().replace("<MsgId>9001</MsgId>", "")), 400),
        ("missing FromUserName", lambda: _plain(_ok().replace("FromUserName", "Nobody")), 400),
        ("bad CreateTime", lambda: _plain(_ok().replace("<CreateTime>", "<CreateTime>x")), 400),
        (
            "wrong AppID inside",
            lambda: WeChatSide(appid="wx0000000000000bad").push(_ok(), "safe"),
            403,
        ),
        (
            "wrong token",
            lambda: WeChatSide(token="not-the-token").push(_ok(), "safe"),
            401,
        ),
        ("garbage Encrypt", lambda: _garbage_encrypt(signed), 400),
        ("deep nesting", lambda: (signed, "<xml>" + "<a>" * 50 + "</a>" * 50 + "</xml>"), 400),
    ]


def _garbage_encrypt(signed: dict[str, str]) -> tuple[dict[str, str], str]:
    encrypt = "QUFBQUFBQUFBQUFBQUFBQQ=="  # 16 bytes that decrypt to noise
    query = {
        **signed,
        "encrypt_type": "aes",
        "msg_signature": sign("spamtest", signed["timestamp"], signed["nonce"], encrypt),
    }
    return query, f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"


@pytest.mark.parametrize("name", [c[0] for c in _cases()])
async def test_hostile_input_is_refused_and_nothing_stored(
    client: TestClient, db: Database, name: str
) -> None:
    _, build, status = next(c for c in _cases() if c[0] == name)
    query, body = build()
    resp = await client.post("/wechat/main", params=query, data=body.encode())
    assert resp.status == status, await resp.text()
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMessageRecord)) == 0


async def test_unknown_account_and_wrong_mode(
    aiohttp_client: Any, tmp_path: Path, database_url: str, db: Database
) -> None:
    safe = await aiohttp_client(bot_app(bot_settings(tmp_path, database_url, "safe"), db))
    query, body = WeChatSide().push(_ok(), "plain")
    assert (await safe.post("/wechat/main", params=query, data=body.encode())).status == 400
    assert (await safe.post("/wechat/other", params=query, data=body.encode())).status == 404
    plain = await aiohttp_client(bot_app(bot_settings(tmp_path, database_url, "plain"), db))
    query, body = WeChatSide().push(_ok(), "safe")
    assert (await plain.post("/wechat/main", params=query, data=body.encode())).status == 400
    resp = await plain.get("/wechat/main", params={"timestamp": "1", "nonce": "1"})
    assert resp.status == 403


async def test_replayed_request_after_window_is_refused(
    aiohttp_client: Any, tmp_path: Path, database_url: str, db: Database
) -> None:
    settings = bot_settings(tmp_path, database_url, "safe", **{"bot.timestamp_window_seconds": 60})
    client = await aiohttp_client(bot_app(settings, db))
    query, body = WeChatSide().push(_ok(), "safe", timestamp=int(time.time()) - 61)
    assert (await client.post("/wechat/main", params=query, data=body.encode())).status == 403
