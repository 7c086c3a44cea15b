"""Site search over the disclosure catalog: the one search the website and the bot share.

Why this index (and not jieba, pg_trgm or LIKE):

- Chinese has no spaces. A dictionary segmenter (jieba) misses new words, names and the
  office's abbreviations (社保, 医保, 六政办) unless its dictionary is curated, and it would
  have to run identically in both databases. Character **bigrams** need no dictionary: every
  2-character query is exactly one indexed token, longer queries are a phrase of
  consecutive bigrams, so recall equals a substring search while lookups stay indexed.
- Latin words and digit runs are indexed whole (lower-cased, NFKC so full-width ２０２４ is
  2024). A document number 六政办〔2024〕12号 becomes the phrase ``六政 政办 2024 12 号`` and
  an index number ``11340000MB0000000X/202611-00001`` the phrase of its three parts, so both
  are found by the same phrase machinery, brackets and slashes notwithstanding.
- pg_trgm was rejected: trigram indexes cannot serve 2-character queries (the most common
  Chinese ones), and LIKE '%..%' scans the table.
- SQLite: an FTS5 table of the pre-tokenized text (rowid = a time-ordered key), ranked by
  bm25 with title x10. PostgreSQL: a ``tsvector`` built directly from the same tokens (cast
  from its literal form, bypassing any text-search parser or locale), GIN-indexed, ranked
  by ``ts_rank`` with the title at weight A. One tokenizer in Python feeds both, so both
  databases return the same matches.
- Relevance with recency, at bounded cost: matches are taken newest first up to
  ``CANDIDATES`` (the index walks its time-ordered key and stops), scored as
  relevance x recency decay, then sorted. A very common term therefore costs the same over
  40,000 or 400,000 items; the total is still the exact match count.

The index is written by the website channel in the same transaction as the catalog entry
(:func:`index_document` / :func:`remove_document`): one publish touches one row.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from publisher.db import Database

# Newest matches considered for ranking; older matches still count in the total.
CANDIDATES = 200
# Matches are counted up to here; beyond it the total reads "2000+" (as search engines
# do): an exact count of a common bigram would visit every match.
TOTAL_CAP = 2000
MAX_QUERY_CHARS = 200
MAX_TERMS = 8
MAX_LIMIT = 100
MAX_OFFSET = 10_000
BODY_INDEX_CHARS = 60_000
SNIPPET_TEXT_CHARS = 20_000
PG_MAX_POSITION = 16383

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(f"[{_CJK}]+|[0-9a-z]+")
_CJK_RE = re.compile(f"[{_CJK}]")


@dataclass(frozen=True)
class SearchHit:
    """One result: enough to show a line in a result list or a bot reply."""

    publication_id: int
    title: str
    url: str
    snippet: str
    snippet_html: str
    published_at: datetime
    index_number: str
    category: str
    kind: str
    score: float


@dataclass(frozen=True)
class SearchResults:
    """One page of results and the exact number of matches."""

    query: str
    items: list[SearchHit] = field(default_factory=list)
    total: int = 0
    limit: int = 10
    offset: int = 0
    # False when there are more than TOTAL_CAP matches: ``total`` is then a lower bound.
    total_exact: bool = True


@dataclass(frozen=True)
class IndexInput:
    """What the index needs of one live item."""

    publication_id: int
    index_number: str
    url: str
    title: str
    kind: str
    category: str
    published_at: datetime
    body_text: str
    # Catalog fields searched with the title's weight: document number, issuing body ...
    metadata: Sequence[str] = ()
    column_key: str | None = None
    genre: str | None = None


# --- tokenizer (pure) -----------------------------------------------------------------------


def normalize(value: str) -> str:
    """NFKC and lower case: full-width digits and letters become ASCII."""
    return unicodedata.normalize("NFKC", value).lower()


def tokens(value: str) -> list[str]:
    """Index tokens: CJK runs as overlapping bigrams (a lone character as itself), Latin
    words and digit runs whole."""
    result: list[str] = []
    for match in _TOKEN_RE.finditer(normalize(value)):
        run = match.group()
        if _CJK_RE.match(run):
            if len(run) == 1:
                result.append(run)
            else:
                result.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            result.append(run[:40])
    return result


@dataclass(frozen=True)
class _Phrase:
    """Consecutive tokens; the last one may be a prefix (a lone CJK character)."""

    words: tuple[str, ...]
    prefix: bool = False


def parse_query(query: str) -> list[_Phrase]:
    """Whitespace-separated terms become phrases that must all match."""
    phrases: list[_Phrase] = []
    for term in normalize(query[:MAX_QUERY_CHARS]).split()[:MAX_TERMS]:
        current: list[str] = []
        for match in _TOKEN_RE.finditer(term):
            run = match.group()
            if _CJK_RE.match(run) and len(run) == 1:
                # A lone character matches as the start of a bigram ("12号" finds 12号文).
                phrases.append(_Phrase((*current, run), prefix=True))
                current = []
            elif _CJK_RE.match(run):
                current.extend(run[i : i + 2] for i in range(len(run) - 1))
            else:
                current.append(run[:40])
        if current:
            phrases.append(_Phrase(tuple(current[:32])))
    return phrases


def fts5_query(phrases: Sequence[_Phrase]) -> str:
    """The FTS5 MATCH expression over the title and body columns."""
    parts = []
    for phrase in phrases:
        part = '"' + " ".join(phrase.words) + '"'
        parts.append(part + " *" if phrase.prefix else part)
    # No column filter: a multi-column filter makes FTS5 phrase queries several times
    # slower, and the facets column cannot match (its tokens mix a CJK letter with Latin,
    # which this tokenizer never produces for a query).
    return "(" + " AND ".join(parts) + ")"


def pg_tsquery(phrases: Sequence[_Phrase], weight: str = "") -> str:
    """The tsquery literal (cast, not parsed by a text-search configuration); ``weight``
    "A" restricts it to the title and catalog fields."""
    parts = []
    for phrase in phrases:
        words = [f"'{w}'" + (f":{weight}" if weight else "") for w in phrase.words]
        if phrase.prefix:
            words[-1] = f"'{phrase.words[-1]}':*{weight}"
        parts.append("(" + " <-> ".join(words) + ")")
    return " & ".join(parts)


def pg_tsvector(title_tokens: Sequence[str], body_tokens: Sequence[str]) -> str:
    """The tsvector literal: title tokens weighted A, body tokens D, with positions."""
    positions: dict[str, list[str]] = {}
    pos = 0
    for token in title_tokens:
        pos += 1
        positions.setdefault(token, []).append(f"{min(pos, PG_MAX_POSITION)}A")
    pos += 10  # no phrase spans the title and the body
    for token in body_tokens:
        pos += 1
        if pos > PG_MAX_POSITION:
            # PostgreSQL caps positions; further tokens still match, without phrase order.
            positions.setdefault(token, [])
            continue
        positions.setdefault(token, []).append(str(pos))
    parts = []
    for token, where in positions.items():
        # Keep at most 256 positions per lexeme (PostgreSQL's own limit).
        parts.append(f"'{token}':{','.join(where[:256])}" if where else f"'{token}'")
    return " ".join(parts)


def facet_tokens(category: str, year: int, kind: str) -> str:
    """Filter tokens for the FTS5 facets column (one unicode61 token each)."""
    return f"类{category} 年{year} 种{kind}"


def rank_key(published_at: datetime, publication_id: int) -> int:
    """A unique key that orders items by publication time."""
    return (int(published_at.timestamp()) << 22) | (publication_id & 0x3FFFFF)


def recency(published_at: datetime, now: datetime) -> float:
    """1 for today, 0.5 a year ago, 0.25 three years ago."""
    age_days = max(0.0, (now - published_at).total_seconds() / 86400)
    return 1.0 / (1.0 + age_days / 365.0)


def snippet(body: str, phrases: Sequence[_Phrase], width: int = 90) -> tuple[str, str]:
    """A window of the text around the first hit: plain, and HTML with <mark> highlights."""
    needles = _needles(phrases)
    lowered = normalize(body)
    # NFKC may change lengths; search in the normalized text only when lengths agree.
    haystack = lowered if len(lowered) == len(body) else body.lower()
    first = -1
    for needle in needles:
        at = haystack.find(needle)
        if at >= 0 and (first < 0 or at < first):
            first = at
    start = 0 if first < 0 else max(0, first - width // 3)
    end = min(len(body), start + width)
    plain = ("…" if start > 0 else "") + body[start:end] + ("…" if end < len(body) else "")
    window = haystack[start:end]
    marks: list[tuple[int, int]] = []
    for needle in needles:
        at = window.find(needle)
        while at >= 0 and needle:
            marks.append((at, at + len(needle)))
            at = window.find(needle, at + len(needle))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(marks):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    out, cursor, raw = [], 0, body[start:end]
    for a, b in merged:
        out.append(html.escape(raw[cursor:a]))
        out.append(f"<mark>{html.escape(raw[a:b])}</mark>")
        cursor = b
    out.append(html.escape(raw[cursor:]))
    marked = ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(body) else "")
    return plain, marked


def _needles(phrases: Sequence[_Phrase]) -> list[str]:
    """The literal strings to highlight: each phrase's text with bigrams re-joined."""
    result = []
    for phrase in phrases:
        text_ = ""
        for word in phrase.words:
            if _CJK_RE.match(word) and text_ and _CJK_RE.match(text_[-1]):
                text_ += word[-1]
            else:
                text_ += word
        if text_:
            result.append(text_)
    # Longest first so that overlapping highlights prefer the full phrase.
    return sorted(set(result), key=len, reverse=True)


