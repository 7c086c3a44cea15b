"""deliveries: indexes that keep the claim's sequencing check a cheap probe

Revision ID: 0003_core
Revises: 0002_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_core"
down_revision: str | Sequence[str] | None = "0002_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNSETTLED = "state IN ('pending', 'sending', 'confirming')"


def upgrade() -> None:
    # The rate-limit index becomes partial (sent rows): as a full index the planner
    # sometimes chose it for the sequencing probe, returning an account's whole queue for
    # every candidate row (a claim took seconds at a few thousand pending rows).
    op.drop_index("ix_deliveries_account_sent", table_name="deliveries")
    op.create_index(
        "ix_deliveries_account_sent",
        "deliveries",
        ["channel", "account", "sent_at"],
        postgresql_where=sa.text("sent_at IS NOT NULL"),
        sqlite_where=sa.text("sent_at IS NOT NULL"),
    )
    # Without it the claim's anti-join ("an earlier unsettled row on this target?") fell
    # back to scanning the queue per candidate row whenever statistics were missing.
    op.create_index(
        "ix_deliveries_unsettled_target",
        "deliveries",
        ["publication_id", "channel", "account", "id"],
        postgresql_where=sa.text(_UNSETTLED),
        sqlite_where=sa.text(_UNSETTLED),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_unsettled_target", table_name="deliveries")
    op.drop_index("ix_deliveries_account_sent", table_name="deliveries")
    op.create_index(
        "ix_deliveries_account_sent", "deliveries", ["channel", "account", "sent_at"]
    )
