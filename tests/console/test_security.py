"""Roles on every route, CSRF, XSS, sessions, cookies, lock-out and rate limits."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from console.models import ConsoleSession
from console.web import CONSOLE_ROUTES
from publisher.models import Publication, Role
from publisher.orm import utcnow
from tests.console.conftest import Staff, csrf_of
from tests.console.helpers import compose_form

FIXTURE_ROLES = {
    "editor": Role.EDITOR,
    "reviewer1": Role.REVIEWER,
    "approver": Role.APPROVER,
    "responder": Role.RESPONDER,
    "admin": Role.ADMIN,
}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def console_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every console page, checked against the
    application's router so that no registered /console/ page escapes the table."""
    table = list(app[CONSOLE_ROUTES])
    registered = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/console/") and route.method != "HEAD":
            registered.add((route.method, path))
    ours = {(method, path) for method, path, _ in table}
    assert ours <= registered
    return table


def concrete(path: str, publication_id: int) -> str:
    path = path.replace("{id}", str(publication_id))
    path = re.sub(r"\{target[^}]*\}", "website", path)
    return path


async def _publication(editor: Staff) -> int:
    response = await editor.post("/console/publications/new", compose_form(editor.csrf))
    assert response.status == 303, await response.text()
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def test_every_route_declares_roles_and_refuses_the_wrong_ones(signed_in: Any) -> None:
    editor = await signed_in("editor")
    publication_id = await _publication(editor)
    app = editor.client.server.app
    routes = console_routes(app)
    assert len(routes) >= 30
    members = {name: await signed_in(name) for name in FIXTURE_ROLES}
    anonymous = (await signed_in("")).client
    refused = 0
    if True:
        for method, template, handler in routes:
            public = getattr(handler, "public", False)
            required = getattr(handler, "required_roles", None)
            assert public or required is not None, f"{method} {template} declares no roles"
            if public:
                continue
            path = concrete(template, publication_id)
            # Without a session: always sent to the sign-in page.
            response = await anonymous.request(method, path, allow_redirects=False)
            assert response.status == 303, (method, path, response.status)
            assert response.headers["Location"].startswith("/console/login")
            for name, role in FIXTURE_ROLES.items():
                allowed = not required or role in required or role == Role.ADMIN
                if allowed:
                    continue
                member = members[name]
                if method == "GET":
                    response = await member.get(path)
                else:
                    response = await member.post(path, {})
                assert response.status == 403, (name, method, path, response.status)
                refused += 1
    assert refused > 40


