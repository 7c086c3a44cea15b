"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
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


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_inbound_reply_updates_stay_on_their_page(database_url: str) -> None:
    """bot_0004: a claimed row updated with its reply is a HOT update (no index written)."""
    engine = create_async_engine(database_url)
    # The size of a keyword reply (the bench's: 276 bytes).
    reply = "<xml>" + "医保缴费请登录市医保局网站或拨打12345咨询。" * 4 + "</xml>"
    async with engine.connect() as conn:
        options = (
            await conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE relname = 'bot_inbound'"
            )
        ).scalar_one()
        assert options == ["fillfactor=20"]
        await conn.commit()
        for batch in range(8):
            # As the callback does: a batch of claims, then each reply written on its row
            # (one transaction here, so that its own statistics can be read back).
            async with conn.begin():
                await conn.exec_driver_sql(
                    "INSERT INTO bot_inbound (account, dedup_key, openid, msg_type,"
                    " received_ts, state) SELECT 'main', 'm' || $1::int || '-' || g,"
                    " 'o_' || g, 'text', 1700000000 + g, 'handling'"
                    " FROM generate_series(1, 50) AS g",
                    (batch,),
                )
                await conn.exec_driver_sql(
                    "UPDATE bot_inbound SET state = 'done', reply = $1 WHERE dedup_key LIKE $2",
                    (reply, f"m{batch}-%"),
                )
                counts = (
                    await conn.exec_driver_sql(
                        "SELECT pg_stat_get_xact_tuples_updated('bot_inbound'::regclass),"
                        " pg_stat_get_xact_tuples_hot_updated('bot_inbound'::regclass)"
                    )
                ).one()
            # The backend's counts since it last flushed its statistics: these batches'.
            updated, hot = counts
    await engine.dispose()
    assert updated == 400
    # Packed full (the default fillfactor), most of these updates left their page.
    assert hot >= 0.95 * updated
