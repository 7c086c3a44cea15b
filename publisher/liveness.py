"""Proof that a lease holder is alive, for PostgreSQL: a session advisory lock.

A lease alone cannot tell a dead worker from a slow one. A worker whose event loop is
busy rendering a batch, or whose heartbeat waits on a loaded database, lets its leases
run out while its calls are still in flight; a second worker that then reclaims those
rows calls the platform again, and an asynchronous platform (WeChat's ``freepublish``)
cannot yet show the first call to ``find``: the article is posted twice.

So on PostgreSQL each lease holder also holds the advisory lock ``(LOCK_CLASS,
hashtext(owner))`` on a connection it keeps open. The server drops the lock the moment
the process dies (its connection closes), and the claim takes over an expired lease only
when it can take that lock itself (``owner_gone``). A slow holder keeps its rows; a dead
one loses them as before. SQLite serves one machine, where leases alone stay the rule.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from publisher.db import Database

log = logging.getLogger("govcast.queue")

# The advisory-lock key space of lease holders ("gvcw"), apart from the other advisory
# locks of the application (which use the one-argument form).
LOCK_CLASS = 0x67766377

_TAKE = "SELECT pg_try_advisory_lock($1, hashtext($2))"


def owner_gone(owner: Any) -> ColumnElement[bool]:
    """SQL: true when no live session holds ``owner``'s lock (PostgreSQL only).

    The shared, transaction-scoped try-lock conflicts only with the holder's exclusive
    session lock, so it succeeds exactly when the holder is gone, and is released by
    the claim's own commit. A NULL owner gives NULL (not gone).
    """
    return func.pg_try_advisory_xact_lock_shared(LOCK_CLASS, func.hashtext(owner))


class Liveness:
    """One lease holder's lock, on a connection kept for the holder's lifetime."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        # Many requests may find the lock missing at once: one of them takes it.
        self._taking = asyncio.Lock()

    @property
    def held(self) -> bool:
        """Whether the lock is held on an open connection (always True on SQLite)."""
        if not self.db.is_postgresql:
            return True
        return self._driver is not None and not self._driver.is_closed()

    async def ensure(self) -> bool:
        """Hold the lock, reconnecting after the server dropped the connection."""
        if self.held:
            return True
        async with self._taking:
            if self.held:
                return True
            return await self._take()

    async def _take(self) -> bool:
        await self.close()
        try:
            conn = await self.db.engine.connect()
        except Exception:
            log.warning("liveness: cannot connect", extra={"worker": self.owner})
            return False
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            # Straight to the driver: no transaction is opened, so the session lock is
            # all this connection holds.
            taken = bool(await driver.fetchval(_TAKE, LOCK_CLASS, self.owner))
        except Exception:
            log.warning("liveness: cannot take the lock", extra={"worker": self.owner})
            await conn.invalidate()
            await conn.close()
            return False
        if not taken:
            # Another live process hashes to the same key: leases alone protect our rows.
            log.error("liveness: lock held by another process", extra={"worker": self.owner})
            await conn.close()
            return False
        self._conn, self._driver = conn, driver
        return True

    async def close(self) -> None:
        """Let the lock go (with the connection: the pool must not inherit a session lock)."""
        conn, self._conn, self._driver = self._conn, None, None
        if conn is None:
            return
        try:
            await conn.invalidate()
        finally:
            await conn.close()
