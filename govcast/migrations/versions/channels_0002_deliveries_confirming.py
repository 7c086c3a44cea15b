"""deliveries may be confirming (WeChat's asynchronous publish)

The core table's CHECK constraint was generated before the ``confirming`` state existed;
the WeChat channel's pending receipts need it.

Revision ID: channels_0002
Revises: channels_0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "channels_0002"
down_revision: str | Sequence[str] | None = "channels_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0001_core"

_STATES = ("pending", "sending", "confirming", "done", "dead", "cancelled")
_OLD = ("pending", "sending", "done", "dead", "cancelled")


def _replace(states: Sequence[str]) -> None:
    values = ", ".join(f"'{s}'" for s in states)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_deliveries_state_valid"), type_="check")
        batch_op.create_check_constraint(op.f("ck_deliveries_state_valid"), f"state IN ({values})")


def upgrade() -> None:
    _replace(_STATES)


def downgrade() -> None:
    _replace(_OLD)
