"""Running the application: one web process, several sharing a port, or headless
worker/scheduler processes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
from collections.abc import Iterable

from aiohttp import web

from govcast import migrate
from govcast.app import create_app
from govcast.settings import Settings

log = logging.getLogger("govcast.server")


def upgrade_schema(settings: Settings) -> None:
    """Apply migrations (done automatically by ``serve``)."""
    migrate.upgrade(settings.database_url)


def run_web(settings: Settings, *, roles: Iterable[str], processes: int) -> int:
    """Serve HTTP; with several processes, each binds the port with SO_REUSEPORT."""
    roles = frozenset(roles)
    if processes == 1:
        _serve_one(settings, roles, reuse_port=False)
        return 0
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_serve_one, args=(settings, roles, True), daemon=False)
        for _ in range(processes)
    ]
    for child in children:
        child.start()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.is_alive() and child.pid:
                import os

                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return max((child.exitcode or 0) for child in children)


def _serve_one(settings: Settings, roles: frozenset[str], reuse_port: bool) -> None:
    from govcast import logs

    logs.configure(settings)
    app = create_app(settings, roles)
    log.info(
        "govcast listening",
        extra={
            "host": settings.server.host,
            "port": settings.server.port,
            "roles": ",".join(sorted(roles)),
        },
    )
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        reuse_port=reuse_port or None,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        print=None,
        access_log=None,
        handle_signals=True,
    )


def run_headless(settings: Settings, *, roles: Iterable[str]) -> int:
    """Run the worker and/or scheduler without an HTTP listener until SIGTERM/SIGINT."""

    async def main() -> None:
        app = create_app(settings, roles)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()  # runs the cleanup contexts: database, channels, worker ...
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("govcast running", extra={"roles": ",".join(sorted(roles))})
        await stop.wait()
        log.info("govcast stopping")
        await runner.cleanup()

    asyncio.run(main())
    sys.stdout.flush()
    return 0
