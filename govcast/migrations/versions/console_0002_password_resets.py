"""console: admin password resets (the holder must choose a new password)

Revision ID: console_0002
Revises: console_0001
Create Date: 2026-12-01 21:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import publisher.orm

revision: str = 'console_0002'
down_revision: str | Sequence[str] | None = 'console_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('console_password_resets',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reset_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reset_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_password_resets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_console_password_resets'))
    )


def downgrade() -> None:
    op.drop_table('console_password_resets')
