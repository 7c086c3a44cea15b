"""govcast's web process (the real application, bot included) for the callback benchmark.

Run: python bench/callback/serve_govcast.py PORT   (settings from GOVCAST_* variables)
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp import web

from govcast.app import create_app
from govcast.server import freeze_heap_on_start
from govcast.settings import load_settings


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=logging.WARNING)
    app = create_app(settings, roles={"web"})
    freeze_heap_on_start(app)  # as `govcast web` does
    if os.environ.get("BENCH_WITHOUT_CASES"):
        # Diagnostic only: the bot's own path without the cases router's per-message lookup.
        from bot.service import build_dispatcher
        from bot.web import BOT

        async def strip_cases(app: web.Application) -> None:
            service = app[BOT]
            service.dispatcher = build_dispatcher(service.settings, service.rules, [])

        app.on_startup.append(strip_cases)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
