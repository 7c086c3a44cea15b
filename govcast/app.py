"""The aiohttp application factory: one app serves the website, console, API, bot
callback and sandbox; the worker and scheduler run inside it or as separate processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

import aiohttp
from aiohttp import web
from sqlalchemy import text

from channels.base import ChannelRegistry
from govcast import keys, metrics, rediscache, runtime
from govcast import scheduler as ticks
from govcast.settings import Settings

log = logging.getLogger("govcast.app")

ALL_ROLES = frozenset({"web", "worker", "scheduler"})


def create_app(settings: Settings, roles: Iterable[str] = ALL_ROLES) -> web.Application:
    """Build the application for the given process roles (web, worker, scheduler)."""
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.ROLES] = frozenset(roles)
    app[keys.CORE] = runtime.core_config(settings)
    app[keys.MEDIA] = runtime.media_store(settings)
    app[keys.STOP] = asyncio.Event()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_channels)
    if "worker" in app[keys.ROLES]:
        app.cleanup_ctx.append(_worker)
    if "scheduler" in app[keys.ROLES]:
        app.cleanup_ctx.append(_scheduler)
    _add_operations(app)
    if "web" in app[keys.ROLES]:
        _add_web_packages(app, settings)
    return app


def _add_web_packages(app: web.Application, settings: Settings) -> None:
    # Every web package is listed here explicitly; each adds its own routes.
    from bot import web as bot_web
    from bot.cases import web as cases_web
    from bot.comments import web as comments_web
    from console import web as console_web
    from reports import web as reports_web
    from website import web as website_web

    website_web.setup(app)
    bot_web.setup(app)
    cases_web.setup(app)
    console_web.setup(app)
    reports_web.setup(app)
    comments_web.setup(app)  # after the console: it extends the console's templates
    if settings.sandbox.enabled:
        from sandbox import web as sandbox_web

        sandbox_web.setup(app)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    db = runtime.database(settings)
    app[keys.DB] = db
    await runtime.sync_offices(db, settings)
    yield
    await db.dispose()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=30, connect=10)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        app[keys.HTTP] = session
        yield


async def _redis(app: web.Application) -> AsyncIterator[None]:
    # Optional: only with [redis] url. Redis being down at start-up does not stop the
    # process (everything falls back to the database); the first failure logs a warning.
    settings = app[keys.SETTINGS]
    if not settings.redis.url:
        yield
        return
    shared = rediscache.connect(settings.redis)
    app[keys.REDIS] = shared
    yield
    await shared.close()


async def _channels(app: web.Application) -> AsyncIterator[None]:
    app[keys.CHANNELS] = runtime.build_channels(
        app[keys.SETTINGS], app[keys.DB], app[keys.HTTP], redis=app.get(keys.REDIS)
    )
    yield


async def _worker(app: web.Application) -> AsyncIterator[None]:
    registry = app[keys.CHANNELS]
    assert isinstance(registry, ChannelRegistry)
    worker = runtime.build_worker(app[keys.SETTINGS], app[keys.DB], registry, app[keys.MEDIA])
    worker.channels = metrics.instrument_channels(worker.channels)
    app[keys.WORKER] = worker
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="delivery-worker")
    yield
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    if not settings.scheduler.enabled:
        yield
        return
    jobs = ticks.core_ticks(app[keys.DB], settings.scheduler.tick_seconds)
    for extra in _extra_ticks(app):
        jobs.append(extra)
    ticker = ticks.start(jobs)
    yield
    # Before the worker, channels and database are closed (cleanup runs in reverse).
    await ticker.stop(grace=settings.server.shutdown_grace_seconds)


# Modules that may define `ticks(app) -> list[Tick]`, listed explicitly.
TICK_MODULES = (
    "website.web",
    "bot.web",
    "bot.cases.web",
    "bot.comments.web",
    "reports.web",
    "sandbox.web",
    "console.jobs",
)


def _extra_ticks(app: web.Application) -> list[ticks.Tick]:
    # Packages contribute their periodic ticks explicitly through `ticks(app)` functions;
    # channels through a `ticks()` method.
    import importlib

    found: list[ticks.Tick] = []
    for name in TICK_MODULES:
        provide_module = getattr(importlib.import_module(name), "ticks", None)
        if provide_module is not None:
            found.extend(provide_module(app))
    registry = app[keys.CHANNELS]
    for channel in getattr(registry, "values", lambda: [])():
        provide = getattr(channel, "ticks", None)
        if provide is not None:
            found.extend(provide())
    return found


def _add_operations(app: web.Application) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        try:
            async with request.app[keys.DB].engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
        except Exception:  # any failure means not ready; never leak details
            return web.json_response({"status": "unavailable"}, status=503)
        return web.json_response({"status": "ready"})

    async def media(request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        try:
            path = request.app[keys.MEDIA].path_of(sha)
        except ValueError:
            raise web.HTTPNotFound() from None
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(
            path,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "X-Content-Type-Options": "nosniff",
            },
        )

    app.router.add_get("/healthz", healthz)
    metrics.setup(app, keys.DB)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(r"/media/{sha:[0-9a-f]{64}}/{name}", media)
