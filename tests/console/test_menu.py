"""The WeChat custom menu in the console: view, edit within WeChat's limits, push with
``menu/create`` to the sandbox over HTTP and read it back with ``menu/get``."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from console.menu import Slot, buttons_of, problems_of, slots_of
from console.models import WechatMenu
from govcast.app import create_app
from publisher.models import AuditEntry
from tests.conftest import make_settings
from tests.console.conftest import Staff, csrf_of

EDITED = [
    {"type": "view", "name": "办事大厅", "url": "https://www.example.gov.cn/ban"},
    {
        "name": "政民互动",
        "sub_button": [
            {"type": "click", "name": "我要留言", "key": "leave_message"},
            {"type": "click", "name": "我的留言", "key": "my_cases"},
        ],
    },
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def live(
    tmp_path: Path, database_url: str, staff_members: Any
) -> AsyncIterator[tuple[str, Any]]:
    """The web application on a free port, its WeChat account pointed at its own sandbox."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path,
        database_url,
        **{
            "website.base_url": base,
            "wechat.accounts.main.api_base_url": f"{base}/sandbox/wechat/cgi-bin",
            "sandbox.enabled": True,
        },
    )
    server = TestServer(create_app(settings, roles={"web"}), host="127.0.0.1", port=port)
    await server.start_server()
    clients: list[TestClient] = []

    async def member(name: str) -> Staff:
        client = TestClient(server)
        await client.start_server()
        clients.append(client)
        staff = Staff(client, name)
        assert (await staff.login()).status == 303
        return staff

    try:
        yield base, member
    finally:
        for client in clients:
            await client.close()
        await server.close()


async def _platform_menu(base: str) -> dict[str, Any]:
    """``menu/get`` straight from the sandbox over HTTP, as a third party would see it."""
    async with aiohttp.ClientSession() as http:
        token = await (
            await http.get(
                f"{base}/sandbox/wechat/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": "wxsandbox00000001",
                    "secret": "sandbox-app-secret-main",
                },
            )
        ).json()
        answer: dict[str, Any] = await (
            await http.get(
                f"{base}/sandbox/wechat/cgi-bin/menu/get",
                params={"access_token": token["access_token"]},
            )
        ).json()
    return answer


def _form(csrf: str, buttons: list[dict[str, Any]]) -> dict[str, str]:
    form = {"_csrf": csrf, "account": "main"}
    for i, slot in enumerate(slots_of(buttons)):
        for prefix, s in [(f"b{i}", slot)] + [
            (f"b{i}_s{j}", sub) for j, sub in enumerate(slot.sub)
        ]:
            form.update(
                {
                    f"{prefix}_name": s.name,
                    f"{prefix}_type": s.type,
                    f"{prefix}_key": s.key,
                    f"{prefix}_url": s.url,
                }
            )
    return form


async def test_only_admins_see_edit_or_push_the_menu(live: Any) -> None:
    _, member = live
    for name in ("editor", "approver", "responder"):
        staff = await member(name)
        assert (await staff.get("/console/admin/menu")).status == 403
        assert (await staff.post("/console/admin/menu", _form(staff.csrf, EDITED))).status == 403
        assert (await staff.post("/console/admin/menu/push", {"account": "main"})).status == 403


async def test_admin_pushes_the_settings_menu_then_an_edited_one(live: Any, db: Any) -> None:
    base, member = live
    admin = await member("admin")
    page = await admin.get("/console/admin/menu")
    assert page.status == 200
    text = await page.text()
    assert "[bot.menu]" in text  # the settings' menu until one is saved
    assert "平台上没有菜单" in text  # the sandbox has none yet
    assert 'value="信息公开"' in text and 'value="latest_releases"' in text

    pushed = await admin.post("/console/admin/menu/push", {"account": "main"})
    assert pushed.status == 303
    text = await (await admin.get(pushed.headers["Location"])).text()
    assert "菜单已推送到微信（3个按钮）" in text
    platform = await _platform_menu(base)
    assert [b["name"] for b in platform["menu"]["button"]] == ["信息公开", "政民互动", "政府网站"]

    # Edit: nothing is pushed until asked.
    saved = await admin.post("/console/admin/menu", _form(admin.csrf, EDITED))
    assert saved.status == 303, await saved.text()
    async with db.sessions() as session:
        row = await session.get(WechatMenu, "main")
        assert row is not None and row.button == EDITED and row.updated_by == "admin"
    assert len((await _platform_menu(base))["menu"]["button"]) == 3
    text = await (await admin.get("/console/admin/menu")).text()
    assert "控制台保存的菜单" in text and 'value="办事大厅"' in text

    pushed = await admin.post("/console/admin/menu/push", {"account": "main"})
    assert pushed.status == 303
    assert (await _platform_menu(base))["menu"] == {"button": EDITED}
    text = await (await admin.get("/console/admin/menu")).text()
    assert "菜单已推送到微信（2个按钮）" in text
    assert "我的留言 · click · my_cases" in text  # read back with menu/get
    async with db.sessions() as session:
        row = await session.get(WechatMenu, "main")
        assert row is not None and row.push_result == "ok" and row.pushed_at is not None
        actions = list(
            (
                await session.execute(
                    select(AuditEntry.action)
                    .where(AuditEntry.object_type == "wechat_menu")
                    .order_by(AuditEntry.id)
                )
            ).scalars()
        )
    assert actions == ["wechat_menu.push", "wechat_menu.save", "wechat_menu.push"]


