"""Tables of the website package: the search index, hit counters and import checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base, utcnow

# PostgreSQL keeps the bigram tsvector in the row (GIN-indexed); on SQLite the index is the
# FTS5 virtual table ``website_search_fts`` (created by the migration), so this stays NULL.
TsVector = TSVECTOR().with_variant(Text(), "sqlite")


class SearchDoc(Base):
    """One live website item as the search index knows it (one row per publication).

    Also the website's own denormalized list of live items: the home page's columns and
    the static export's first pages read it newest-first through (filter, rank_key)
    indexes, so their cost does not grow with the catalog."""

    __tablename__ = "website_search_docs"
    __table_args__ = (
        Index("ix_website_search_docs_category_rank", "category", "rank_key"),
        Index("ix_website_search_docs_year_rank", "year", "rank_key"),
        Index("ix_website_search_docs_kind_rank", "kind", "rank_key"),
        Index("ix_website_search_docs_column_rank", "column_key", "rank_key"),
        Index("ix_website_search_docs_genre_rank", "genre", "rank_key"),
        Index(
            "ix_website_search_docs_tsv",
            "tsv",
            postgresql_using="gin",
        ).ddl_if(dialect="postgresql"),
    )

    publication_id: Mapped[int] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), primary_key=True
    )
    # Time-ordered unique key (publication second << 22 | id bits): FTS5 rowid on SQLite and
    # the "newest first" order of candidates on both databases.
    rank_key: Mapped[int] = mapped_column(BigInteger, unique=True)
    index_number: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(24))
    category: Mapped[str] = mapped_column(String(24))
    year: Mapped[int] = mapped_column(Integer)
    column_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    genre: Mapped[str | None] = mapped_column(String(50), nullable=True)
    published_at: Mapped[datetime] = mapped_column()
    # Plain text of metadata and body (capped) for highlighted snippets.
    text: Mapped[str] = mapped_column(Text, default="")
    tsv: Mapped[str | None] = mapped_column(TsVector, nullable=True)


class HitCount(Base):
    """Page views per publication, flushed in batches from an in-memory counter."""

    __tablename__ = "website_hits"

    publication_id: Mapped[int] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), primary_key=True
    )
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportCheckpoint(Base):
    """The last line of a bulk-import file that was handled, so a rerun resumes there."""

    __tablename__ = "website_import_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Absolute path of the file plus its first line's hash: a different file at the same
    # path starts afresh.
    file_key: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(String(1000))
    line: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
