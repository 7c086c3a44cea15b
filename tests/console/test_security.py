"""Roles on every route, CSRF, XSS, sessions, cookies, lock-out and rate limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from console.api import API_LIMITS, ApiLimits
from console.models import ConsoleSession
from console.web import CONSOLE_ROUTES
from govcast.app import create_app
from govcast.settings import SettingsError
from publisher.models import AuditEntry, Publication, Role
from publisher.orm import utcnow
from tests.conftest import PASSWORD, make_settings
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


# Pages that declare no roles on their handler (reports/web.py wraps its own): any staff
# member reads them, only approvers and admins change the check lists (reports EDITORS).
# A new undeclared route elsewhere fails the test below until it declares its roles.
UNDECLARED_PREFIXES = ("/console/reports/", "/console/inspect")
UNDECLARED_ROLES = {"GET": frozenset(), "POST": frozenset({Role.APPROVER})}


def console_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every page under /console/ in the application's
    router: the console's own, the comments inbox's and the reports' (static files aside)."""
    table = []
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/console/"):
            table.append((route.method, path, route.handler))
    # The console's own table is a part of it.
    ours = {(method, path) for method, path, _ in app[CONSOLE_ROUTES]}
    assert ours <= {(method, path) for method, path, _ in table}
    return table


SAMPLES = {"target": "website", "name": "counts", "year": "2026", "fmt": "html"}


