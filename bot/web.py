"""HTTP routes of the bot package: the WeChat callback ``/wechat/<account>``.

GET verifies the URL (``echostr``); POST takes messages and events in plain, compatible
or safe mode, per ``[wechat.accounts.<key>] mode``. Every refusal is a 4xx with a short
reason and nothing stored: unknown account 404, bad signature 401, stale timestamp 403,
oversized body 413, anything malformed 400.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot import deferred, wire
from bot.service import SUCCESS, BotService
from govcast import keys
from govcast.scheduler import Tick

log = logging.getLogger("govcast.bot")

BOT = web.AppKey("bot_service", BotService)
_TEXT = "text/plain"
_XML = "application/xml"


def setup(app: web.Application) -> None:
    """Add the callback route and the bot's service to the application."""
    app.cleanup_ctx.append(_service)
    app.router.add_get(r"/wechat/{account:[a-z0-9_\-]{1,64}}", callback)
    app.router.add_post(r"/wechat/{account:[a-z0-9_\-]{1,64}}", callback)


async def _service(app: web.Application) -> AsyncIterator[None]:
    service = BotService(app[keys.SETTINGS], app[keys.DB], app=app, redis=app.get(keys.REDIS))
    app[BOT] = service
    yield
    await service.close()


def ticks(app: web.Application) -> list[Tick]:
    """Deliver deferred replies, re-handle pushes whose process died, apply retention."""
    # A scheduler process without the web role has no callback (no BOT): it still owes
    # the deferred replies their retries, with a service of its own made on first use.
    own: list[BotService] = []

    def service() -> BotService:
        if BOT in app:
            return app[BOT]
        if not own:
            own.append(
                BotService(app[keys.SETTINGS], app[keys.DB], app=app, redis=app.get(keys.REDIS))
            )
        return own[0]

    async def deliver() -> int:
        return await deferred.deliver_due(service())

    async def close() -> None:
        for made in own:
            await made.close()

    async def recover() -> int:
        return await service().recover()

    async def purge() -> int:
        return await deferred.purge(app[keys.DB], app[keys.SETTINGS].bot.retention_days)

    return [
        Tick("bot_deferred_replies", 10.0, deliver, close),
        Tick("bot_orphaned_pushes", 5.0, recover),
        Tick("bot_retention", 3600.0, purge),
    ]


def _refuse(error: wire.WireError) -> web.Response:
    return web.Response(status=error.status, text=error.reason, content_type=_TEXT)


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise wire.WireError(413, "body too large")
    if length is not None:
        # Declared and small: one read (the parser already bounds it to Content-Length).
        try:
            return await request.content.readexactly(length) if length else b""
        except asyncio.IncompleteReadError:
            raise wire.WireError(400, "body shorter than Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise wire.WireError(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def callback(request: web.Request) -> web.StreamResponse:
    """The WeChat callback."""
    service = request.app[BOT]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.settings.bot.reply_budget_seconds
    account = service.accounts.get(request.match_info["account"])
    if account is None:
        return web.Response(status=404, text="unknown account", content_type=_TEXT)
    query = request.query
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    try:
        if len(nonce) > 64 or not nonce.isprintable():
            raise wire.WireError(400, "bad nonce")
        wire.check_timestamp(
            timestamp, service.clock(), service.settings.bot.timestamp_window_seconds
        )
        if request.method == "GET":
            wire.check_signature(account.token, query.get("signature", ""), timestamp, nonce)
            echostr = query.get("echostr", "")
            if not echostr or len(echostr) > 128 or not echostr.isprintable():
                raise wire.WireError(400, "bad echostr")
            return web.Response(text=echostr, content_type=_TEXT)
        body = await _read_body(request, service.settings.bot.max_body_bytes)
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        if encrypted and (account.mode == "plain" or account.aes is None):
            raise wire.WireError(400, "this account does not use encryption")
        if not encrypted and account.mode == "safe":
            raise wire.WireError(400, "this account requires safe mode (encrypt_type=aes)")
        fields = wire.parse_xml(body)
        if encrypted:
            assert account.aes is not None
            encrypt = fields.get("Encrypt")
            if not isinstance(encrypt, str) or not encrypt or len(encrypt) > len(body):
                raise wire.WireError(400, "no Encrypt field")
            wire.check_signature(
                account.token, query.get("msg_signature", ""), timestamp, nonce, encrypt
            )
            if "signature" in query:
                wire.check_signature(account.token, query["signature"], timestamp, nonce)
            fields = wire.parse_xml(account.aes.decrypt(encrypt))
        else:
            wire.check_signature(account.token, query.get("signature", ""), timestamp, nonce)
        msg = wire.to_message(account.key, fields)
    except wire.WireError as error:
        log.info(
            "bot: callback refused",
            extra={"account": account.key, "status": error.status, "reason": error.reason},
        )
        return _refuse(error)
    reply = await service.handle(msg, deadline)
    if reply == SUCCESS:
        return web.Response(text=SUCCESS, content_type=_TEXT)
    if encrypted:
        assert account.aes is not None
        stamp = str(int(service.clock()))
        reply = wire.encrypted_envelope(account.aes, account.token, reply, stamp, nonce)
    return web.Response(text=reply, content_type=_XML)