def _dialect(session: AsyncSession | AsyncConnection) -> str:
    if isinstance(session, AsyncSession):
        bind = session.get_bind()
        return bind.dialect.name
    return session.dialect.name


# --- writing the index ----------------------------------------------------------------------


def _document_parts(doc: IndexInput) -> tuple[list[str], list[str], str]:
    head = " ".join([doc.title, doc.index_number, *doc.metadata])
    body = doc.body_text[:BODY_INDEX_CHARS]
    return tokens(head), tokens(body), body


async def index_document(session: AsyncSession | AsyncConnection, doc: IndexInput) -> None:
    """Insert or replace one item in the index (inside the caller's transaction)."""
    title_tokens, body_tokens, body = _document_parts(doc)
    await remove_document(session, doc.publication_id)
    key = rank_key(doc.published_at, doc.publication_id)
    dialect = _dialect(session)
    snippet_text = " ".join(x for x in doc.metadata if x) + " " + body
    params = {
        "pid": doc.publication_id,
        "rk": key,
        "ix": doc.index_number,
        "url": doc.url,
        "title": doc.title,
        "kind": doc.kind,
        "cat": doc.category,
        "year": doc.published_at.year,
        "col": doc.column_key,
        "genre": doc.genre,
        "pub": doc.published_at.astimezone(UTC).replace(tzinfo=None)
        if dialect == "sqlite"
        else doc.published_at,
        "text": body[:SNIPPET_TEXT_CHARS] if body else snippet_text.strip()[:SNIPPET_TEXT_CHARS],
    }
    if dialect == "postgresql":
        params["tsv"] = pg_tsvector(title_tokens, body_tokens)
        await session.execute(
            text(
                "INSERT INTO website_search_docs (publication_id, rank_key, index_number, url,"
                " title, kind, category, year, column_key, genre, published_at, text, tsv) VALUES"
                " (:pid, :rk, :ix, :url, :title, :kind, :cat, :year, :col, :genre, :pub, :text,"
                " CAST(:tsv AS tsvector))"
            ),
            params,
        )
        return
    await session.execute(
        text(
            "INSERT INTO website_search_docs (publication_id, rank_key, index_number, url,"
            " title, kind, category, year, column_key, genre, published_at, text) VALUES"
            " (:pid, :rk, :ix, :url, :title, :kind, :cat, :year, :col, :genre, :pub, :text)"
        ),
        params,
    )
    await session.execute(
        text(
            "INSERT INTO website_search_fts (rowid, title, body, facets)"
            " VALUES (:rk, :title, :body, :facets)"
        ),
        {
            "rk": key,
            "title": " ".join(title_tokens),
            "body": " ".join(body_tokens),
            "facets": facet_tokens(doc.category, doc.published_at.year, doc.kind),
        },
    )


