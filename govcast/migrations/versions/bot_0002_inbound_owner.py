"""bot: who is handling a claimed push, so that a retry can tell a dead claimant

``bot_inbound.owner`` names the process handling a push while its state is ``handling``.
On PostgreSQL it is a unique process name: the process holds the session advisory lock
``(LOCK_CLASS, hashtext(owner))`` on a connection it keeps, and the server releases the lock
the moment that process dies, which is what a retry tests. On SQLite (one machine) it is
``<host>:<pid>``. NULL (rows claimed before this revision): treated as alive.

Revision ID: bot_0002
Revises: bot_0001
Create Date: 2026-12-01 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bot_0002"
down_revision: str | Sequence[str] | None = "bot_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot_inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bot_inbound", schema=None) as batch_op:
        batch_op.drop_column("owner")
