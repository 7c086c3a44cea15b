"""HTTP routes of the console package: the staff console at /console/ and the JSON API at
/api/v1/, each a sub-application with its own middleware (sessions, CSRF, headers)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from console import admin, api, cases, jobs, menu, pages
from console.keys import JINJA
from console.security import (
    CONSOLE_CSP,
    CURRENT,
    PREVIEW_CSP,
    SESSION_COOKIE,
    Handler,
    is_public,
    load_current,
    origin_ok,
    same,
)
from govcast import keys
from publisher.errors import NotFound, PermissionDenied, ValidationError, WorkflowError
from publisher.models import Role

log = logging.getLogger("govcast.console")
HERE = Path(__file__).resolve().parent
# (method, path, handler) of every console page, for the route-table tests.
CONSOLE_ROUTES = web.AppKey("console_routes", tuple)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable while a reset password waits to be changed.
OPEN_PATHS = frozenset({"/console/password", "/console/logout", "/console/lang", "/console/login"})


def setup(app: web.Application) -> None:
    """Add this package's routes and resources to the application.

    The pages are plain routes under /console/ (not a sub-application), so that other
    packages' pages under /console/ (reports) stay reachable; each page handler is wrapped
    with the console's guard (session, CSRF, headers, error pages).
    """
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        app_key=JINJA,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["Role"] = Role
    env.globals["static"] = pages.static_url
    table = []
    for definitions in (pages.routes, cases.routes, admin.routes, menu.routes, jobs.routes):
        for definition in definitions:
            assert isinstance(definition, web.RouteDef)
            path = "/console" + definition.path
            route = app.router.add_route(definition.method, path, guard(definition.handler))
            assert route.resource is not None
            table.append((definition.method, route.resource.canonical, definition.handler))
    app[CONSOLE_ROUTES] = tuple(table)
    app.cleanup_ctx.append(jobs.jobs_ctx)
    app.router.add_get("/console", _to_console)
    app.router.add_static(
        "/console/static/", HERE / "static", name="console_static", append_version=True
    )
    app.add_subapp("/api/v1/", api.build_api())


async def _to_console(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


def guard(handler: Any) -> Handler:
    """Wrap a console page handler with the console's checks and headers."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        return await console_middleware(request, handler)

    # functools.wraps also carries ``required_roles``/``public`` over, so the route table
    # can be checked from the router itself (tests/console/test_security.py).
    return guarded


def _headers(response: web.StreamResponse, preview: bool = False) -> None:
    response.headers["Content-Security-Policy"] = PREVIEW_CSP if preview else CONSOLE_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN" if preview else "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"


async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session, check CSRF on every state change, add security headers, and turn
    core refusals into clear pages."""
    preview = request.path.endswith("/frame")
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as exc:
        if exc.status == 401:
            redirect = web.HTTPSeeOther(f"/console/login?next={_next_of(request)}")
            _headers(redirect)
            raise redirect from None
        if exc.status < 400:
            _headers(exc)
            raise
        response = _error_page(request, exc.status, exc.reason, exc.text or "")
        for name in ("Retry-After", "Allow"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
    except PermissionDenied as exc:
        response = _error_page(request, 403, "Forbidden", str(exc))
    except NotFound as exc:
        response = _error_page(request, 404, "Not Found", str(exc))
    except (ValidationError, WorkflowError) as exc:
        response = _error_page(request, 400, "Bad Request", str(exc))
    except Exception:  # never show a traceback; log it with the request path
        log.exception("console error", extra={"path": request.path})
        response = _error_page(request, 500, "Internal Server Error", "")
    _headers(response, preview=preview)
    return response


def _next_of(request: web.Request) -> str:
    from urllib.parse import quote

    path = request.path_qs if request.method == "GET" else "/console/"
    return quote(path, safe="")


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    db = request.config_dict[keys.DB]
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        async with db.transaction() as session:
            request[CURRENT] = await load_current(session, token)
    else:
        request[CURRENT] = None
    target = handler
    if request.method not in SAFE_METHODS and not is_public(target):
        current = request[CURRENT]
        if current is None:
            raise web.HTTPUnauthorized()
        if not origin_ok(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        form = await request.post()
        sent = form.get("_csrf")
        if not isinstance(sent, str) or not same(sent, current.csrf_token):
            raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page")
    elif request[CURRENT] is None and not is_public(target):
        raise web.HTTPUnauthorized()
    current = request[CURRENT]
    if current is not None and current.must_change_password and request.path not in OPEN_PATHS:
        if request.method in SAFE_METHODS:
            await pages.flash(
                request,
                "error",
                "管理员已重置您的密码：请先设置新密码。",
                "An administrator reset your password: choose a new one first.",
            )
            raise web.HTTPSeeOther("/console/password")
        raise web.HTTPForbidden(text="choose a new password first (/console/password)")
    return await handler(request)


def _error_page(request: web.Request, status: int, reason: str, detail: str) -> web.Response:
    env = request.config_dict.get(JINJA)
    current = request.get(CURRENT)
    lang = current.lang if current else "zh"
    if env is None:
        return web.Response(status=status, text=f"{status} {reason}")
    html = env.get_template("error.html").render(
        status=status,
        reason=reason,
        detail=detail,
        current=current,
        t=pages.translator(lang),
        lang=lang,
        flashes=[],
        csrf=current.csrf_token if current else "",
        request_path=request.path,
        static=pages.static_url,
    )
    return web.Response(status=status, text=html, content_type="text/html")
