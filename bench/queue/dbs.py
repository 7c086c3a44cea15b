"""Scratch databases for benchmarks: a dedicated PostgreSQL database per run (created and
dropped here, never the tests' databases) or a SQLite file in a temporary folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from govcast import migrate

PG_ADMIN_URL = os.environ.get("GOVCAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    """The URL of database ``name`` on the admin server."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', driver + '://', 1)}/{name}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_database(kind: str, label: str = "bench", migrated: bool = True) -> Iterator[str]:
    """Yield the URL of a fresh (migrated) database of ``kind``; drop it afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"govcast-{label}-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'govcast.sqlite3'}"
            if migrated:
                migrate.upgrade(url)
            yield url
        return
    name = f"govcast_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        if migrated:
            migrate.upgrade(pg_url(name))
        yield pg_url(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
