"""The inbox pages: roles, filters (malformed input is a 400), reply / feature / hide / case
forms, and hostile comment text rendered harmless (in headless Chromium too)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from publisher.db import Database
from publisher.staff import StaffMember
from tests.bot.comments.helpers import (
    console_login,
    publish_both,
    running,
    tick,
    wechat_comment,
    weibo_comment,
)
from tests.conftest import ARTIFACTS, PASSWORD

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>{{7*7}}'
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


async def test_inbox_pages_and_actions(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin):
        async with aiohttp.ClientSession() as http:
            pub = await publish_both(app, origin)
            await wechat_comment(http, origin, pub.msg_data_id, HOSTILE)
            await weibo_comment(http, origin, pub.status_id, "路灯什么时候修？")
            assert await tick(app, "comments_collect") == 2
        # Not signed in: to the login page. A reviewer: forbidden.
        async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
            async with http.get(f"{origin}/console/comments", allow_redirects=False) as r:
                assert r.status == 303 and "/console/login" in r.headers["Location"]
            await console_login(http, origin, "reviewer1")
            async with http.get(f"{origin}/console/comments") as r:
                assert r.status == 403
        async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
            csrf = await console_login(http, origin, "responder")
            async with http.get(f"{origin}/console/comments") as r:
                html = await r.text()
                assert r.status == 200
            assert "<script>window.__pwned" not in html and "&lt;script&gt;" in html
            assert "路灯什么时候修" in html
            for bad in (
                "platform=qq",
                "state=x",
                "publication=1x",
                "account=nope",
                "publication=" + "9" * 30,
                "state=%00",
            ):
                async with http.get(f"{origin}/console/comments?{bad}") as r:
                    assert r.status == 400, bad
            async with http.get(
                f"{origin}/console/comments?platform=weibo&publication={pub.publication_id}"
            ) as r:
                html = await r.text()
            assert "路灯什么时候修" in html and "&lt;script&gt;" not in html
            assert 'id="comment-counts"' in html
            async with http.get(f"{origin}/console/comments?state=answered") as r:
                assert "路灯" not in await r.text()
            # The Weibo comment: reply, then refusals for empty / oversized / repeated.
            from sqlalchemy import select

            from bot.comments.models import Comment

            async with db.sessions() as session:
                ids = {c.platform: c.id for c in (await session.execute(select(Comment))).scalars()}
            url = f"{origin}/console/comments/{ids['weibo']}"
            async with http.get(url) as r:
                page = await r.text()
                assert "仅在本系统隐藏" in page
            async with http.post(f"{url}/reply", data={"_csrf": csrf, "text": "字" * 141}) as r:
                assert r.status == 400
            async with http.post(f"{url}/reply", data={"_csrf": csrf, "text": " "}) as r:
                assert r.status == 400
            async with http.post(f"{url}/reply", data={"text": "no csrf"}) as r:
                assert r.status == 403
            async with http.post(f"{url}/reply", data={"_csrf": csrf, "text": "本周内修复。"}) as r:
                assert r.status == 200
                assert "本周内修复。" in await r.text()
            async with http.post(f"{url}/reply", data={"_csrf": csrf, "text": "又一次"}) as r:
                assert r.status == 400
            async with http.post(f"{url}/feature", data={"_csrf": csrf}) as r:
                assert r.status == 200 and "已精选" in await r.text()
            async with http.post(f"{url}/case", data={"_csrf": csrf, "kind": "bogus"}) as r:
                assert r.status == 400
            async with http.post(f"{url}/case", data={"_csrf": csrf, "kind": "help"}) as r:
                assert r.status == 200 and 'id="case-link"' in await r.text()
            wx_url = f"{origin}/console/comments/{ids['wechat']}"
            async with http.post(f"{wx_url}/hide", data={"_csrf": csrf}) as r:
                assert r.status == 200 and "已隐藏" in await r.text()
            async with http.get(f"{origin}/console/comments/99999999") as r:
                assert r.status == 404
            async with http.get(f"{origin}/console/comments/abc") as r:
                assert r.status == 404


@pytest.mark.browser
async def test_hostile_comment_is_harmless_in_chromium(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin):
        async with aiohttp.ClientSession() as http:
            pub = await publish_both(app, origin)
            await wechat_comment(http, origin, pub.msg_data_id, HOSTILE)
            await weibo_comment(http, origin, pub.status_id, HOSTILE)
            assert await tick(app, "comments_collect") == 2
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=BROWSER_ARGS
            )
            try:
                page = await browser.new_page(locale="zh-CN")
                dialogs: list[str] = []
                page.on("dialog", lambda d: dialogs.append(d.message))
                await page.goto(f"{origin}/console/login")
                await page.fill("#name", "responder")
                await page.fill("#password", PASSWORD)
                await page.click("#login")
                await page.wait_for_url(f"{origin}/console/")
                (ARTIFACTS / "comments").mkdir(parents=True, exist_ok=True)
                # The WeChat comment and the Weibo one, each from the inbox to its page.
                for platform in ("wechat", "weibo"):
                    await page.goto(f"{origin}/console/comments?platform={platform}")
                    cells = page.locator("#comments .comment-text a")
                    assert await cells.count() == 1
                    assert HOSTILE[:60] in (await cells.first.inner_text())
                    assert await page.evaluate("window.__pwned === undefined")
                    await cells.first.click()
                    await page.wait_for_selector("#comment-text")
                    assert (await page.inner_text("#comment-text")).strip() == HOSTILE
                    assert await page.evaluate("window.__pwned === undefined")
                    assert await page.locator("#main img").count() == 0
                    assert "49" not in await page.inner_text("#comment-text")
                    await page.screenshot(path=str(ARTIFACTS / "comments" / f"{platform}.png"))
                assert dialogs == []
            finally:
                await browser.close()
