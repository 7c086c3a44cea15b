"""token cache and wechat submissions

Revision ID: channels_0001
Revises:
Create Date: 2026-11-28 02:34:08.251565
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import publisher.orm

revision: str = "channels_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("channels",)
depends_on: str | Sequence[str] | None = "0001_core"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, publisher.orm.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "channel_tokens",
        sa.Column("id", _ID, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        _ts("expires_at", True),
        _ts("refresh_after", True),
        _ts("fetched_at", True),
        _ts("refreshing_until", True),
        sa.Column("refreshing_owner", sa.String(length=64), nullable=True),
        sa.Column("fetch_day", sa.String(length=10), nullable=False),
        sa.Column("fetches", sa.Integer(), nullable=False),
        sa.Column("forced", sa.Integer(), nullable=False),
        _ts("last_forced_at", True),
        sa.Column("total_fetches", sa.Integer(), nullable=False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_tokens")),
        sa.UniqueConstraint("platform", "app_id", name=op.f("uq_channel_tokens_platform_app_id")),
    )
    op.create_table(
        "wechat_uploads",
        sa.Column("id", _ID, nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("remote", sa.Text(), nullable=False),
        _ts("created_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_uploads")),
        sa.UniqueConstraint(
            "app_id", "sha256", "kind", name=op.f("uq_wechat_uploads_app_id_sha256_kind")
        ),
    )
    op.create_table(
        "wechat_submissions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("publication_id", _ID, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.String(length=128), nullable=False),
        sa.Column("publish_id", sa.String(length=64), nullable=True),
        sa.Column("msg_data_id", sa.String(length=64), nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["publications.id"],
            name=op.f("fk_wechat_submissions_publication_id_publications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_submissions")),
        sa.UniqueConstraint(
            "publication_id",
            "account",
            "revision",
            name=op.f("uq_wechat_submissions_publication_id_account_revision"),
        ),
    )
    with op.batch_alter_table("wechat_submissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wechat_submissions_publication_id"), ["publication_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_wechat_submissions_publish_id"), ["publish_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("wechat_submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wechat_submissions_publish_id"))
        batch_op.drop_index(batch_op.f("ix_wechat_submissions_publication_id"))
    op.drop_table("wechat_submissions")
    op.drop_table("wechat_uploads")
    op.drop_table("channel_tokens")
