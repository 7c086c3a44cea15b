"""website: filter lexemes in the PostgreSQL search tsvector (title marks, month/year, category)

A trigger adds position-less lexemes to every ``website_search_docs.tsv``: ``~<token>`` for
each token of the title and catalog fields, ``@y<year>`` / ``@m<yyyymm>`` for the
publication month (UTC) and ``#<category>``. The tokenizer never produces ``~``, ``@`` or
``#``, so these cannot collide with searched words. They let the GIN index answer "newest
matches of this month", "title matches" and category filters exactly, without rechecking
(detoasting) the tsvector of every match; see ``website/search.py``. The trigger (rather
than the writers) adds them so that every writer of the table, bulk loaders included, stays
consistent. SQLite is untouched (FTS5 does not need them).

Revision ID: website_0002
Revises: website_0001
Create Date: 2026-11-28 13:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "website_0002"
down_revision: str | Sequence[str] | None = "website_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Idempotent: existing filter lexemes are removed before the current ones are added.
GRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION website_search_grams(doc tsvector, published timestamptz,
                                                category text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ts_delete(doc, ARRAY(SELECT u.lexeme FROM unnest(doc) AS u
                              WHERE left(u.lexeme, 1) IN ('~', '@', '#')))
    || array_to_tsvector(ARRAY(
      SELECT '~' || u.lexeme FROM unnest(doc) AS u
      WHERE left(u.lexeme, 1) NOT IN ('~', '@', '#') AND 'A' = ANY(u.weights)
      UNION
      SELECT '@y' || extract(year FROM published AT TIME ZONE 'UTC')::int
      UNION
      SELECT '@m' || (extract(year FROM published AT TIME ZONE 'UTC')::int * 100
                      + extract(month FROM published AT TIME ZONE 'UTC')::int)
      UNION
      SELECT '#' || category
    ))
$$
"""

TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION website_search_docs_grams() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.tsv IS NOT NULL THEN
    NEW.tsv := website_search_grams(NEW.tsv, NEW.published_at, NEW.category);
  END IF;
  RETURN NEW;
END
$$
"""

TRIGGER = """
CREATE TRIGGER website_search_docs_grams
BEFORE INSERT OR UPDATE OF tsv, published_at, category ON website_search_docs
FOR EACH ROW EXECUTE FUNCTION website_search_docs_grams()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(GRAMS_FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRIGGER)
    # Backfill without maintaining the GIN index row by row: rebuilding it once is faster.
    op.execute("DROP INDEX IF EXISTS ix_website_search_docs_tsv")
    op.execute("UPDATE website_search_docs SET tsv = tsv WHERE tsv IS NOT NULL")
    op.execute("CREATE INDEX ix_website_search_docs_tsv ON website_search_docs USING gin (tsv)")
    # The search reads lexeme frequencies from the statistics to estimate large counts.
    op.execute("ANALYZE website_search_docs")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS website_search_docs_grams ON website_search_docs")
    op.execute("DROP FUNCTION IF EXISTS website_search_docs_grams()")
    op.execute(
        "UPDATE website_search_docs SET tsv = ts_delete(tsv, ARRAY(SELECT u.lexeme"
        " FROM unnest(tsv) AS u WHERE left(u.lexeme, 1) IN ('~', '@', '#')))"
        " WHERE tsv IS NOT NULL"
    )
    op.execute("DROP FUNCTION IF EXISTS website_search_grams(tsvector, timestamptz, text)")
