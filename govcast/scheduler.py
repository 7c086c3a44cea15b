"""APScheduler (3.x) wiring: periodic ticks that only enqueue or reconcile.

Ticks are safe on several nodes at once: the queue's claims and idempotent enqueues, not
the tick, decide who does the work.
"""

from __future__ import annotations

import asyncio
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
    # Releases what the tick made for itself (connections), once the ticks have stopped.
    close: Callable[[], Awaitable[None]] | None = None


def core_ticks(db: Database, tick_seconds: float) -> list[Tick]:
    """The publication core's ticks."""

    async def release_due() -> int:
        async with db.transaction() as session:
            return await workflow.release_due(session)

    return [Tick("release_due_publications", tick_seconds, release_due)]


class Ticker:
    """The running scheduler and the tick runs in flight, so that stopping can wait for them."""

    def __init__(self, scheduler: AsyncIOScheduler, ticks: list[Tick] | None = None) -> None:
        self.scheduler = scheduler
        self.ticks = list(ticks or [])
        self.running: set[asyncio.Task[object]] = set()

    async def stop(self, grace: float) -> None:
        """No new runs; let runs in flight finish within ``grace`` s, then cancel and await.

        APScheduler's own shutdown only cancels asyncio jobs and returns: a cancelled run
        would still be unwinding (rolling back its transaction) while the process closes
        the database under it, which could leave it waiting forever on a closed connection.
        """
        self.scheduler.pause()
        pending = {t for t in self.running if not t.done()}
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=grace)
        self.scheduler.shutdown(wait=False)
        for task in pending:
            task.cancel()
        if pending:
            _done, stuck = await asyncio.wait(pending, timeout=grace)
            if stuck:
                log.error("ticks did not stop", extra={"ticks": len(stuck)})
        for tick in self.ticks:
            if tick.close is not None:
                try:
                    await tick.close()
                except Exception:
                    log.exception("closing a tick failed", extra={"tick": tick.name})


def start(ticks: list[Tick]) -> Ticker:
    """Start a scheduler running each tick at its interval, one run at a time per tick."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    ticker = Ticker(scheduler, ticks)
    for tick in ticks:
        scheduler.add_job(
            _guarded(tick, ticker.running),
            "interval",
            seconds=tick.seconds,
            id=tick.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(tick.seconds)),
        )
    scheduler.start()
    return ticker


def _guarded(tick: Tick, running: set[asyncio.Task[object]]) -> TickFn:
    async def run() -> None:
        task = asyncio.current_task()
        if task is not None:
            running.add(task)
        try:
            result = await tick.run()
            if result:
                log.info("tick", extra={"tick": tick.name, "result": str(result)})
        except Exception:
            log.exception("tick failed", extra={"tick": tick.name})
        finally:
            if task is not None:
                running.discard(task)

    return run
