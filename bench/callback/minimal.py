"""The yardstick: a bare aiohttp + wechatpy echo handler (signature, parse, reply, AES).

Run: python bench/callback/minimal.py PORT
"""

# ruff: noqa: S105

from __future__ import annotations

import sys

from aiohttp import web
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx2c2769f8efd9abc2"
crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)


async def handle(request: web.Request) -> web.Response:
    q = request.query
    try:
        check_signature(TOKEN, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
    except InvalidSignatureException:
        return web.Response(status=403)
    body = await request.read()
    if q.get("encrypt_type") == "aes":
        xml = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        msg = parse_message(xml)
        reply = create_reply(msg.content, msg).render()
        return web.Response(text=crypto.encrypt_message(reply, q["nonce"], q["timestamp"]))
    msg = parse_message(body)
    return web.Response(text=create_reply(msg.content, msg).render())


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
