"""The whole path through the real console in headless Chromium, against the real app
(worker, scheduler and sandbox running in it): compose with an image, previews, three
review steps, delivery to every channel, the delivery board, and a withdrawal."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from govcast import keys
from govcast.app import create_app
from publisher import staff, workflow
from publisher.models import Membership, Role, User
from tests.conftest import ARTIFACTS, PASSWORD, make_settings
from tests.console.helpers import png

SHOTS = ARTIFACTS / "console"
TITLE = "关于2026年城乡居民医保集中缴费的通知"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[str, Any]]:
    """The whole application on a free port, pointed at its own sandbox."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path,
        database_url,
        **{
            "website.base_url": base,
            "wechat.accounts.main.api_base_url": f"{base}/sandbox/wechat/cgi-bin",
            "weibo.accounts.main.api_base_url": f"{base}/sandbox/weibo/2",
            "weibo.accounts.main.safe_domain": "127.0.0.1",
            "scheduler.tick_seconds": 1.0,
            "sandbox.publish_delay_seconds": 0.2,
            "sandbox.enabled": True,
        },
    )
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    db = app[keys.DB]
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, settings.office.key)
        hashed = staff.hash_password(PASSWORD)
        for name, role in [
            ("editor", Role.EDITOR),
            ("reviewer1", Role.REVIEWER),
            ("reviewer2", Role.REVIEWER),
            ("approver", Role.APPROVER),
        ]:
            user = User(name=name, display_name=name, password_hash=hashed)
            user.memberships = [Membership(office_id=office.id, role=role.value)]
            session.add(user)
    try:
        yield base, app
    finally:
        await server.close()


async def _login(browser: Browser, base: str, name: str) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{base}/console/login")
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/console/")
    return page


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _wait(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.3)


async def _report(app: Any, publication_id: int) -> dict[str, Any]:
    from govcast.services import publication_report
    from publisher.views import deliveries_of

    async with app[keys.DB].sessions() as session:
        publication = await workflow.get_publication(session, publication_id)
        deliveries = await deliveries_of(session, publication_id)
    return publication_report(publication, deliveries, app[keys.CORE])


async def _sandbox_titles(http: aiohttp.ClientSession, base: str, app: Any) -> dict[str, str]:
    """What the sandbox platforms show, read through their real list endpoints."""
    settings = app[keys.SETTINGS]
    shown: dict[str, str] = {}
    registry = app[keys.CHANNELS]
    if "wechat" in registry:
        account = settings.wechat.accounts["main"]
        async with http.get(
            f"{base}/sandbox/wechat/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": account.app_id,
                "secret": account.app_secret.reveal(),
            },
        ) as response:
            token = (await response.json())["access_token"]
        async with http.post(
            f"{base}/sandbox/wechat/cgi-bin/freepublish/batchget",
            params={"access_token": token},
            json={"offset": 0, "count": 20, "no_content": 1},
        ) as response:
            shown["wechat"] = json.dumps(await response.json(), ensure_ascii=False)
    if "weibo" in registry:
        account_wb = settings.weibo.accounts["main"]
        async with http.get(
            f"{base}/sandbox/weibo/2/statuses/user_timeline.json",
            params={"access_token": account_wb.access_token.reveal()},
        ) as response:
            shown["weibo"] = json.dumps(await response.json(), ensure_ascii=False)
    return shown


async def _sandbox_wechat_content(http: aiohttp.ClientSession, base: str, app: Any) -> str:
    """The content of every article the WeChat sandbox has published, joined."""
    account = app[keys.SETTINGS].wechat.accounts["main"]
    async with http.get(
        f"{base}/sandbox/wechat/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": account.app_id,
            "secret": account.app_secret.reveal(),
        },
    ) as response:
        token = (await response.json())["access_token"]
    async with http.post(
        f"{base}/sandbox/wechat/cgi-bin/freepublish/batchget",
        params={"access_token": token},
        json={"offset": 0, "count": 20, "no_content": 0},
    ) as response:
        listing = await response.json()
    return "".join(
        f"{item.get('title', '')}\n{item.get('content', '')}"
        for entry in listing.get("item", [])
        for item in entry.get("content", {}).get("news_item", [])
    )


