"""Start the real application (with its sandbox) on a free port for channel tests."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from channels.base import ChannelRegistry
from channels.wechat import WeChatChannel
from channels.weibo import WeiboChannel
from govcast import keys
from govcast.app import create_app
from govcast.settings import Settings
from tests.conftest import make_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def live_settings(tmp_path: Path, database_url: str, port: int, **extra: Any) -> Settings:
    origin = f"http://127.0.0.1:{port}"
    return make_settings(
        tmp_path,
        database_url,
        **{
            "server.port": port,
            "wechat.accounts.main.api_base_url": f"{origin}/sandbox/wechat/cgi-bin",
            "weibo.accounts.main.api_base_url": f"{origin}/sandbox/weibo/2",
            "scheduler.tick_seconds": 1.0,
            "queue.backoff_base_seconds": 0.2,
            "queue.backoff_max_seconds": 1.0,
            "queue.max_attempts": 60,
            "queue.poll_interval_seconds": 0.05,
            **extra,
        },
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, roles: Any = None) -> AsyncIterator[web.Application]:
    app = create_app(settings, roles) if roles else create_app(settings)
    server = TestServer(app, host="127.0.0.1", port=settings.server.port)
    await server.start_server()
    try:
        registry = app[keys.CHANNELS]
        assert isinstance(registry, ChannelRegistry)
        # Tests cannot wait out production timeouts: shorter waits, same code paths.
        wechat = registry["wechat"]
        assert isinstance(wechat, WeChatChannel)
        wechat.submit_settle_seconds = 2.0
        wechat.api("main").timeout = 1.5
        weibo = registry["weibo"]
        assert isinstance(weibo, WeiboChannel)
        weibo.api("main").timeout = 1.5
        yield app
    finally:
        await server.close()
