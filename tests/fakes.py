"""A fake channel for queue tests: records calls, fails on demand, can die mid-call.

Lives under tests/ only; production code contains no fake channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from channels.base import DeliveryContext, Receipt, Rendition
from publisher.outcomes import DeliveryError
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot


class SimulatedCrash(BaseException):
    """The worker process dies: nothing after this point runs (not an Exception)."""


@dataclass
class FakeRemote:
    """What the fake platform holds: one post per (publication, account)."""

    posts: dict[tuple[int, str], str] = field(default_factory=dict)
    retracted: set[tuple[int, str]] = field(default_factory=set)
    calls: list[tuple[str, int, str]] = field(default_factory=list)
    duplicates: int = 0


class FakeChannel:
    """A channel whose behaviour each test scripts."""

    name: ClassVar[str] = "fake"
    title: ClassVar[str] = "Fake"
    supports_retract: ClassVar[bool] = True
    supports_update: ClassVar[bool] = True
    supports_push: ClassVar[bool] = True

    def __init__(
        self,
        name: str = "fake",
        accounts: Sequence[str] = ("main",),
        latency: float = 0.0,
        limits: Sequence[RateLimit] = (),
    ) -> None:
        self.name = name  # type: ignore[misc]
        self._accounts = tuple(accounts)
        self.latency = latency
        self.limits = tuple(limits)
        self.remote = FakeRemote()
        # Errors to raise on the next calls, in order (None = succeed).
        self.script: list[DeliveryError | None] = []
        self.crash_after_effect = 0  # die this many times right after the effect
        self.call_times: list[float] = []

    def accounts(self) -> Sequence[str]:
        return self._accounts

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        return self.limits

    def render(self, publication: PublicationSnapshot, account: str) -> Rendition:
        return Rendition(
            channel=self.name,
            account=account,
            publication_id=publication.id,
            preview_html=f"<p>{publication.title}</p>",
        )

    async def _call(self, action: str, ctx: DeliveryContext) -> None:
        self.remote.calls.append((action, ctx.publication_id, ctx.account))
        self.call_times.append(asyncio.get_running_loop().time())
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        await self._call("publish", ctx)
        key = (ctx.publication_id, ctx.account)
        if key in self.remote.posts:
            self.remote.duplicates += 1
        remote_id = f"{self.name}-{ctx.publication_id}-{ctx.account}"
        self.remote.posts[key] = remote_id
        if self.crash_after_effect:
            self.crash_after_effect -= 1
            raise SimulatedCrash()
        return Receipt(remote_id=remote_id, remote_url=f"https://fake.example/{remote_id}")

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        self.remote.calls.append(("find", ctx.publication_id, ctx.account))
        remote_id = self.remote.posts.get((ctx.publication_id, ctx.account))
        if remote_id is None or ctx.action != "publish":
            return None
        return Receipt(remote_id=remote_id, remote_url=f"https://fake.example/{remote_id}")

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        await self._call("retract", ctx)
        self.remote.retracted.add((ctx.publication_id, ctx.account))
        self.remote.posts.pop((ctx.publication_id, ctx.account), None)
        return Receipt(remote_id=ctx.remote_id or "")

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        await self._call("update", ctx)
        return Receipt(remote_id=ctx.remote_id or "")

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        await self._call("push", ctx)
        return Receipt(remote_id=f"push-{ctx.idempotency_key}")