@pytest.mark.browser
async def test_compose_review_publish_and_withdraw_in_a_browser(
    live: tuple[str, Any], tmp_path: Path
) -> None:
    base, app = live
    image = tmp_path / "flow.png"
    image.write_bytes(png("navy", (600, 400)))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=BROWSER_ARGS
        )
        try:
            # 1. The editor composes with an image and sees the previews.
            editor = await _login(browser, base, "editor")
            await editor.click("text=撰写")
            await editor.fill("#f-title", TITLE)
            await editor.select_option("#f-category", "service")
            await editor.fill("#f-issuing_body", "示例市医疗保障局")
            await editor.fill("#f-keywords", "医保, 缴费")
            await editor.fill(
                "#f-body",
                "城乡居民医保2026年度集中缴费期为**10月至12月**。\n\n请按时缴费，详见附图。",
            )
            await editor.set_input_files("#f-images", str(image))
            await editor.fill("#f-image_alt", "缴费流程图")
            # The image goes into the body too, not only the cover and the Weibo picture.
            await editor.check("#f-images_in_body")
            await _shot(editor, "01-compose")
            await editor.click("#save")
            await editor.wait_for_selector("text=草稿已保存")
            publication_id = int(editor.url.rsplit("/", 1)[1])
            frames = editor.locator("iframe.preview")
            targets = [
                await frames.nth(i).get_attribute("data-target")
                for i in range(await frames.count())
            ]
            registered = app[keys.CHANNELS].targets()
            assert "website" in targets
            assert set(targets) == set(registered) & set(app[keys.CORE].targets_by_office["main"])
            for i in range(len(targets)):
                frame = editor.frame_locator("iframe.preview").nth(i)
                await frame.locator("body").wait_for()
            await editor.wait_for_timeout(500)
            await _shot(editor, "02-previews")
            await editor.click("#submit")
            await editor.wait_for_selector("text=已提交审核")
            await _shot(editor, "03-submitted")

            # 2. Three review steps by three different people.
            for step, name in enumerate(("reviewer1", "reviewer2", "approver"), start=1):
                page = await _login(browser, base, name)
                await page.click("text=审核")
                await page.click(f"a[href='/console/publications/{publication_id}']")
                await page.fill("#comment", "同意")
                await _shot(page, f"04-review-{step}-{name}")
                await page.click("#approve")
                await page.wait_for_selector(".flash.success")
                if name != "approver":
                    await page.context.close()
            approver = page
            await _shot(approver, "05-approved")

            # 3. The worker delivers to every channel.
            async def delivered() -> dict[str, Any] | None:
                report = await _report(app, publication_id)
                publishes = [d for d in report["deliveries"] if d["action"] == "publish"]
                done = publishes and all(d["state"] == "done" for d in publishes)
                return report if done and report["state"] == "published" else None

            report = await _wait(delivered)
            assert {
                f"{d['channel']}:{d['account']}" if d["channel"] != "website" else "website"
                for d in report["deliveries"]
            } == set(targets)
            site = await browser.new_context()
            visitor = await site.new_page()
            response = await visitor.goto(report["url"])
            assert response is not None and response.status == 200
            assert TITLE in await visitor.content()
            # The uploaded image is on the page, served and decoded by the browser.
            picture = visitor.locator("img[alt='缴费流程图']")
            assert await picture.count() == 1
            assert "/media/" in (await picture.get_attribute("src") or "")
            await picture.scroll_into_view_if_needed()
            assert await picture.evaluate("img => img.complete && img.naturalWidth") == 600
            await _shot(visitor, "06-website")
            async with aiohttp.ClientSession() as http:
                for platform, listing in (await _sandbox_titles(http, base, app)).items():
                    assert TITLE in listing, platform
                # The article body re-hosts the image through media/uploadimg.
                assert "wechat" in app[keys.CHANNELS]
                content = await _sandbox_wechat_content(http, base, app)
                assert TITLE in content
                assert re.search(
                    r'<img [^>]*src="https?://[^"]+/sandbox/wechat/mmbiz/[A-Za-z0-9_-]+"',
                    content,
                ), content[:2000]
                assert "/media/" not in content

            # 4. The delivery board shows it.
            await approver.goto(f"{base}/console/deliveries")
            rows = approver.locator(f"#board tr[data-publication='{publication_id}']")
            assert await rows.count() == len(targets)
            assert await approver.locator(
                f"#board tr[data-publication='{publication_id}'].done"
            ).count() == len(targets)
            await _shot(approver, "07-delivery-board")

            # 5. A withdrawal, taken from the delivery board, removes it everywhere.
            await approver.fill(f"#reason-{publication_id}", "政策调整，撤回重发")
            await approver.click(f"form.withdraw[action$='/{publication_id}/withdraw'] button")
            await approver.wait_for_selector("text=已撤回")
            assert approver.url.startswith(f"{base}/console/deliveries")

            async def retracted() -> bool:
                report = await _report(app, publication_id)
                retracts = [d for d in report["deliveries"] if d["action"] == "retract"]
                return bool(retracts) and all(d["state"] == "done" for d in retracts)

            await _wait(retracted)
            response = await visitor.goto(report["url"])
            assert response is not None
            assert (
                response.status in (404, 410)
                or TITLE not in await visitor.content()
                or ("撤回" in await visitor.content() or "withdrawn" in await visitor.content())
            )
            async with aiohttp.ClientSession() as http:
                for platform, listing in (await _sandbox_titles(http, base, app)).items():
                    assert TITLE not in listing, platform
            await approver.goto(f"{base}/console/deliveries")
            await _shot(approver, "08-withdrawn")
        finally:
            await browser.close()


