"""bot: a deferred push keeps its message, so that another process can finish it;
an interrupted late reply names its process

A push whose handler overran the reply budget is answered ``success`` and handled on in
the claimant's memory; killed there, it was lost. ``bot_inbound.message`` now keeps the
parsed push (JSON) from the moment it is deferred, the state moves on to ``late_done``
when its late reply is recorded, and a tick re-handles ``deferred`` rows whose owner is
dead. The partial index keeps that tick's scan to the few deferred rows.

``bot_deferred_replies.owner`` names the process whose send is in flight (state
``sending``): on PostgreSQL an attempt whose process died is taken over as soon as its
liveness lock is free, instead of after the 60 s lease (past WeChat's one-minute window
for replies after a menu click or a follow).

Revision ID: bot_0003
Revises: bot_0002
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bot_0003"
down_revision: str | Sequence[str] | None = "bot_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEFERRED = sa.text("state = 'deferred'")


def upgrade() -> None:
    with op.batch_alter_table("bot_inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message", sa.Text(), nullable=True))
    with op.batch_alter_table("bot_deferred_replies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=80), nullable=True))
    op.create_index(
        "ix_bot_inbound_deferred",
        "bot_inbound",
        ["received_ts"],
        postgresql_where=_DEFERRED,
        sqlite_where=_DEFERRED,
    )


def downgrade() -> None:
    op.drop_index("ix_bot_inbound_deferred", table_name="bot_inbound")
    with op.batch_alter_table("bot_deferred_replies", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("bot_inbound", schema=None) as batch_op:
        batch_op.drop_column("message")
