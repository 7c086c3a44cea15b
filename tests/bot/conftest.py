"""Fixtures of the bot's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.service import BotService
from govcast.settings import Settings
from publisher.db import Database


@pytest.fixture
async def bot_service() -> AsyncIterator[Callable[..., BotService]]:
    """Make BotServices that are closed after the test (each keeps connections open)."""
    made: list[BotService] = []

    def make(settings: Settings, db: Database, **kwargs: Any) -> BotService:
        service = BotService(settings, db, **kwargs)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close()
