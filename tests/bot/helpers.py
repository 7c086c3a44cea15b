"""WeChat's side of the callback for tests: signed (and encrypted) pushes built with
wechatpy's own WeChatCrypto, and an app holding just the bot."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from wechatpy.crypto import WeChatCrypto

from bot import web as bot_web
from govcast import keys
from govcast.settings import Settings
from publisher.db import Database
from tests.conftest import make_settings

# WeChat's published example credentials (also used by wechatpy's own tests).
TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx2c2769f8efd9abc2"
GH = "gh_0123456789ab"


def bot_settings(tmp_path: Path, database_url: str, mode: str = "safe", **extra: Any) -> Settings:
    """Settings with the published example account as ``main`` in ``mode``."""
    return make_settings(
        tmp_path,
        database_url,
        **{
            "wechat.accounts.main.app_id": APPID,
            "wechat.accounts.main.token": TOKEN,
            "wechat.accounts.main.encoding_aes_key": AES_KEY,
            "wechat.accounts.main.mode": mode,
            **extra,
        },
    )


def bot_app(settings: Settings, db: Database) -> web.Application:
    """An application with the bot only (the database already open)."""
    app = web.Application()
    app[keys.SETTINGS] = settings
    app[keys.DB] = db
    bot_web.setup(app)
    return app


def text_xml(content: str, msg_id: int, openid: str = "o_citizen_1", create: int = 0) -> str:
    """A text message as WeChat sends it."""
    return (
        f"<xml><ToUserName><![CDATA[{GH}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{create or int(time.time())}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, openid: str = "o_citizen_1", create: int = 0, extra: str = "") -> str:
    """An event push."""
    return (
        f"<xml><ToUserName><![CDATA[{GH}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{create or int(time.time())}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )


def sign(token: str, *parts: str) -> str:
    """WeChat's signature over token and parts."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()  # noqa: S324


class WeChatSide:
    """Builds the query and body WeChat would send for a message."""

    def __init__(self, token: str = TOKEN, aes_key: str = AES_KEY, appid: str = APPID) -> None:
        self.token = token
        self.crypto = WeChatCrypto(token, aes_key, appid)

    def push(
        self, xml: str, mode: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[dict[str, str], str]:
        """(query, body) of a push in plain, compatible or safe mode."""
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or str(random.randint(10**8, 10**9))
        query = {"timestamp": ts, "nonce": nonce, "signature": sign(self.token, ts, nonce)}
        if mode == "plain":
            return query, xml
        envelope = self.crypto.encrypt_message(xml, nonce, ts)
        encrypt = envelope.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sign(self.token, ts, nonce, encrypt)
        query["openid"] = "o_citizen_1"
        if mode == "compatible":
            return query, xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
        return query, (
            f"<xml><ToUserName><![CDATA[{GH}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )

    def open_reply(self, body: str) -> str:
        """Decrypt and verify an encrypted reply the way WeChat does."""
        sig = body.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
        ts = body.split("<TimeStamp>", 1)[1].split("</TimeStamp>", 1)[0]
        nonce = body.split("<Nonce><![CDATA[", 1)[1].split("]]>", 1)[0]
        return str(self.crypto.decrypt_message(body, sig, ts, nonce))


def reply_content(xml: str) -> str:
    """The Content of a text reply."""
    return xml.split("<Content><![CDATA[", 1)[1].split("]]></Content>", 1)[0]
