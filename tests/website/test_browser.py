"""The public site in a real headless Chromium: no JavaScript needed, keyboard use, skip
link, elder mode, and axe-core (from npm) finding no WCAG 2.0 A/AA violations."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from govcast.settings import Settings
from publisher.db import Database
from publisher.orm import utcnow
from tests.conftest import ARTIFACTS
from tests.website.helpers import add_item
from tests.website.test_pages import website_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE = ARTIFACTS / "npm" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _axe() -> Path:
    # scripts/test installs it; install here too so the test runs on its own.
    if not AXE.is_file():
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(ARTIFACTS / "npm"),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "axe-core@4",
            ],
            check=True,
            cwd=ROOT,
            timeout=300,
        )
    return AXE


@pytest.fixture
async def site(aiohttp_server: Any, settings: Settings, db: Database) -> AsyncIterator[str]:
    now = utcnow()
    new = await add_item(
        db,
        1,
        title="关于2026年城乡居民医保集中缴费的通知",
        body="城乡居民医保集中缴费期为10月至12月。" * 5,
        published_at=now - timedelta(days=2),
        genre="通知",
        keywords=["医保", "缴费"],
        title_en="Notice on medical insurance",
        body_html_en="<p>Contributions are due from October.</p>",
    )
    await add_item(
        db,
        2,
        title="关于医保缴费的旧通知",
        body="旧规定。",
        category="decision",
        published_at=now - timedelta(days=300),
        validity="repealed",
        replaced_by_id=new.id,
    )
    await add_item(db, 3, title="已撤回的信息", state="withdrawn")
    await add_item(
        db, 4, title="示例市人民政府信息公开指南", column_key="guide", category="management"
    )
    server: TestServer = await aiohttp_server(website_app(settings, db))
    yield str(server.make_url("")).rstrip("/")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        await instance.close()


async def _axe_violations(page: Page) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(_axe()))
    result = await page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    return [
        {"id": v["id"], "nodes": [n["html"] for n in v["nodes"]][:3]} for v in result["violations"]
    ]


async def test_pages_read_without_javascript(site: str, browser: Browser) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="zh-CN")
    page = await context.new_page()
    await page.goto(site + "/")
    assert await page.locator("h1").inner_text() == "示例市人民政府"
    await page.get_by_role("link", name="关于2026年城乡居民医保集中缴费的通知").first.click()
    await page.wait_for_load_state()
    assert "医保集中缴费" in await page.locator("h1").inner_text()
    assert await page.locator("table.meta th").count() >= 10
    # The search form works without scripts.
    await page.goto(site + "/")
    await page.get_by_label("站内搜索关键词").fill("医保")
    await page.get_by_label("站内搜索关键词").press("Enter")
    await page.wait_for_load_state()
    assert "/search?q=" in page.url
    assert await page.locator("ol.results mark").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "website-search.png"), full_page=True)
    await context.close()


async def test_keyboard_skip_link_and_elder_mode(site: str, browser: Browser) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(site + "/disclosure/")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("() => document.activeElement.className")
    assert focused == "skip-link"
    box = await page.locator(".skip-link").bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0  # visible when focused
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"
    # Tabbing from the main content reaches the catalog's links and form fields in order.
    seen = []
    for _ in range(25):
        await page.keyboard.press("Tab")
        seen.append(
            await page.evaluate(
                "() => [document.activeElement.tagName, getComputedStyle(document.activeElement)"
                ".outlineStyle]"
            )
        )
    tags = {tag for tag, _ in seen}
    assert {"A", "SELECT", "INPUT"} <= tags
    # (BODY: the tab order wrapped past the last element to the browser itself.)
    assert all(style != "none" for tag, style in seen if tag != "BODY"), repr(seen)
    normal = await page.evaluate(
        "() => parseFloat(getComputedStyle(document.documentElement).fontSize)"
    )
    await page.get_by_role("link", name="长者模式").click()
    await page.wait_for_load_state()
    assert await page.evaluate("() => document.documentElement.className") == "elder"
    large = await page.evaluate(
        "() => parseFloat(getComputedStyle(document.documentElement).fontSize)"
    )
    assert large >= normal * 1.3
    # The choice is remembered on the next page (cookie), and can be switched off.
    await page.goto(site + "/")
    assert await page.evaluate("() => document.documentElement.className") == "elder"
    await page.screenshot(path=str(ARTIFACTS / "website-home-elder.png"), full_page=True)
    await page.get_by_role("link", name="标准模式").click()
    await page.wait_for_load_state()
    assert await page.evaluate("() => document.documentElement.className") == ""
    await context.close()


async def test_axe_finds_no_wcag_aa_violations(site: str, browser: Browser) -> None:
    # bypass_csp only so that the test can inject axe; the pages themselves run no script.
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    paths = [
        "/",
        "/?elder=1",
        "/disclosure/",
        "/disclosure/?column=guide",
        "/disclosure/11340000MB0000000X/" + "x",
        "/search?q=医保",
        "/search?q=不存在",
        "/solicitations/",
        "/report-error",
        "/en/",
        "/en/disclosure/",
    ]
    await page.goto(site + "/?elder=0")
    links = await page.locator("ul.items a").evaluate_all("els => els.map(e => e.pathname)")
    paths += sorted(set(links))[:3]
    paths += ["/en" + p for p in sorted(set(links))[:2]]
    problems = {}
    for path in paths:
        await page.goto(site + path)
        violations = await _axe_violations(page)
        if violations:
            problems[path] = violations
    await page.goto(site + "/")
    await page.screenshot(path=str(ARTIFACTS / "website-home.png"), full_page=True)
    assert problems == {}
    # The check itself can fail: a page without lang, title and alt text is caught.
    await page.set_content('<html><body><img src="x.png"><a href="#"></a></body></html>')
    assert {v["id"] for v in await _axe_violations(page)} >= {"html-has-lang", "image-alt"}
    await context.close()
