"""bot: a deferred push is kept until its late reply is recorded, so that another process
can finish it; an interrupted late reply names its process

A push whose handler overran the reply budget is answered ``success`` and handled on in
the claimant's memory; killed there, it was lost. ``bot_deferred_pushes`` now keeps the
parsed push (JSON) and its owner from the moment it is deferred until its late reply is
recorded (the row is deleted in that transaction), and a tick re-handles the rows whose
owner is dead. A table of its own, not columns of ``bot_inbound``: every message updates
that table once, and an index over its state would make each of those updates touch
every index (no HOT update).

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


def upgrade() -> None:
    op.create_table(
        "bot_deferred_pushes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account", "dedup_key"),
    )
    op.create_index(
        "ix_bot_deferred_pushes_received_ts", "bot_deferred_pushes", ["received_ts"]
    )
    with op.batch_alter_table("bot_deferred_replies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bot_deferred_replies", schema=None) as batch_op:
        batch_op.drop_column("owner")
    op.drop_index("ix_bot_deferred_pushes_received_ts", table_name="bot_deferred_pushes")
    op.drop_table("bot_deferred_pushes")
