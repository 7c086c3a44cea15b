"""Hit counts per item without personal data and without a database write per view.

Views are counted in memory (publication id -> count; no address, cookie or agent is
looked at) and added to ``website_hits`` in one batch by a tick and at shutdown.
"""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from publisher.db import Database
from publisher.orm import utcnow
from website.models import HitCount

log = logging.getLogger("govcast.website")


class HitCounter:
    """In-memory counts awaiting a flush."""

    def __init__(self, max_pending: int = 100_000) -> None:
        self.pending: Counter[int] = Counter()
        # Bound memory: beyond this many distinct items, further new items are dropped
        # until the next flush (a count may be low, never the server down).
        self.max_pending = max_pending

    def hit(self, publication_id: int) -> None:
        """Count one view."""
        if publication_id in self.pending or len(self.pending) < self.max_pending:
            self.pending[publication_id] += 1

    async def flush(self, db: Database) -> int:
        """Add the pending counts to the table in one transaction; returns items written."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, Counter()
        now = utcnow()
        builder = pg_insert if db.is_postgresql else sqlite_insert
        try:
            async with db.transaction() as session:
                for publication_id, count in sorted(batch.items()):
                    stmt = builder(HitCount).values(
                        publication_id=publication_id, hits=count, updated_at=now
                    )
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["publication_id"],
                        set_={"hits": HitCount.hits + count, "updated_at": now},
                    )
                    await session.execute(stmt)
        except Exception:
            # Keep the counts for the next try rather than lose them.
            self.pending.update(batch)
            log.exception("hit count flush failed", extra={"items": len(batch)})
            raise
        return len(batch)

    async def total(self, db: Database, publication_id: int) -> int:
        """Stored plus pending views of one item."""
        async with db.sessions() as session:
            stored = (
                await session.execute(
                    select(HitCount.hits).where(HitCount.publication_id == publication_id)
                )
            ).scalar_one_or_none()
        return int(stored or 0) + self.pending.get(publication_id, 0)
