"""The real Redis at 127.0.0.1:6379 for the optional-Redis tests: every test gets its own
random key prefix and deletes its keys afterwards, so tests (and people) sharing the
server never see each other's keys. "Flushing" a test's Redis deletes every key under its
prefix: for our code the same as FLUSHALL or a restart without persistence (the keys are
gone), without wiping anyone else's data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import event

from govcast import rediscache
from govcast.settings import RedisSettings, Secret
from publisher.db import Database

REDIS_URL = os.environ.get("GOVCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_URL = "redis://:hunter2-not-a-real-password@127.0.0.1:1/0"


def redis_settings(prefix: str, url: str = REDIS_URL, **extra: Any) -> RedisSettings:
    """[redis] settings for one test's prefix."""
    return RedisSettings(url=Secret(url), key_prefix=prefix, **extra)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix; its keys are deleted after the test."""
    prefix = f"govcast-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    await flush(prefix)


@pytest.fixture
async def raw_redis() -> AsyncIterator[Redis]:
    """A plain client to look at and tamper with what the code stored."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def flush(prefix: str) -> int:
    """Delete every key under ``prefix`` (this test's FLUSHALL); the number deleted."""
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        return int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def shared(
    prefix: str, url: str = REDIS_URL, **extra: Any
) -> AsyncIterator[rediscache.SharedRedis]:
    """A SharedRedis as the application makes it (one per simulated process)."""
    # A generous budget: the machine is shared, and a test asserting what Redis holds must
    # not see a loaded moment turn into the (tested elsewhere) fallback.
    extra.setdefault("timeout_seconds", 5.0)
    client = rediscache.connect(redis_settings(prefix, url, **extra))
    try:
        yield client
    finally:
        await client.close()


class StatementCounter:
    """Counts the SQL statements a database handle sends (optionally matching a word)."""

    def __init__(self, db: Database, word: str = "") -> None:
        self.statements: list[str] = []
        self.word = word.lower()
        self._engines = {id(e): e for e in (db.engine, db.read_engine)}.values()
        for engine in self._engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.word in statement.lower():
            self.statements.append(statement)

    @property
    def count(self) -> int:
        """Statements seen so far."""
        return len(self.statements)

    def close(self) -> None:
        """Stop counting."""
        for engine in self._engines:
            event.remove(engine.sync_engine, "before_cursor_execute", self._seen)


class SilentServer:
    """A TCP server that accepts connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        """Start listening on a free loopback port; the redis:// URL to use."""

        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._writers.append(writer)

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def messages(records: list[Any], where: Callable[[Any], bool] = lambda r: True) -> str:
    """Every log record's message and extra fields as one text (to search for secrets)."""
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in records if where(r))
