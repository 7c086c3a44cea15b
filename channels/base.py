"""The channel protocol: one adapter per outbound channel, an explicit registry.

An adapter declares its capabilities as class attributes and implements:

- ``render(publication, account)`` — pure: the channel-specific rendition, within the
  channel's limits; also what the console shows as a preview;
- ``publish(rendition, ctx)`` — I/O only: returns a :class:`Receipt` or raises a typed
  error (:class:`TransientError`, :class:`PermanentError`, :class:`ConfigurationError`);
- ``find(publication, ctx)`` — reconciliation after a crash: the receipt of the effect if
  it is already there, else None;
- ``retract(publication, ctx)`` — withdraw what ``publish`` made;
- ``update(rendition, ctx)`` — apply a correction;
- ``push(rendition, ctx)`` — push to followers (channels with ``supports_push``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from publisher.outcomes import (
    ConfigurationError,
    DeliveryContext,
    DeliveryError,
    PermanentError,
    Receipt,
    TransientError,
    WaitForWindow,
)
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot

__all__ = [
    "Channel",
    "ChannelRegistry",
    "ConfigurationError",
    "DeliveryContext",
    "DeliveryError",
    "PermanentError",
    "PublicationSnapshot",
    "RateLimit",
    "Receipt",
    "Rendition",
    "TransientError",
    "WaitForWindow",
]


@dataclass(frozen=True)
class Rendition:
    """A publication as one channel account will show it."""

    channel: str
    account: str
    publication_id: int
    # A self-contained HTML fragment of what followers will see, for previews.
    preview_html: str
    # Problems found while rendering that staff should know (cut titles, dropped images).
    notes: tuple[str, ...] = ()


@runtime_checkable
class Channel(Protocol):
    """What every outbound channel adapter provides."""

    name: ClassVar[str]
    title: ClassVar[str]
    supports_retract: ClassVar[bool]
    supports_update: ClassVar[bool]
    supports_push: ClassVar[bool]

    def accounts(self) -> Sequence[str]:
        """The configured account keys of this channel."""
        ...

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        """Limits the queue must respect for this account when it claims work."""
        ...

    def render(self, publication: PublicationSnapshot, account: str) -> Rendition:
        """Pure: the channel-specific rendition of one publication for one account."""
        ...

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Make the rendition public; raise a typed error on failure."""
        ...

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        """Whether the effect of ``ctx.action`` is already there (after a crash)."""
        ...

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        """Withdraw what was published on this account."""
        ...

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Replace what was published with a corrected version."""
        ...

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Push to followers (only where ``supports_push``)."""
        ...


class ChannelRegistry(Mapping[str, Channel]):
    """The channels of one deployment, registered explicitly by name (no import scanning)."""

    def __init__(self, channels: Sequence[Channel] = ()) -> None:
        self._channels: dict[str, Channel] = {}
        for channel in channels:
            self.register(channel)

    def register(self, channel: Channel) -> None:
        """Add a channel; a second channel with the same name is a programming error."""
        if not isinstance(channel, Channel):
            raise TypeError(f"{channel!r} does not implement the channel protocol")
        if channel.name in self._channels:
            raise ValueError(f"channel {channel.name!r} registered twice")
        self._channels[channel.name] = channel

    def __getitem__(self, name: str) -> Channel:
        return self._channels[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def targets(self) -> list[str]:
        """Every channel target: "website", "wechat:main", ..."""
        result = []
        for name, channel in self._channels.items():
            accounts = channel.accounts()
            if name == "website":
                result.append(name)
            else:
                result.extend(f"{name}:{account}" for account in accounts)
        return result

    def rate_limits(self) -> dict[tuple[str, str], Sequence[RateLimit]]:
        """Every account's limits, keyed as the queue's claim expects."""
        return {
            (name, account): channel.rate_limits_for(account)
            for name, channel in self._channels.items()
            for account in channel.accounts()
        }
