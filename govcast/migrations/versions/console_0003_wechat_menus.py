"""console: the WeChat custom menu as edited in the console

Revision ID: console_0003
Revises: console_0002
Create Date: 2026-12-01 21:16:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import publisher.orm

revision: str = 'console_0003'
down_revision: str | Sequence[str] | None = 'console_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('console_wechat_menus',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('button', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('pushed_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('push_result', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('account', name=op.f('pk_console_wechat_menus'))
    )


def downgrade() -> None:
    op.drop_table('console_wechat_menus')
