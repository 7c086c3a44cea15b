"""``govcast sandbox serve``: the WeChat and Weibo stand-ins on their own."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from govcast import keys, runtime
from govcast.settings import Settings


def register(subparsers: Any) -> None:
    """Add the ``sandbox`` command group."""
    parser = subparsers.add_parser("sandbox", help="the local WeChat and Weibo stand-ins")
    sub = parser.add_subparsers(dest="sandbox_command", required=True)
    serve = sub.add_parser("serve", help="serve only the sandbox (default port: server.port)")
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=_port, help="listen port (default: server.port)")
    serve.set_defaults(handler=serve_command)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return port


def create_sandbox_app(settings: Settings) -> web.Application:
    """An application with only the sandbox (and its database)."""
    from sandbox import web as sandbox_web

    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[keys.SETTINGS] = settings

    async def database(app: web.Application) -> AsyncIterator[None]:
        db = runtime.database(settings)
        app[keys.DB] = db
        yield
        await db.dispose()

    app.cleanup_ctx.append(database)
    sandbox_web.setup(app)
    return app


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the sandbox alone until interrupted."""
    from govcast import migrate

    server = dataclasses.replace(
        settings.server,
        host=args.host or settings.server.host,
        port=settings.server.port if args.port is None else args.port,
    )
    # WeChat still pushes to the bot on the main server, not to this port.
    origin = settings.sandbox.callback_base_url or (
        f"http://{settings.server.host}:{settings.server.port}"
    )
    sandbox = dataclasses.replace(settings.sandbox, callback_base_url=origin)
    settings = dataclasses.replace(settings, server=server, sandbox=sandbox)
    if settings.is_sqlite:
        migrate.upgrade(settings.database_url)
    app = create_sandbox_app(settings)
    web.run_app(app, host=server.host, port=server.port, print=None)
    return 0
