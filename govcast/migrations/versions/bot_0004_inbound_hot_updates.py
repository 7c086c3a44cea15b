"""bot: bot_inbound's reply update stays on the row's page (HOT); an unused index dropped

Every push is inserted into ``bot_inbound`` when claimed and updated once with its reply.
Packed full by the inserts, a page had no room left for the updated row: 80 % of the
updates (measured in the callback bench: 2,067 HOT of 10,466) moved the row to another
page and so wrote a new entry into every index. With ``fillfactor = 20`` the inserts
leave room on each page for their rows' replies (an inserted row is ~150 bytes, the row
with a keyword reply ~420), so the update is written beside the row, no index is touched,
and the old version is pruned in place: the page ends up as full as before.

``ix_bot_inbound_window`` (account, openid, received_ts) is read by no query (a late
reply's customer-service window is judged from its own message's time, kept in
``bot_deferred_replies``); each push paid for it.

PostgreSQL only for the storage parameter (SQLite has no such thing).

Revision ID: bot_0004
Revises: bot_0003
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "bot_0004"
down_revision: str | Sequence[str] | None = "bot_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot_inbound") as batch_op:
        batch_op.drop_index("ix_bot_inbound_window")
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages filled from now on; existing pages are left as they are.
        op.execute("ALTER TABLE bot_inbound SET (fillfactor = 20)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE bot_inbound RESET (fillfactor)")
    with op.batch_alter_table("bot_inbound") as batch_op:
        batch_op.create_index(
            "ix_bot_inbound_window", ["account", "openid", "received_ts"], unique=False
        )
