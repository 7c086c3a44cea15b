"""A benchmark channel: no work at all, or a fixed latency per call (a platform that
takes N ms to answer). Benchmarks only; production code has no such channel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from channels.base import DeliveryContext, Receipt, Rendition
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot


class BenchChannel:
    """Answers every call after ``latency`` seconds; remembers what it posted."""

    name: ClassVar[str] = "bench"
    title: ClassVar[str] = "Bench"
    supports_retract: ClassVar[bool] = True
    supports_update: ClassVar[bool] = True
    supports_push: ClassVar[bool] = True

    def __init__(self, accounts: Sequence[str], latency: float = 0.0) -> None:
        self._accounts = tuple(accounts)
        self.latency = latency
        self.posted: dict[tuple[int, str], str] = {}

    def accounts(self) -> Sequence[str]:
        return self._accounts

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        return ()

    def render(self, publication: PublicationSnapshot, account: str) -> Rendition:
        return Rendition(
            channel=self.name, account=account, publication_id=publication.id, preview_html=""
        )

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        await self._wait()
        remote_id = f"bench-{ctx.publication_id}-{ctx.account}"
        self.posted[(ctx.publication_id, ctx.account)] = remote_id
        return Receipt(remote_id=remote_id, remote_url=f"https://bench.invalid/{remote_id}")

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        remote_id = self.posted.get((ctx.publication_id, ctx.account))
        return Receipt(remote_id=remote_id) if remote_id else None

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        await self._wait()
        return Receipt(remote_id=ctx.remote_id or "")

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        await self._wait()
        return Receipt(remote_id=ctx.remote_id or "")

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        await self._wait()
        return Receipt(remote_id=f"push-{ctx.idempotency_key}")
