"""reports: editable check lists

Revision ID: reports_0001
Revises:
Create Date: 2026-11-28 02:38:28.071825
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import publisher.orm

revision: str = "reports_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("reports",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    op.create_table(
        "reports_check_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("term", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", publisher.orm.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('banned', 'sensitive', 'typo', 'leader', 'severity')",
            name=op.f("ck_reports_check_entries_kind_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports_check_entries")),
        sa.UniqueConstraint(
            "kind", "term", "value", name=op.f("uq_reports_check_entries_kind_term_value")
        ),
    )


def downgrade() -> None:
    op.drop_table("reports_check_entries")
