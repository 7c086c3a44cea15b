"""bot: bot_inbound costs each push less: reply updates stay on their page (HOT), keyed by
(account, dedup_key) alone, no index that no query reads

Every push is inserted into ``bot_inbound`` when claimed and updated once with its reply;
whatever the table carries, every push pays for.
- Packed full by the inserts, a page had no room left for the updated row: 80 % of the
  updates (callback bench: 2,067 HOT of 10,466) moved the row to another page and so
  wrote a new entry into every index. With ``fillfactor = 20`` the inserts leave room on
  each page for their rows' replies (an inserted row is ~150 bytes, the row with a keyword
  reply ~420): the update is written beside the row, no index is touched, and the old
  version is pruned in place, so the page ends up as full as before.
- The surrogate ``id`` (a sequence and an index) is read by nothing: (account, dedup_key),
  the dedup key every statement uses, becomes the primary key and its unique constraint
  goes.
- ``ix_bot_inbound_window`` (account, openid, received_ts) is read by no query (a late
  reply's customer-service window is judged from its own message's time, kept in
  ``bot_deferred_replies``).
- ``received_ts`` only serves the hourly retention purge, a range over an append-only
  column: on PostgreSQL a BRIN index (a few pages, nothing to do per insert) instead of a
  b-tree.

Revision ID: bot_0004
Revises: bot_0003
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bot_0004"
down_revision: str | Sequence[str] | None = "bot_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("bot_inbound", recreate="auto") as batch_op:
        batch_op.drop_index("ix_bot_inbound_window")
        batch_op.drop_index("ix_bot_inbound_received_ts")
        batch_op.drop_constraint("pk_bot_inbound", type_="primary")
        batch_op.drop_constraint("uq_bot_inbound_account_dedup_key", type_="unique")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_bot_inbound", ["account", "dedup_key"])
    op.create_index(
        "ix_bot_inbound_received_ts",
        "bot_inbound",
        ["received_ts"],
        postgresql_using="brin",
    )
    if postgresql:
        # Applies to pages filled from now on; existing pages are left as they are.
        op.execute("ALTER TABLE bot_inbound SET (fillfactor = 20)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE bot_inbound RESET (fillfactor)")
    op.drop_index("ix_bot_inbound_received_ts", table_name="bot_inbound")
    with op.batch_alter_table("bot_inbound", recreate="always") as batch_op:
        batch_op.drop_constraint("pk_bot_inbound", type_="primary")
        batch_op.add_column(
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                sa.Identity(),
                nullable=False,
            )
        )
        batch_op.create_primary_key("pk_bot_inbound", ["id"])
        batch_op.create_unique_constraint(
            "uq_bot_inbound_account_dedup_key", ["account", "dedup_key"]
        )
        batch_op.create_index("ix_bot_inbound_received_ts", ["received_ts"], unique=False)
        batch_op.create_index(
            "ix_bot_inbound_window", ["account", "openid", "received_ts"], unique=False
        )