@pytest.mark.browser
async def test_insert_an_uploaded_image_at_the_cursor(
    live: tuple[str, Any], tmp_path: Path
) -> None:
    base, _app = live
    image = tmp_path / "map.png"
    image.write_bytes(png("teal", (300, 200)))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=BROWSER_ARGS
        )
        try:
            editor = await _login(browser, base, "editor")
            await editor.goto(f"{base}/console/publications/new")
            await editor.fill("#f-title", "关于启用新办事地图的通知")
            await editor.select_option("#f-category", "service")
            await editor.fill("#f-issuing_body", "示例市政务服务中心")
            await editor.fill("#f-body", "第一段。\n\n第二段。")
            await editor.set_input_files("#f-images", str(image))
            await editor.fill("#f-image_alt", "办事地图")
            await editor.click("#save")
            await editor.wait_for_selector("text=草稿已保存")
            publication_id = int(editor.url.rsplit("/", 1)[1])
            await editor.goto(f"{base}/console/publications/{publication_id}/edit")
            button = editor.locator("button.insert-image")
            await button.wait_for(state="visible")  # revealed by the script
            body = editor.locator("#f-body")
            # The cursor after the first paragraph: the image goes between the two.
            await body.evaluate("el => el.setSelectionRange(4, 4)")
            await button.click()
            value = await body.input_value()
            first, rest = value.split("![办事地图](<", 1)
            assert first == "第一段。\n\n"
            assert rest.split(">)", 1)[1] == "\n\n第二段。"
            await _shot(editor, "09-insert-image")
            await editor.click("#save")
            await editor.wait_for_selector("text=已保存新版本")
            frame = editor.frame_locator("iframe.preview[data-target='website']")
            picture = frame.locator("img[alt='办事地图']")
            await picture.wait_for()
            assert "/media/" in (await picture.get_attribute("src") or "")
        finally:
            await browser.close()
