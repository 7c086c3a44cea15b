"""The ticker: runs each tick, waits for runs in flight on stop, then closes the ticks."""

from __future__ import annotations

import asyncio

from govcast import scheduler
from govcast.scheduler import Tick


async def test_stop_waits_for_the_run_in_flight_then_closes_each_tick() -> None:
    events: list[str] = []
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await asyncio.sleep(0.2)
        events.append("run finished")
        return 1

    async def close() -> None:
        events.append("closed")

    async def broken_close() -> None:
        raise RuntimeError("cannot close")

    ticker = scheduler.start(
        [Tick("slow", 0.05, slow, close), Tick("other", 3600, slow, broken_close)]
    )
    await asyncio.wait_for(started.wait(), 10)
    await ticker.stop(grace=5)
    # The run finished before anything it uses was closed; a failing close stops nothing.
    assert events[0] == "run finished" and events[-1] == "closed"
    assert events.count("closed") == 1