async def test_the_platforms_error_is_shown(live: Any, db: Any) -> None:
    base, member = live
    admin = await member("admin")
    assert (await admin.post("/console/admin/menu", _form(admin.csrf, EDITED))).status == 303
    # The page reads menu/get, so the access token is cached before the fault is set.
    assert (await admin.get("/console/admin/menu")).status == 200
    async with aiohttp.ClientSession() as http:
        fault = {"platform": "wechat", "error_rate": 1.0, "errcodes": [40018]}
        assert (await http.post(f"{base}/sandbox/_faults", json=fault)).status == 200
        try:
            pushed = await admin.post("/console/admin/menu/push", {"account": "main"})
        finally:
            await http.delete(f"{base}/sandbox/_faults")
    assert pushed.status == 303
    text = await (await admin.get("/console/admin/menu")).text()
    assert "推送失败：微信返回 [40018]" in text
    async with db.sessions() as session:
        row = await session.get(WechatMenu, "main")
        assert row is not None and row.push_result.startswith("error: [40018]")
    assert "menu" not in await _platform_menu(base)  # nothing reached the platform


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"b0_name": "一二三四五六"}, "按钮1：名称最多16字节"),
        ({"b0_type": "view", "b0_url": "ftp://x.example"}, "按钮1：链接须为http(s)网址"),
        ({"b1_s0_key": ""}, "按钮2 · 子按钮1：点击事件的KEY须为1-128字节"),
        ({"b1_s1_name": "", "b1_s1_key": "k" * 129}, "按钮2 · 子按钮2：名称不能为空"),
        (
            {"b1_s0_name": "", "b1_s0_key": "", "b1_s1_name": "", "b1_s1_key": ""},
            "子菜单至少需要一个子按钮",
        ),
        ({"b0_s0_name": "多余", "b0_s0_key": "x"}, "类型须选“子菜单”"),
        (
            {
                "b0_name": "",
                "b0_url": "",
                "b1_name": "",
                "b1_s0_name": "",
                "b1_s0_key": "",
                "b1_s1_name": "",
                "b1_s1_key": "",
            },
            "菜单至少需要一个按钮",
        ),
    ],
)
async def test_invalid_menus_are_refused_and_nothing_is_lost(
    live: Any, db: Any, changes: dict[str, str], message: str
) -> None:
    _, member = live
    admin = await member("admin")
    form = {**_form(admin.csrf, EDITED), **changes}
    response = await admin.post("/console/admin/menu", form)
    assert response.status == 400
    text = await response.text()
    assert message in text, text
    # What was typed is shown again to be corrected.
    for name, value in changes.items():
        if value and not name.endswith("_type"):
            assert f'name="{name}" value="{value}"' in text
    assert csrf_of(text) == admin.csrf
    async with db.sessions() as session:
        assert await session.get(WechatMenu, "main") is None


def test_limits_of_menu_create() -> None:
    leaf = {"type": "click", "name": "a", "key": "k"}
    assert problems_of([leaf] * 3) == []
    assert problems_of([leaf] * 4)[0][1] == "The menu has at most 3 top buttons."
    assert problems_of([{"name": "m", "sub_button": [leaf] * 6}])[0][1].endswith(
        "has at most 5 sub-buttons"
    )
    assert problems_of([{"name": "m", "sub_button": [{**leaf, "name": "字" * 20}]}]) == []
    assert problems_of([{"name": "m", "sub_button": [{**leaf, "name": "字" * 21}]}])
    assert problems_of([{"type": "click", "name": "a", "key": "k" * 129}])
    assert problems_of([{"type": "view", "name": "a", "url": "https://x/" + "a" * 1015}])
    assert not problems_of([{"type": "view", "name": "a", "url": "https://x/" + "a" * 1014}])
    assert problems_of([{"type": "scancode_push", "name": "a", "key": "k"}])
    buttons, problems = buttons_of([Slot(), Slot(name="x", type="click", key="k")])
    assert buttons == [{"type": "click", "name": "x", "key": "k"}] and problems == []
