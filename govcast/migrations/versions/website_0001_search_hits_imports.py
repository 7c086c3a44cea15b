"""website: search index, hit counters, import checkpoints

Revision ID: website_0001
Revises:
Create Date: 2026-11-28 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import publisher.orm

revision: str = "website_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("website",)
depends_on: str | Sequence[str] | None = "0001_core"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "website_search_docs",
        sa.Column("publication_id", BigId, nullable=False),
        sa.Column("rank_key", sa.BigInteger(), nullable=False),
        sa.Column("index_number", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("column_key", sa.String(length=64), nullable=True),
        sa.Column("genre", sa.String(length=50), nullable=True),
        sa.Column("published_at", publisher.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "tsv", postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["publications.id"],
            name=op.f("fk_website_search_docs_publication_id_publications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("publication_id", name=op.f("pk_website_search_docs")),
        sa.UniqueConstraint("rank_key", name=op.f("uq_website_search_docs_rank_key")),
    )
    op.create_index(
        "ix_website_search_docs_category_rank",
        "website_search_docs",
        ["category", "rank_key"],
    )
    op.create_index(
        "ix_website_search_docs_year_rank", "website_search_docs", ["year", "rank_key"]
    )
    for name, column in (("kind", "kind"), ("column", "column_key"), ("genre", "genre")):
        op.create_index(
            f"ix_website_search_docs_{name}_rank", "website_search_docs", [column, "rank_key"]
        )
    if is_pg:
        op.create_index(
            "ix_website_search_docs_tsv",
            "website_search_docs",
            ["tsv"],
            postgresql_using="gin",
        )
    else:
        # Pre-tokenized bigram text; rowid = rank_key. `facets` holds filter tokens
        # (c_<category>, y_<year>) so filters narrow inside the full-text index itself.
        op.execute(
            "CREATE VIRTUAL TABLE website_search_fts USING fts5("
            "title, body, facets, tokenize = 'unicode61 remove_diacritics 0')"
        )
    op.create_table(
        "website_hits",
        sa.Column("publication_id", BigId, nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", publisher.orm.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["publications.id"],
            name=op.f("fk_website_hits_publication_id_publications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("publication_id", name=op.f("pk_website_hits")),
    )
    op.create_table(
        "website_import_checkpoints",
        sa.Column("id", BigId, nullable=False),
        sa.Column("file_key", sa.String(length=200), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("updated_at", publisher.orm.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_website_import_checkpoints")),
        sa.UniqueConstraint("file_key", name=op.f("uq_website_import_checkpoints_file_key")),
    )


def downgrade() -> None:
    op.drop_table("website_import_checkpoints")
    op.drop_table("website_hits")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS website_search_fts")
    op.drop_index("ix_website_search_docs_year_rank", table_name="website_search_docs")
    op.drop_index("ix_website_search_docs_category_rank", table_name="website_search_docs")
    op.drop_table("website_search_docs")