async def test_post_without_or_with_wrong_csrf_token_is_refused(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    missing = await editor.post("/console/publications/new", compose_form(""), csrf=False)
    assert missing.status == 403
    wrong = await editor.post("/console/publications/new", compose_form("x" * 32), csrf=False)
    assert wrong.status == 403
    foreign = await editor.post(
        "/console/publications/new",
        compose_form(editor.csrf),
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    async with db.sessions() as session:
        assert (await session.execute(select(Publication))).first() is None
    # Sign-in without the double-submit token is refused as well.
    response = await editor.client.post(
        "/console/login", data={"name": "editor", "password": "x"}, allow_redirects=False
    )
    assert response.status == 403


async def test_hostile_text_is_escaped_everywhere(signed_in: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.post(
        "/console/publications/new",
        compose_form(editor.csrf, title=HOSTILE, issuing_body=HOSTILE, keywords="<script>k"),
    )
    assert response.status == 303, await response.text()
    publication_id = int(response.headers["Location"].rsplit("/", 1)[1])
    admin = await signed_in("admin")
    pages = [
        "/console/publications",
        f"/console/publications/{publication_id}",
        f"/console/publications/{publication_id}/edit",
        "/console/audit",
    ]
    for path in pages:
        html = await (await admin.get(path)).text()
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;" in html or "\\u003cscript" in html, path
    frame = await admin.get(f"/console/publications/{publication_id}/preview/website/frame")
    assert "<script>alert" not in await frame.text()
    # A hostile ?next= cannot redirect off-site.
    page = await admin.client.get("/console/login?next=https://evil.example/")
    assert "evil.example" not in await page.text()


async def test_cookie_flags_and_headers(signed_in: Any) -> None:
    editor = await signed_in("editor")
    fresh = (await signed_in("")).client
    page = await fresh.get("/console/login")
    token = csrf_of(await page.text())
    response = await fresh.post(
        "/console/login",
        data={"_csrf": token, "name": "editor", "password": "correct horse battery staple"},
        allow_redirects=False,
    )
    cookie = response.headers.getall("Set-Cookie")[0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    home = await editor.get("/console/")
    headers = home.headers
    assert headers["X-Frame-Options"] == "DENY"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    html = await home.text()
    assert "<script" not in html and "style=" not in html


async def test_session_idle_and_absolute_expiry_and_logout(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    assert (await editor.get("/console/")).status == 200
    async with db.transaction() as session:
        await session.execute(
            update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=31))
        )
    assert (await editor.get("/console/")).status == 303
    await editor.login()
    async with db.transaction() as session:
        await session.execute(
            update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await editor.get("/console/")).status == 303
    await editor.login()
    assert (await editor.post("/console/logout")).status == 303
    assert (await editor.get("/console/")).status == 303


async def test_lockout_after_repeated_failures(signed_in: Any) -> None:
    other = Staff((await signed_in("")).client, "reviewer2")
    for _ in range(5):
        response = await other.login("wrong password!")
        assert response.status == 401
        assert "锁定" in await response.text()
    response = await other.login()
    assert response.status == 401


async def test_hostile_sign_in_input_is_a_4xx(signed_in: Any) -> None:
    probe = (await signed_in("")).client
    page = await probe.get("/console/login")
    token = csrf_of(await page.text())
    for name, password in (("a\x00b", "x"), ("x" * 5000, "x"), ("editor", "p" * 5000)):
        response = await probe.post(
            "/console/login",
            data={"_csrf": token, "name": name, "password": password},
            allow_redirects=False,
        )
        assert 400 <= response.status < 500, (name[:10], response.status)


async def test_login_rate_limit_per_address(signed_in: Any) -> None:
    probe = Staff((await signed_in("")).client, "nobody")
    statuses = [(await probe.login("whatever-password")).status for _ in range(12)]
    assert statuses[:9] == [401] * 9
    assert statuses[-1] == 429


async def test_password_change(signed_in: Any) -> None:
    editor = await signed_in("editor")
    wrong = await editor.post(
        "/console/password",
        {"current": "not it at all", "new": "a brand new secret", "again": "a brand new secret"},
    )
    assert wrong.status == 400
    weak = await editor.post(
        "/console/password",
        {"current": "correct horse battery staple", "new": "short", "again": "short"},
    )
    assert weak.status == 400
    done = await editor.post(
        "/console/password",
        {
            "current": "correct horse battery staple",
            "new": "a brand new secret",
            "again": "a brand new secret",
        },
    )
    assert done.status == 303
    assert (await editor.get("/console/")).status == 200  # the new session cookie works
    fresh = Staff((await signed_in("")).client, "editor")
    assert (await fresh.login()).status == 401
    assert (await fresh.login("a brand new secret")).status == 303


@pytest.mark.parametrize(
    "path",
    [
        "/console/publications/99999999",
        "/console/publications/abc",
        "/console/publications/1/diff?from=x&to=y",
        "/console/calendar?month=9999-99",
        "/console/publications?state=<x>&q=%00",
        "/console/audit?q=%27%3B--",
        "/console/audit?q=%00&before=%C2%B2",
        "/console/publications?before=%C2%B2",
        "/console/cases?department=%00",
    ],
)
async def test_malformed_urls_are_never_a_500(signed_in: Any, path: str) -> None:
    admin = await signed_in("admin")
    response = await admin.get(path)
    assert response.status < 500, (path, response.status)
