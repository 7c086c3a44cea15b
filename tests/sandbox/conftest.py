"""Fixtures: the sandbox on its own app (with a fake bot callback) on a real port."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from govcast.settings import Settings
from sandbox.cli import create_sandbox_app
from sandbox.core import SANDBOX, Sandbox
from sandbox.web import CLOCK
from tests.conftest import make_settings

APPID = "wxsandbox00000001"
SECRET = "sandbox-app-secret-main"
WEIBO_TOKEN = "sandbox-weibo-token-main"


def png_bytes(size: int = 0) -> bytes:
    """A valid 1x1 PNG, padded with an ancillary chunk to about ``size`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"\x00\x00\x00\x00"
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    if size:
        body += chunk(b"teXt", b"x" * size)
    body += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def jpeg_bytes(size: int = 0) -> bytes:
    """Bytes that start like a JPEG (the platform sniffs magic bytes)."""
    return b"\xff\xd8\xff\xe0" + b"\x00" * max(size, 16) + b"\xff\xd9"


@dataclass
class FakeBot:
    """A stand-in for the bot's callback: scripted replies, recorded requests."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    # Each entry: a reply body, or a number of seconds to stall (float), or an HTTP status.
    script: list[Any] = field(default_factory=list)
    default: Any = "success"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {"account": request.match_info["account"], "query": dict(request.query), "body": body}
        )
        step = self.script.pop(0) if self.script else self.default
        if isinstance(step, float):
            await asyncio.sleep(step)
            return web.Response(text="success")
        if isinstance(step, int):
            return web.Response(status=step)
        if callable(step):
            return web.Response(text=step(request, body), content_type="text/xml")
        return web.Response(text=step, content_type="text/xml")


@dataclass
class Harness:
    """The running sandbox: HTTP client, state object, the fake bot."""

    client: TestClient[Any, Any]
    sandbox: Sandbox
    bot: FakeBot
    settings: Settings

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def token(self) -> str:
        resp = await self.client.get(
            "/sandbox/wechat/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
        )
        data = await resp.json()
        return str(data["access_token"])

    async def wx(
        self,
        path: str,
        payload: Any = None,
        *,
        token: str | None = None,
        method: str = "POST",
        params: dict[str, str] | None = None,
        data: Any = None,
    ) -> dict[str, Any]:
        query = {"access_token": token or await self.token(), **(params or {})}
        if payload is not None:
            import json

            data = json.dumps(payload, ensure_ascii=False).encode()
        resp = await self.client.request(
            method, f"/sandbox/wechat/cgi-bin/{path}", params=query, data=data
        )
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def wb(self, method: str, path: str, **fields: Any) -> tuple[int, Any]:
        if method == "GET":
            resp = await self.client.get(
                f"/sandbox/weibo/2/{path}", params={"access_token": WEIBO_TOKEN, **fields}
            )
        else:
            resp = await self.client.post(
                f"/sandbox/weibo/2/{path}", data={"access_token": WEIBO_TOKEN, **fields}
            )
        return resp.status, await resp.json()


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(tmp_path: Path, database_url: str) -> AsyncIterator[MakeHarness]:
    """Build a running sandbox with settings overrides; closed at the end of the test."""
    clients: list[TestClient[Any, Any]] = []

    async def build(**overrides: Any) -> Harness:
        values = {"sandbox.publish_delay_seconds": 0.05, "sandbox.followers": 200}
        values.update(overrides)
        settings = make_settings(tmp_path, database_url, **values)
        app = create_sandbox_app(settings)
        bot = FakeBot()
        app.router.add_post("/wechat/{account}", bot.handle)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        sandbox = app[SANDBOX]
        sandbox.origin_override = str(client.make_url("")).rstrip("/")
        sandbox.callback_timeout = 0.5
        assert app[CLOCK] is sandbox.clock
        return Harness(client=client, sandbox=sandbox, bot=bot, settings=settings)

    yield build
    for client in clients:
        await client.close()


@pytest.fixture
async def h(make_harness: MakeHarness) -> Harness:
    """A sandbox with the repository's default accounts."""
    return await make_harness()


def multipart(field_name: str, content: bytes, filename: str, content_type: str) -> Any:
    """A multipart form with one file."""
    import aiohttp

    form = aiohttp.FormData()
    form.add_field(field_name, io.BytesIO(content), filename=filename, content_type=content_type)
    return form
