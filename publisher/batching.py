"""Group commit: concurrent callers share one database round trip.

While one batch is in flight the next accumulates, so under load N callers cost one
transaction rather than N, and when idle a lone caller waits for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Batches concurrent calls to ``run``; each caller gets its own result back."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 200) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Add one item to the next batch and wait for its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def settle(self, grace: float) -> None:
        """Wait (up to ``grace`` s) for the batch in flight, before its database closes."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            await asyncio.wait({flusher}, timeout=grace)

    async def _flush(self) -> None:
        try:
            # Yield once so that callers already scheduled in this loop turn join the batch.
            await asyncio.sleep(0)
            while self._pending:
                size = self._max_batch
                batch, self._pending = self._pending[:size], self._pending[size:]
                try:
                    results = await self._run([item for item, _ in batch])
                except BaseException as exc:
                    # Every caller of a failed batch sees the failure and decides itself
                    # (the worker, for one, falls back to recording its row alone).
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._flushing = False
