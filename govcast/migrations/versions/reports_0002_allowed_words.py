"""reports: exceptions to the banned and sensitive words ("最佳实践" allowed, "最佳" banned)

Revision ID: reports_0002
Revises: reports_0001
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "reports_0002"
down_revision: str | Sequence[str] | None = "reports_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "kind IN ('banned', 'sensitive', 'typo', 'leader', 'severity')"
NEW = "kind IN ('banned', 'sensitive', 'allowed', 'typo', 'leader', 'severity')"


def upgrade() -> None:
    with op.batch_alter_table("reports_check_entries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_reports_check_entries_kind_valid"), type_="check")
        batch_op.create_check_constraint(op.f("ck_reports_check_entries_kind_valid"), NEW)


def downgrade() -> None:
    op.execute("DELETE FROM reports_check_entries WHERE kind = 'allowed'")
    with op.batch_alter_table("reports_check_entries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_reports_check_entries_kind_valid"), type_="check")
        batch_op.create_check_constraint(op.f("ck_reports_check_entries_kind_valid"), OLD)
