"""The link checker against a local server: broken links and images, timeouts, cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from publisher.checks.links import LinkChecker


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, dict[str, int]]]:
    hits: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        if request.path == "/slow":
            await asyncio.sleep(2)
        if request.path == "/head-refused" and request.method == "HEAD":
            return web.Response(status=405)
        if request.path.startswith("/missing"):
            return web.Response(status=404)
        if request.path == "/error":
            return web.Response(status=500)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/")), hits
    finally:
        await server.close()


async def test_broken_links_and_images_point_at_the_attribute(
    site: tuple[str, dict[str, int]],
) -> None:
    base, _hits = site
    html = (
        f'<p><a href="{base}ok">好</a><a href="{base}missing/1">坏</a>'
        f'<img src="/missing.png" alt="图"><a href="{base}error">错</a>'
        f'<a href="{base}head-refused">仅GET</a><a href="mailto:a@b.cn">信</a>'
        '<a href="#top">顶</a><a href="ftp://x/y">FTP</a></p>'
    )
    async with aiohttp.ClientSession() as session:
        checker = LinkChecker(session, timeout_seconds=5, base_url=base)
        findings = await checker.check_html(html)
    assert [(f.code, html[f.start : f.end]) for f in findings] == [
        ("broken_link", f"{base}missing/1"),
        ("broken_image", "/missing.png"),
        ("broken_link", f"{base}error"),
    ]
    assert "HTTP 404" in findings[0].message


async def test_timeout_and_unreachable_host(site: tuple[str, dict[str, int]]) -> None:
    base, _ = site
    async with aiohttp.ClientSession() as session:
        checker = LinkChecker(session, timeout_seconds=0.2)
        slow = await checker.status(f"{base}slow")
        # Port 1 on localhost: nothing listens, the connection is refused.
        closed = await checker.status("http://127.0.0.1:1/")
    assert not slow.ok and "超时" in slow.reason
    assert not closed.ok and "无法连接" in closed.reason


async def test_results_are_cached_until_they_expire(site: tuple[str, dict[str, int]]) -> None:
    base, hits = site
    now = [0.0]
    async with aiohttp.ClientSession() as session:
        checker = LinkChecker(session, cache_seconds=60, clock=lambda: now[0])
        await checker.check_many([f"{base}a", f"{base}a", f"{base}b"])
        await checker.status(f"{base}a")
        assert hits == {"/a": 1, "/b": 1}
        now[0] = 61.0
        await checker.status(f"{base}a")
    assert hits["/a"] == 2


async def test_all_checks_with_links_graded_by_policy(site: tuple[str, dict[str, int]]) -> None:
    from publisher.checks.findings import Severity
    from publisher.checks.links import run_checks_with_links
    from publisher.checks.lists import CheckLists
    from publisher.checks.run import Checker, CheckSubject

    base, _ = site
    subject = CheckSubject(
        title="标题",
        summary="",
        body_html=f'<p>手机13812345678</p><a href="{base}missing">坏链</a>',
    )
    async with aiohttp.ClientSession() as session:
        links = LinkChecker(session, timeout_seconds=5)
        found = await run_checks_with_links(subject, Checker(), links)
        assert [(f.field, f.code) for f in found] == [
            ("body", "personal_mobile"),
            ("body_html", "broken_link"),
        ]
        relaxed = Checker(CheckLists(severities={"broken_link": Severity.WARNING}))
        found = await run_checks_with_links(subject, relaxed, links)
    assert [f.severity for f in found if f.code == "broken_link"] == [Severity.WARNING]
