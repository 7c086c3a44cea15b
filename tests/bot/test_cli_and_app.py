"""The menu command and the bot inside the full application."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.cli import _api
from govcast.app import create_app
from govcast.cli import main
from govcast.settings import Settings
from tests.bot.helpers import WeChatSide, bot_settings, reply_content, sign, text_xml
from tests.conftest import make_settings


def test_menu_push_dry_run_prints_the_payload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wechat", "menu", "push", "--dry-run"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in payload["button"]] == ["信息公开", "政民互动", "政府网站"]


def test_menu_push_unknown_account_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wechat", "menu", "push", "--account", "nope"]) == 2
    assert "wechat.accounts.nope" in capsys.readouterr().err


def test_menu_push_without_a_wechat_channel() -> None:
    assert _api({}, "main") is None


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return bot_settings(tmp_path, database_url, "safe", **{"scheduler.enabled": False})


async def test_callback_in_the_full_application(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings, roles={"web"}))
    ts, nonce = str(int(time.time())), "42"
    resp = await client.get(
        "/wechat/main",
        params={
            "timestamp": ts,
            "nonce": nonce,
            "echostr": "e1",
            "signature": sign("spamtest", ts, nonce),
        },
    )
    assert resp.status == 200 and await resp.text() == "e1"
    query, body = WeChatSide().push(text_xml("没有这个词", 7001), "safe")
    resp = await client.post("/wechat/main", params=query, data=body.encode())
    assert resp.status == 200
    assert "暂未找到" in reply_content(WeChatSide().open_reply(await resp.text()))


@pytest.mark.parametrize("mode", ["plain", "compatible", "safe"])
async def test_through_the_sandbox_citizen(
    aiohttp_client: Any, tmp_path: Path, database_url: str, mode: str
) -> None:
    from bot.keywords import add_rule
    from govcast import keys
    from sandbox.core import SANDBOX

    settings = make_settings(
        tmp_path,
        database_url,
        **{"scheduler.enabled": False, "sandbox.enabled": True, "wechat.accounts.main.mode": mode},
    )
    app = create_app(settings, roles={"web"})
    client = await aiohttp_client(app)
    app[SANDBOX].origin_override = str(client.make_url("/")).rstrip("/")
    async with app[keys.DB].transaction() as session:
        await add_rule(
            session, match="contains", pattern="公积金", reply_text="公积金提取请带身份证。"
        )
    resp = await client.post(
        "/sandbox/wechat/_citizen/send", json={"follower": 0, "content": "我想问公积金"}
    )
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["ok"] and result["tries"] == 1
    assert result["shown"] == "公积金提取请带身份证。"
    resp = await client.post(
        "/sandbox/wechat/_citizen/send", json={"follower": 1, "content": "完全无关的问题"}
    )
    result = await resp.json()
    assert result["ok"] and "暂未找到" in result["shown"]
