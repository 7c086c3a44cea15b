"""A conformance kit every channel adapter must pass, reusable from any test suite.

Each check raises :class:`ConformanceError` with a readable reason. The round trip runs
against whatever the adapter talks to (the website's own table, the sandbox, or the real
platform), so it also serves as a smoke test of a deployment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from channels.base import Channel, DeliveryContext, Receipt, Rendition
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot

# Limits the kit knows per channel: attribute -> maximum length in characters.
KNOWN_LIMITS: dict[str, dict[str, int]] = {
    "wechat": {"title": 32, "author": 16, "digest": 128, "content": 20_000},
    "weibo": {"status": 140, "correction_status": 140},
}


class ConformanceError(AssertionError):
    """An adapter breaks the channel protocol."""


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise ConformanceError(reason)


def check_attributes(channel: Any) -> None:
    """Class attributes, methods and accounts of the protocol, with the right types."""
    _require(isinstance(channel, Channel), f"{channel!r} does not implement Channel")
    _require(isinstance(channel.name, str) and channel.name.isidentifier(), "name")
    _require(isinstance(channel.title, str) and bool(channel.title), "title")
    for flag in ("supports_retract", "supports_update", "supports_push"):
        _require(isinstance(getattr(channel, flag), bool), f"{flag} must be a bool")
    for method in ("publish", "find", "retract", "update", "push"):
        _require(inspect.iscoroutinefunction(getattr(channel, method)), f"{method} must be async")
    _require(not inspect.iscoroutinefunction(channel.render), "render must be synchronous (pure)")
    accounts = list(channel.accounts())
    _require(bool(accounts), "a registered channel has at least one account")
    _require(len(set(accounts)) == len(accounts), "account keys are unique")
    for account in accounts:
        limits = channel.rate_limits_for(account)
        for limit in limits:
            _require(isinstance(limit, RateLimit), f"{account}: rate limits are RateLimit")
            _require(limit.count > 0 and limit.per_seconds > 0, f"{account}: positive limits")


def check_render(
    channel: Any,
    publication: PublicationSnapshot,
    account: str,
    extra: Callable[[Rendition], None] | None = None,
) -> Rendition:
    """Render is pure: deterministic, a Rendition for this account, within known limits."""
    first: Rendition = channel.render(publication, account)
    second = channel.render(publication, account)
    _require(isinstance(first, Rendition), "render returns a Rendition")
    _require(first == second, "render is deterministic")
    _require(first.channel == channel.name, "rendition.channel is the channel's name")
    _require(first.account == account, "rendition.account is the account rendered for")
    _require(first.publication_id == publication.id, "rendition.publication_id")
    _require(isinstance(first.preview_html, str) and bool(first.preview_html), "preview_html")
    _require("<script" not in first.preview_html.lower(), "preview_html has no script")
    _require(all(isinstance(n, str) for n in first.notes), "notes are text")
    _require(dataclasses.is_dataclass(first), "renditions are frozen dataclasses")
    for attribute, limit in KNOWN_LIMITS.get(channel.name, {}).items():
        value = getattr(first, attribute, None)
        if isinstance(value, str):
            _require(len(value) <= limit, f"{attribute} is {len(value)} > {limit} characters")
    if extra is not None:
        extra(first)
    return first


def context(
    publication: PublicationSnapshot,
    account: str,
    action: str,
    *,
    delivery_id: int,
    attempt: int = 1,
    remote: Receipt | None = None,
) -> DeliveryContext:
    """A delivery context as the worker would build it."""
    return DeliveryContext(
        delivery_id=delivery_id,
        publication_id=publication.id,
        account=account,
        action=action,
        attempt=attempt,
        idempotency_key=f"govcast-{publication.id}-{delivery_id}",
        remote_id=remote.remote_id if remote else None,
        remote_receipt=dict(remote.detail) if remote else {},
    )


async def settled(
    channel: Any,
    publication: PublicationSnapshot,
    ctx: DeliveryContext,
    receipt: Receipt,
    wait_seconds: float = 30.0,
) -> Receipt:
    """Wait, through ``find``, until a pending receipt's effect is final."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while receipt.pending:
        _require(asyncio.get_running_loop().time() < deadline, "publish never settled")
        await asyncio.sleep(0.2)
        found = await channel.find(publication, dataclasses.replace(ctx, attempt=ctx.attempt + 1))
        if found is not None:
            receipt = found
    return receipt


async def check_round_trip(
    channel: Any,
    publication: PublicationSnapshot,
    account: str,
    *,
    delivery_id: int = 1,
    settle_timeout: float = 30.0,
) -> Receipt:
    """find is None before publish; publish; find sees it; retract; find sees it gone."""
    publish_ctx = context(publication, account, "publish", delivery_id=delivery_id)
    before = await channel.find(publication, publish_ctx)
    _require(before is None, f"find returned {before!r} before anything was published")
    rendition = channel.render(publication, account)
    receipt = await channel.publish(rendition, publish_ctx)
    _require(isinstance(receipt, Receipt), "publish returns a Receipt")
    _require(bool(receipt.remote_id), "the receipt names the remote id")
    receipt = await settled(channel, publication, publish_ctx, receipt, settle_timeout)
    found = await channel.find(publication, dataclasses.replace(publish_ctx, attempt=2))
    _require(found is not None and not found.pending, "find sees the published effect")
    if channel.supports_retract:
        retract_ctx = context(
            publication, account, "retract", delivery_id=delivery_id + 1, remote=receipt
        )
        gone = await channel.retract(publication, retract_ctx)
        _require(isinstance(gone, Receipt), "retract returns a Receipt")
        again = await channel.retract(publication, retract_ctx)
        _require(isinstance(again, Receipt), "a repeated retract is harmless")
        after = await channel.find(publication, dataclasses.replace(publish_ctx, attempt=3))
        _require(after is None, "find still sees the effect after retract")
    return receipt


__all__ = [
    "KNOWN_LIMITS",
    "ConformanceError",
    "check_attributes",
    "check_render",
    "check_round_trip",
    "context",
    "settled",
]
