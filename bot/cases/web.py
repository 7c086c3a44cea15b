"""HTTP routes of the bot.cases package."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add this package's routes and resources to the application."""
