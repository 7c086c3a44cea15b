"""The audit log records who did what, and the database refuses to rewrite it."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from publisher import audit
from publisher.db import Database
from publisher.models import AuditEntry


async def test_audit_log_is_append_only(db: Database) -> None:
    actor = audit.Actor(label="wang", origin="10.0.0.8")
    async with db.transaction() as session:
        audit.record(session, actor, "publication.create", "publication", 7, title="通知")
    async with db.sessions() as session:
        entry = (await session.execute(select(AuditEntry))).scalar_one()
    assert (entry.actor, entry.origin, entry.action, entry.object_id) == (
        "wang",
        "10.0.0.8",
        "publication.create",
        "7",
    )
    assert entry.detail == {"title": "通知"}
    for statement in (
        update(AuditEntry).values(actor="someone else"),
        delete(AuditEntry),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(statement)
    async with db.sessions() as session:
        again = (await session.execute(select(AuditEntry))).scalar_one()
    assert again.actor == "wang"


async def test_read_sessions_see_committed_rows(db: Database) -> None:
    async with db.transaction() as session:
        audit.record(session, audit.CLI, "x.y", "thing", 1)
    async with db.read_sessions() as session:
        assert (await session.execute(select(AuditEntry))).scalar_one().action == "x.y"
    if db.is_sqlite:
        # A read-only session refuses to write rather than silently taking the lock.
        with pytest.raises(DBAPIError, match="readonly"):
            async with db.read_sessions() as session, session.begin():
                audit.record(session, audit.CLI, "x.z", "thing", 2)
