"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from govcast import migrate
from govcast.schema import include_object, metadata


async def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_async_engine(database_url)

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": False, "include_object": include_object}
        )
        return compare_metadata(context, metadata)

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
        heads = set(
            (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalars()
        )
    await engine.dispose()
    assert differences == []
    # Every branch is at its head: upgrading again applies nothing.
    await asyncio.to_thread(migrate.upgrade, database_url)
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        after = set(
            (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalars()
        )
    await engine.dispose()
    assert after == heads
    assert heads <= migrate.current_heads(database_url)
