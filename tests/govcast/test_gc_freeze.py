"""A started application's start-up heap is left out of full garbage-collection passes."""

from __future__ import annotations

import gc
from pathlib import Path

from aiohttp import web

from govcast.app import create_app
from govcast.server import freeze_heap_on_start
from tests.conftest import make_settings


async def test_starting_the_application_freezes_its_heap(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url), {"web"})
    freeze_heap_on_start(app)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    runner = web.AppRunner(app, handle_signals=False)
    try:
        await runner.setup()  # start-up: the cleanup contexts, then the freeze
        # Everything alive after start-up (the app's own objects among them) is frozen.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_freeze_count() >= len(gc.get_objects(generation=2))
    finally:
        await runner.cleanup()
        gc.unfreeze()  # the test process is not a server: let its heap be collected again