def concrete(path: str, publication_id: int) -> str:
    """The template with sample values (``{id}`` is a real publication's)."""

    def sample(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(publication_id) if name == "id" else SAMPLES.get(name, "1")

    return re.sub(r"\{([a-z_]+)[^}]*\}", sample, path)


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
    paths = {path for _, path, _ in routes}
    # The comments inbox's and the reports' pages are in the table too.
    assert "/console/comments/{id}/reply" in paths
    assert "/console/reports/lists" in paths
    members = {name: await signed_in(name) for name in FIXTURE_ROLES}
    anonymous = (await signed_in("")).client
    refused = 0
    checked = set()
    for method, template, handler in routes:
        public = getattr(handler, "public", False)
        required = getattr(handler, "required_roles", None)
        undeclared = required is None and not public and template.startswith(UNDECLARED_PREFIXES)
        if undeclared:
            required = UNDECLARED_ROLES[method]
        assert public or required is not None, f"{method} {template} declares no roles"
        if public:
            continue
        path = concrete(template, publication_id)
        # Without a session: sent to the sign-in page (a reports POST: 401).
        response = await anonymous.request(method, path, allow_redirects=False)
        if undeclared and method == "POST":
            assert response.status == 401, (method, path, response.status)
        else:
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
        checked.add(template.split("/")[2])
    assert {"comments", "reports", "admin", "publications"} <= checked
    assert refused > 120


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


# --- behind a reverse proxy ---------------------------------------------------------------

PUBLIC_URL = "https://console.example.gov.cn"


@pytest.fixture
async def proxied(
    tmp_path: Path, database_url: str, staff_members: Any
) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    """A factory of test clients on an app with the given settings overrides."""
    clients: list[TestClient] = []

    async def make(limits: ApiLimits | None = None, **overrides: Any) -> TestClient:
        settings = make_settings(tmp_path, database_url, **{"sandbox.enabled": False, **overrides})
        app = create_app(settings, roles={"web"})
        if limits is not None:
            app[API_LIMITS] = limits
        server = TestServer(app)
        await server.start_server()
        # The browser reached us through https (the proxy), so it sends Secure cookies.
        jar = CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
        client = TestClient(server, cookie_jar=jar)
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def _sign_in(client: TestClient, name: str = "editor", **headers: str) -> str:
    """Sign in (through the given headers); returns the session's CSRF token."""
    page = await client.get("/console/login", headers=headers)
    response = await client.post(
        "/console/login",
        data={"_csrf": csrf_of(await page.text()), "name": name, "password": PASSWORD},
        headers=headers,
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    return csrf_of(await (await client.get("/console/", headers=headers)).text())


async def _switch_lang(client: TestClient, csrf: str, **headers: str) -> int:
    response = await client.post(
        "/console/lang",
        data={"_csrf": csrf, "lang": "zh", "next": "/console/"},
        headers=headers,
        allow_redirects=False,
    )
    return response.status


async def test_forms_work_behind_a_tls_terminating_proxy(proxied: Any) -> None:
    # nginx speaks plain HTTP to us; the browser's Origin is the public https address.
    client = await proxied(**{"website.base_url": PUBLIC_URL + "/"})
    csrf = await _sign_in(client)
    assert await _switch_lang(client, csrf, Origin=PUBLIC_URL) == 303
    assert await _switch_lang(client, csrf, Origin=PUBLIC_URL.upper()) == 303
    assert await _switch_lang(client, csrf, Origin="https://evil.example") == 403
    assert await _switch_lang(client, csrf, Origin="http://console.example.gov.cn") == 403
    assert await _switch_lang(client, csrf, Origin="null") == 403
    # X-Forwarded-Proto/-Host from a peer that is not a trusted proxy prove nothing.
    spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    assert await _switch_lang(client, csrf, Origin="https://evil.example", **spoofed) == 403


async def test_trusted_proxy_names_the_public_origin(proxied: Any) -> None:
    client = await proxied(**{"server.trusted_proxies": ["127.0.0.0/8", "::1"]})
    csrf = await _sign_in(client)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.gov.cn"}
    assert await _switch_lang(client, csrf, Origin="https://www.example.gov.cn", **forwarded) == 303
    assert await _switch_lang(client, csrf, Origin="https://evil.example", **forwarded) == 403
    # Reports and comments share the check.
    response = await client.post(
        "/console/reports/lists",
        data={"_csrf": csrf, "kind": "banned", "lines": "x"},
        headers={"Origin": "https://evil.example", **forwarded},
        allow_redirects=False,
    )
    assert response.status == 403


async def _failed_logins(client: TestClient, times: int, **headers: str) -> list[int]:
    page = await client.get("/console/login")
    token = csrf_of(await page.text())
    statuses = []
    for _ in range(times):
        response = await client.post(
            "/console/login",
            data={"_csrf": token, "name": "nobody", "password": "whatever-password"},
            headers=headers,
            allow_redirects=False,
        )
        statuses.append(response.status)
    return statuses


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(proxied: Any) -> None:
    client = await proxied()
    statuses = [
        (await _failed_logins(client, 1, **{"X-Forwarded-For": f"203.0.113.{i}"}))[0]
        for i in range(12)
    ]
    # One counter (the peer's), whatever the header claims.
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


async def test_behind_a_trusted_proxy_limits_count_per_client(proxied: Any, db: Any) -> None:
    client = await proxied(
        ApiLimits(per_token=100, bad_token_per_address=2),
        **{"server.trusted_proxies": ["127.0.0.1", "::1", "10.0.0.0/8"]},
    )
    first = {"X-Forwarded-For": "203.0.113.5"}
    assert (await _failed_logins(client, 11, **first))[-1] == 429
    # Another client behind the same proxy is not affected ...
    assert await _failed_logins(client, 1, **{"X-Forwarded-For": "203.0.113.6"}) == [401]
    # ... and the first cannot escape by writing a made-up address in front of its own
    # (nginx appends the real one; a second proxy hop 10.x is skipped as trusted).
    spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5, 10.1.2.3"}
    assert await _failed_logins(client, 1, **spoofed) == [429]
    # The audit log records the client, not the proxy.
    csrf = await _sign_in(client, "editor", **{"X-Forwarded-For": "203.0.113.77"})
    assert csrf
    async with db.sessions() as session:
        origins = set(
            (
                await session.execute(
                    select(AuditEntry.origin).where(AuditEntry.action == "console.login")
                )
            ).scalars()
        )
    assert "203.0.113.77" in origins
    # Bad API tokens count per client too.
    guesses = []
    for _ in range(3):
        response = await client.get(
            "/api/v1/publications",
            headers={"Authorization": "Bearer nope", "X-Forwarded-For": "203.0.113.8"},
        )
        guesses.append(response.status)
    assert guesses == [401, 401, 429]
    other = await client.get(
        "/api/v1/publications",
        headers={"Authorization": "Bearer nope", "X-Forwarded-For": "203.0.113.9"},
    )
    assert other.status == 401


def test_trusted_proxies_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"server.trusted_proxies\[1\]"):
        make_settings(
            tmp_path, "sqlite+aiosqlite:///x", **{"server.trusted_proxies": ["10.0.0.1", "nginx"]}
        )