async def remove_document(session: AsyncSession | AsyncConnection, publication_id: int) -> None:
    """Take one item out of the index (idempotent)."""
    dialect = _dialect(session)
    if dialect != "postgresql":
        await session.execute(
            text(
                "DELETE FROM website_search_fts WHERE rowid IN"
                " (SELECT rank_key FROM website_search_docs WHERE publication_id = :pid)"
            ),
            {"pid": publication_id},
        )
    await session.execute(
        text("DELETE FROM website_search_docs WHERE publication_id = :pid"),
        {"pid": publication_id},
    )


# --- searching ------------------------------------------------------------------------------


async def search(
    db: Database,
    query: str,
    *,
    limit: int = 10,
    offset: int = 0,
    category: str | None = None,
    year: int | None = None,
) -> SearchResults:
    """Search the live catalog: best matches first (relevance x recency), with snippets."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, min(int(offset), MAX_OFFSET))
    if category is not None and not re.fullmatch(r"[a-z_]{1,24}", category):
        return SearchResults(query=query, limit=limit, offset=offset)
    phrases = parse_query(query or "")
    if not phrases:
        return SearchResults(query=query, limit=limit, offset=offset)
    now = datetime.now(UTC)
    async with db.engine.connect() as conn:
        if db.is_postgresql:
            candidates, total, exact = await _pg_candidates(conn, phrases, category, year)
        else:
            candidates, total, exact = await _sqlite_candidates(conn, phrases, category, year)
        scored = sorted(
            ((rel * recency(pub, now), rk) for rk, pub, rel in candidates), reverse=True
        )
        page = scored[offset : offset + limit]
        rows = await _load(conn, [rk for _, rk in page])
    hits = []
    for score, rk in page:
        row = rows.get(rk)
        if row is None:
            continue
        plain, marked = snippet(row["text"], phrases)
        hits.append(
            SearchHit(
                publication_id=row["publication_id"],
                title=row["title"],
                url=row["url"],
                snippet=plain,
                snippet_html=marked,
                published_at=_aware(row["published_at"]),
                index_number=row["index_number"],
                category=row["category"],
                kind=row["kind"],
                score=round(score, 6),
            )
        )
    return SearchResults(
        query=query, items=hits, total=total, limit=limit, offset=offset, total_exact=exact
    )


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TITLE_BOOST = 3.0


def _keys(result: Any) -> list[int]:
    return [int(value) for value in result.scalars()]


def _merge(matches: Sequence[int], title_hits: Sequence[int]) -> list[tuple[int, datetime, float]]:
    titled = set(title_hits)
    keys = set(matches) | titled
    # The rank key carries the publication second: recency needs no further lookup.
    return [(k, _from_key(k), TITLE_BOOST if k in titled else 1.0) for k in keys]


async def _sqlite_candidates(
    conn: AsyncConnection, phrases: Sequence[_Phrase], category: str | None, year: int | None
) -> tuple[list[tuple[int, datetime, float]], int, bool]:
    match = fts5_query(phrases)
    facets = ""
    if category:
        facets += f' AND facets : "类{category}"'
    if year is not None:
        facets += f' AND facets : "年{int(year)}"'
    # Rowid-only walks, newest first, stopping at the cap: no bm25(), whose document
    # frequencies would make FTS5 visit every match of a common bigram.
    newest = (
        "SELECT rowid FROM website_search_fts WHERE website_search_fts MATCH :q"
        " ORDER BY rowid DESC LIMIT :cap"
    )
    matches = _keys(await conn.execute(text(newest), {"q": match + facets, "cap": CANDIDATES}))
    title_query = "title : " + match + facets
    titles = _keys(await conn.execute(text(newest), {"q": title_query, "cap": CANDIDATES}))
    total, exact = len(matches), True
    if total >= CANDIDATES:
        total = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT rowid FROM website_search_fts"
                    " WHERE website_search_fts MATCH :q LIMIT :cap)"
                ),
                {"q": match + facets, "cap": TOTAL_CAP},
            )
        ).scalar_one()
        exact = total < TOTAL_CAP
    return _merge(matches, titles), int(total), exact


async def _pg_candidates(
    conn: AsyncConnection, phrases: Sequence[_Phrase], category: str | None, year: int | None
) -> tuple[list[tuple[int, datetime, float]], int, bool]:
    where = ""
    params: dict[str, object] = {
        "q": pg_tsquery(phrases),
        "qt": pg_tsquery(phrases, weight="A"),
        "cap": CANDIDATES,
    }
    if category:
        where += " AND category = :cat"
        params["cat"] = category
    if year is not None:
        where += " AND year = :year"
        params["year"] = int(year)
    newest = (
        "SELECT rank_key FROM website_search_docs WHERE tsv @@ CAST(:{q} AS tsquery)"
        + where
        + " ORDER BY rank_key DESC LIMIT :cap"
    )
    matches = _keys(await conn.execute(text(newest.format(q="q")), params))
    titles = _keys(await conn.execute(text(newest.format(q="qt")), params))
    total, exact = len(matches), True
    if total >= CANDIDATES:
        total = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM website_search_docs"
                    " WHERE tsv @@ CAST(:q AS tsquery)" + where + " LIMIT :total_cap) t"
                ),
                {
                    **{k: v for k, v in params.items() if k not in ("cap", "qt")},
                    "total_cap": TOTAL_CAP,
                },
            )
        ).scalar_one()
        exact = total < TOTAL_CAP
    return _merge(matches, titles), int(total), exact


def _from_key(key: int) -> datetime:
    return datetime.fromtimestamp(key >> 22, UTC)


async def _load(conn: AsyncConnection, keys: Iterable[int]) -> dict[int, dict[str, Any]]:
    wanted = list(keys)
    if not wanted:
        return {}
    marks = ", ".join(f":k{i}" for i in range(len(wanted)))
    rows = (
        await conn.execute(
            text(
                "SELECT rank_key, publication_id, title, url, text, published_at, index_number,"
                f" category, kind FROM website_search_docs WHERE rank_key IN ({marks})"
            ),
            {f"k{i}": k for i, k in enumerate(wanted)},
        )
    ).mappings()
    return {int(r["rank_key"]): dict(r) for r in rows}
