"""Optional Redis shared by the token cache and the callback dedup (``[redis] url``).

Redis is only ever an accelerator in govcast: every caller keeps its database path, and
a Redis that is down, slow or flushed changes speed, never outcomes. :meth:`SharedRedis.attempt`
runs one operation under a hard time budget and turns every failure into :data:`DOWN`;
after a failure Redis is skipped for ``retry_after_seconds`` (a circuit breaker), so an
outage costs one warning and no waiting on each request. The URL may hold a password:
messages show it masked.

A leaf module (it imports only settings and the standard library; ``redis`` itself is
imported lazily), so channels and bot may use it. One client per application, created
and closed in the app's cleanup context (``govcast.keys.REDIS``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from govcast.settings import RedisSettings, SettingsError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("govcast.redis")

T = TypeVar("T")


class Down(enum.Enum):
    """The one value of :data:`DOWN`."""

    DOWN = "down"


# What :meth:`SharedRedis.attempt` returns when Redis could not answer: use the database.
DOWN = Down.DOWN


def mask_url(url: str) -> str:
    """The URL as it may be logged: scheme, host, port and database only (pure)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "redis://(malformed)"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    user = "****@" if parts.username or parts.password else ""
    database = parts.path.strip("/") or "0"
    return f"{parts.scheme}://{user}{host}:{port or 6379}/{database}"


async def run_script(client: Redis, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
    """EVAL a Lua script (redis-py types ``eval`` as a sync/async union; this is async)."""
    return await cast(Awaitable[Any], client.eval(source, len(keys), *keys, *args))


class SharedRedis:
    """One Redis client with key prefixing, a time budget and a circuit breaker."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        where: str,
        timeout: float = 0.5,
        retry_after: float = 5.0,
        password: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.where = where
        self.timeout = timeout
        self.retry_after = retry_after
        self._password = password
        self._clock = clock
        self._skip_until = 0.0
        self._down = False

    def key(self, *parts: str) -> str:
        """The full key of ``parts`` under this deployment's prefix."""
        return self.prefix + ":".join(parts)

    @property
    def available(self) -> bool:
        """False while the circuit breaker sends everything to the database."""
        return self._clock() >= self._skip_until

    async def attempt(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T | Down:
        """Run one operation; DOWN (never an exception) if Redis cannot answer in time."""
        if not self.available:
            return DOWN
        try:
            # Connect and read timeouts are set on the client too; this bounds the whole
            # operation (several round trips, a pool wait) so a request's budget survives.
            async with asyncio.timeout(self.timeout * 2):
                result = await operation(self.client)
        except Exception as exc:  # any Redis problem means: use the database
            self._failed(what, exc)
            return DOWN
        if self._down:
            self._down = False
            log.info("redis reachable again", extra={"redis": self.where, "operation": what})
        return result

    def _failed(self, what: str, exc: Exception) -> None:
        self._skip_until = self._clock() + self.retry_after
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if self._password:
            reason = reason.replace(self._password, "****")
        extra = {"redis": self.where, "operation": what, "reason": reason}
        if not self._down:
            self._down = True
            log.warning("redis unavailable; using the database", extra=extra)
        else:
            log.debug("redis still unavailable", extra=extra)

    async def close(self) -> None:
        """Close the client and its connections."""
        try:
            await self.client.aclose()
        except Exception as exc:  # closing a broken connection must not stop shutdown
            log.debug(
                "redis close failed", extra={"redis": self.where, "reason": type(exc).__name__}
            )


def connect(settings: RedisSettings) -> SharedRedis:
    """A client for ``[redis] url`` (no connection is made until the first command)."""
    url = settings.url.reveal()
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise SettingsError(
            "redis.url",
            "is set but the redis package is not installed (pip install 'govcast[redis]')",
        ) from None
    try:
        client = Redis.from_url(
            url,
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
            # No retries with back-off (redis-py's default sleeps up to seconds): a failed
            # command goes to the database at once, and the breaker keeps it there a while.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
    except (ValueError, TypeError):
        # redis-py's message may quote the URL, password and all: say only which key.
        raise SettingsError("redis.url", "is not a URL the redis client accepts") from None
    where = mask_url(url)
    log.info("redis configured", extra={"redis": where})
    return SharedRedis(
        client,
        prefix=settings.key_prefix,
        where=where,
        timeout=settings.timeout_seconds,
        retry_after=settings.retry_after_seconds,
        password=_password(url),
    )


def _password(url: str) -> str:
    # redis://user:PASSWORD@host, or unix:///path?password=PASSWORD
    parts = urlsplit(url)
    found = parse_qs(parts.query).get("password")
    return parts.password or (found[0] if found else "")


__all__ = ["DOWN", "Down", "SharedRedis", "connect", "mask_url", "run_script"]
