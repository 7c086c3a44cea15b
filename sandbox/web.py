"""HTTP routes of the sandbox package: both platform stand-ins, the control endpoints
(faults, simulated citizens and followers) and the pages under ``/sandbox/``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from sqlalchemy import select

from govcast import keys
from sandbox import callback, comments, pages, wechat, weibo
from sandbox.clock import Clock
from sandbox.core import SANDBOX, Sandbox
from sandbox.faults import Faults, FaultSpecError, parse_spec

log = logging.getLogger("govcast.sandbox")

CLOCK = web.AppKey("sandbox_clock", Clock)
TEMPLATES = web.AppKey("sandbox_templates", jinja2.Environment)
MAX_CONTROL_BYTES = 64 * 1024
FINISH_POLL_SECONDS = 0.5


def setup(app: web.Application) -> None:
    """Add this package's routes and resources to the application."""
    if CLOCK not in app:
        app[CLOCK] = Clock()
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app.cleanup_ctx.append(_sandbox)
    wechat.add_routes(app)
    weibo.add_routes(app)
    comments.add_routes(app)
    app.router.add_post("/sandbox/_faults", set_faults)
    app.router.add_delete("/sandbox/_faults", clear_faults)
    app.router.add_get("/sandbox/_faults", show_faults)
    app.router.add_post("/sandbox/wechat/_citizen/send", citizen_send)
    pages.add_routes(app)


async def _sandbox(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        sandbox = Sandbox(
            settings=settings,
            db=app[keys.DB],
            clock=app[CLOCK],
            faults=Faults(),
            http=http,
            callback_timeout=settings.sandbox.callback_timeout_seconds,
        )
        app[SANDBOX] = sandbox
        stop = asyncio.Event()
        finisher = asyncio.create_task(_finish_loop(sandbox, stop), name="sandbox-finisher")
        yield
        sandbox.faults.clear()
        # Let the loop finish its database work rather than cancelling it mid-query.
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(finisher), timeout=10)
        except TimeoutError:
            finisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await finisher
        for task in list(sandbox.tasks):
            task.cancel()
        await asyncio.gather(*sandbox.tasks, return_exceptions=True)


async def _finish_loop(sandbox: Sandbox, stop: asyncio.Event) -> None:
    # Publish and mass-send jobs settle after their delay; the event goes to the bot.
    while not stop.is_set():
        try:
            await wechat.push_events(sandbox, sandbox.public_origin())
        except Exception:  # a database hiccup must not stop the platform
            log.exception("sandbox finisher failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=FINISH_POLL_SECONDS)


# --- control endpoints -------------------------------------------------------------------


async def read_control_json(request: web.Request) -> Any:
    """A small JSON body; a clear 400 for anything else."""
    raw = await request.content.read(MAX_CONTROL_BYTES + 1)
    if len(raw) > MAX_CONTROL_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_CONTROL_BYTES, actual_size=len(raw), text="body too large"
        )
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
        ) from None


def bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 with a JSON error message."""
    return web.HTTPBadRequest(
        text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json"
    )


async def set_faults(request: web.Request) -> web.Response:
    """``POST /sandbox/_faults``: put faults in force (seeded, per platform)."""
    raw = await read_control_json(request)
    try:
        platforms, spec = parse_spec(raw)
    except FaultSpecError as error:
        raise bad_request(str(error)) from None
    faults = request.app[SANDBOX].faults
    faults.set(platforms, spec)
    log.warning("sandbox faults set", extra={"platforms": list(platforms)})
    return web.json_response({"faults": faults.describe()})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /sandbox/_faults``: back to a healthy platform."""
    faults = request.app[SANDBOX].faults
    faults.clear()
    return web.json_response({"faults": faults.describe()})


async def show_faults(request: web.Request) -> web.Response:
    """``GET /sandbox/_faults``: the faults in force."""
    return web.json_response({"faults": request.app[SANDBOX].faults.describe()})


_EVENTS = {"subscribe", "unsubscribe", "CLICK", "VIEW", "SCAN"}


def citizen_fields(sandbox: Sandbox, raw: Any) -> tuple[str, str, str, str, str]:
    """Validate a simulated citizen's message: (account, openid, kind, content, key)."""
    if not isinstance(raw, dict):
        raise bad_request("the body must be a JSON object")
    allowed = {"account", "openid", "follower", "msgtype", "content", "event", "event_key"}
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise bad_request(f"unknown key {unknown[0]!r}")
    account = raw.get("account", "main")
    if not isinstance(account, str) or account not in sandbox.settings.wechat.accounts:
        raise bad_request("account is not a configured WeChat account")
    openid = raw.get("openid")
    follower = raw.get("follower", 0)
    if openid is not None:
        if not isinstance(openid, str) or not sandbox.is_follower(account, openid):
            raise bad_request("openid does not follow this account")
    else:
        count = len(sandbox.followers(account))
        if isinstance(follower, bool) or not isinstance(follower, int) or not 0 <= follower < count:
            raise bad_request(f"follower must be an integer from 0 to {count - 1}")
        openid = sandbox.followers(account)[follower]
    kind = raw.get("msgtype", "text")
    if kind == "text":
        content = raw.get("content")
        if not isinstance(content, str) or not content.strip():
            raise bad_request("content must be a non-empty string")
        if len(content) > 2000:
            raise bad_request("content is longer than 2,000 characters")
        return account, openid, "text", content, ""
    if kind == "event":
        event = raw.get("event")
        key = raw.get("event_key", "")
        if event not in _EVENTS:
            raise bad_request(f"event must be one of {', '.join(sorted(_EVENTS))}")
        if not isinstance(key, str) or len(key) > 1024:
            raise bad_request("event_key must be a string of at most 1,024 characters")
        return account, openid, "event", event, key
    raise bad_request("msgtype must be text or event")


async def citizen_send(request: web.Request) -> web.Response:
    """``POST /sandbox/wechat/_citizen/send``: a citizen writes; WeChat pushes it to the bot."""
    sandbox = request.app[SANDBOX]
    account, openid, kind, content, key = citizen_fields(sandbox, await read_control_json(request))
    result = await callback.citizen_send(sandbox, account, openid, kind, content, key)
    return web.json_response(
        {
            "openid": openid,
            "msg_id": result.msg_id,
            "tries": result.tries,
            "ok": result.ok,
            "shown": result.shown,
            "create_time": result.create_time,
            "seconds": round(result.seconds, 4),
            "failures": list(result.failures),
        },
        dumps=lambda d: json.dumps(d, ensure_ascii=False),
    )


def safe_key(value: str) -> str:
    """An account key from a URL, or 404."""
    if not re.fullmatch(r"[a-z0-9_\-]{1,64}", value):
        raise web.HTTPNotFound()
    return value


async def conversation(sandbox: Sandbox, account: str, openid: str, limit: int = 100) -> list[Any]:
    """The last lines of a citizen's conversation, oldest first."""
    from sandbox.models import SandboxMessage

    async with sandbox.db.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(SandboxMessage)
                    .where(SandboxMessage.account == account, SandboxMessage.openid == openid)
                    .order_by(SandboxMessage.id.desc())
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    return list(reversed(rows))
