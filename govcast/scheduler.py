"""APScheduler (3.x) wiring: periodic ticks that only enqueue or reconcile.

Ticks are safe on several nodes at once: the queue's claims and idempotent enqueues, not
the tick, decide who does the work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from publisher import workflow
from publisher.db import Database

log = logging.getLogger("govcast.scheduler")

TickFn = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Tick:
    """One periodic job."""

    name: str
    seconds: float
    run: TickFn


def core_ticks(db: Database, tick_seconds: float) -> list[Tick]:
    """The publication core's ticks."""

    async def release_due() -> int:
        async with db.transaction() as session:
            return await workflow.release_due(session)

    return [Tick("release_due_publications", tick_seconds, release_due)]


def start(ticks: list[Tick]) -> AsyncIOScheduler:
    """Start a scheduler running each tick at its interval, one run at a time per tick."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for tick in ticks:
        scheduler.add_job(
            _guarded(tick),
            "interval",
            seconds=tick.seconds,
            id=tick.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(tick.seconds)),
        )
    scheduler.start()
    return scheduler


def _guarded(tick: Tick) -> TickFn:
    async def run() -> None:
        try:
            result = await tick.run()
            if result:
                log.info("tick", extra={"tick": tick.name, "result": str(result)})
        except Exception:
            log.exception("tick failed", extra={"tick": tick.name})

    return run
