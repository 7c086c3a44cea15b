"""Helpers for comments-inbox tests: the real app on a free port with its sandbox, published
items (WeChat article, Weibo post) seeded as done deliveries, simulated followers."""

from __future__ import annotations

import contextlib
import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.comments import web as comments_web
from govcast import keys
from govcast.app import create_app
from publisher import workflow
from publisher.db import Database
from publisher.models import Delivery, Publication
from publisher.orm import utcnow
from sandbox.web import CLOCK as SANDBOX_CLOCK
from tests.conftest import PASSWORD, make_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[web.Application, str]]:
    """The whole application (web role) on a free port, pointed at its own sandbox."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path,
        database_url,
        **{
            "server.port": port,
            "website.base_url": origin,
            "wechat.accounts.main.api_base_url": f"{origin}/sandbox/wechat/cgi-bin",
            "weibo.accounts.main.api_base_url": f"{origin}/sandbox/weibo/2",
            "weibo.accounts.main.safe_domain": "127.0.0.1",
            "sandbox.enabled": True,
            **overrides,
        },
    )
    app = create_app(settings, {"web"})
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield app, origin
    finally:
        await server.close()


async def tick(app: web.Application, name: str) -> Any:
    for job in comments_web.ticks(app):
        if job.name == name:
            return await job.run()
    raise AssertionError(name)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), "blue").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Published:
    publication_id: int
    msg_data_id: str
    status_id: str


async def publish_both(app: web.Application, origin: str) -> Published:
    """A WeChat article (comments open) and a Weibo post, recorded as done deliveries."""
    channels: Any = app[keys.CHANNELS]
    wx = channels["wechat"].api("main")
    thumb = await wx.add_image_material(png(), "c.png", "image/png")
    media_id = await wx.draft_add(
        [
            {
                "title": "关于医保缴费的通知",
                "author": "医保局",
                "content": "<p>正文</p>",
                "content_source_url": f"{origin}/disclosure/x",
                "thumb_media_id": thumb,
                "need_open_comment": 1,
            }
        ]
    )
    sub = await wx.freepublish_submit(media_id)
    app[SANDBOX_CLOCK].advance(5)
    got = await wx.freepublish_get(sub["publish_id"])
    assert got["publish_status"] == 0, got
    post = await channels["weibo"].api("main").share(f"关于医保缴费的通知 {origin}/disclosure/x")
    db: Database = app[keys.DB]
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        pub = Publication(
            office_id=office.id,
            kind="disclosure",
            state="published",
            title="关于医保缴费的通知",
            body_html="<p>正文</p>",
            category="service",
            issuing_body="示例市医疗保障局",
        )
        session.add(pub)
        await session.flush()
        now = utcnow()
        session.add_all(
            [
                Delivery(
                    publication_id=pub.id,
                    channel="wechat",
                    account="main",
                    action="publish",
                    state="done",
                    remote_id=str(sub["publish_id"]),
                    done_at=now,
                    receipt={
                        "publish_id": str(sub["publish_id"]),
                        "msg_data_id": str(sub["msg_data_id"]),
                    },
                ),
                Delivery(
                    publication_id=pub.id,
                    channel="weibo",
                    account="main",
                    action="publish",
                    state="done",
                    remote_id=str(post["id"]),
                    done_at=now,
                    receipt={},
                ),
            ]
        )
        pub_id = pub.id
    return Published(pub_id, str(sub["msg_data_id"]), str(post["id"]))


async def wechat_comment(
    http: aiohttp.ClientSession, origin: str, msg_data_id: str, text: str, follower: int = 0
) -> int:
    async with http.post(
        f"{origin}/sandbox/wechat/_followers/comment",
        json={"msg_data_id": msg_data_id, "index": 0, "follower": follower, "text": text},
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        return int(body["user_comment_id"])


async def weibo_comment(
    http: aiohttp.ClientSession, origin: str, status_id: str, text: str, follower: int = 0
) -> int:
    async with http.post(
        f"{origin}/sandbox/weibo/_followers/comment",
        json={"account": "main", "status_id": status_id, "follower": follower, "text": text},
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        return int(body["id"])


def csrf_of(html: str) -> str:
    match = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def console_login(http: aiohttp.ClientSession, origin: str, name: str) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    async with http.get(f"{origin}/console/login") as r:
        token = csrf_of(await r.text())
    async with http.post(
        f"{origin}/console/login",
        data={"_csrf": token, "name": name, "password": PASSWORD, "next": "/console/"},
        allow_redirects=False,
    ) as r:
        assert r.status == 303, await r.text()
    async with http.get(f"{origin}/console/") as r:
        return csrf_of(await r.text())
