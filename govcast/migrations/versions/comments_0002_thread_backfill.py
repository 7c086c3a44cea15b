"""comments: a Weibo thread's unfinished backwards read of a burst of comments

``comment_threads.backfill`` holds "<newest id of the burst>:<oldest id read so far>" while
more new comments arrived between two polls than one poll reads; the next poll resumes
below the oldest id, and the thread's cursor moves to the newest id only once the gap is
closed. NULL: no gap open.

Revision ID: comments_0002
Revises: comments_0001
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "comments_0002"
down_revision: str | Sequence[str] | None = "comments_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("comment_threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backfill", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("comment_threads", schema=None) as batch_op:
        batch_op.drop_column("backfill")
