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
- pg_trgm was rejected (checked on PostgreSQL 15 with pg_trgm 1.6, which installs fine): a
  2-character pattern yields no complete trigram, so ``LIKE '%社保%'`` reads every index
  entry and rechecks every row; 社保, 医保 are the commonest queries. No extension is needed.
- SQLite: an FTS5 table of the pre-tokenized text (rowid = a time-ordered key). FTS5 walks
  a phrase query in rowid order and checks positions as it goes, so "the newest N matches"
  is one indexed walk.
- PostgreSQL: a ``tsvector`` built directly from the same tokens (cast from its literal form,
  bypassing any text-search parser or locale), GIN-indexed. GIN returns matches in physical
  order and rechecks phrase positions on every candidate row, so the newest matches are
  found through filter lexemes added by a trigger (publication month and year, category,
  title tokens) month by month, with the bigrams AND-ed (exact in GIN, no recheck) and the
  phrase confirmed only on the pulled candidates: see "PostgreSQL" below.
- One tokenizer in Python feeds both, so both databases return the same matches.
- Relevance with recency, at bounded cost: matches are taken newest first in blocks of
  ``CANDIDATES``, plus the newest title matches; each block is scored relevance (title x3)
  x recency decay and sorted (:func:`rank_blocks`). Deeper pages walk further blocks. A
  common term therefore costs about the same over 40,000 or 400,000 items. The total is
  counted exactly up to ``TOTAL_CAP`` and estimated beyond it ("about N").

The index is written by the website channel in the same transaction as the catalog entry
(:func:`index_document` / :func:`remove_document`): one publish touches one row.
"""

from __future__ import annotations

import html
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from publisher.db import Database

# Newest matches ranked together (one block); older matches form the next blocks.
CANDIDATES = 200
# Matches are counted up to here; beyond it the total is an estimate ("about N", as search
# engines do): an exact count of a common bigram would visit every match.
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
    """One page of results and the number of matches (exact or estimated)."""

    query: str
    items: list[SearchHit] = field(default_factory=list)
    total: int = 0
    limit: int = 10
    offset: int = 0
    # False when ``total`` is an estimate (more than TOTAL_CAP matches, or a phrase whose
    # candidates were only partly confirmed).
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


@dataclass(frozen=True)
class _Found:
    """Newest-first matches of one query and the total, before ranking."""

    matches: list[int]  # rank keys, newest first, every one a confirmed match
    titles: list[int]  # the newest CANDIDATES matches in the title and catalog fields
    total: int
    exact: bool


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
    # Whole blocks of CANDIDATES matches, so that a page ranks the same whichever page
    # was asked for first (see ``rank_blocks``).
    want = CANDIDATES * -(-(offset + limit) // CANDIDATES)
    async with db.engine.connect() as conn:
        if db.is_postgresql:
            found = await _pg_candidates(conn, phrases, category, year, want, now)
        else:
            found = await _sqlite_candidates(conn, phrases, category, year, want)
        ranked = rank_blocks(found.matches, found.titles, now)
        page = ranked[offset : offset + limit]
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
        query=query,
        items=hits,
        total=found.total,
        limit=limit,
        offset=offset,
        total_exact=found.exact,
    )


def rank_blocks(
    matches: Sequence[int], titles: Sequence[int], now: datetime
) -> list[tuple[float, int]]:
    """(score, rank key) best first: relevance x recency within blocks of CANDIDATES.

    Block 0 is the newest CANDIDATES matches plus the newest title matches (an older item
    about exactly this beats yesterday's passing mention); block k the k-th next newest
    matches, title matches already shown left out. Ranking inside fixed blocks keeps the
    order stable across pages without ranking every match of a common word."""
    titled = set(titles)
    ranked: list[tuple[float, int]] = []
    for start in range(0, max(len(matches), 1), CANDIDATES):
        block = set(matches[start : start + CANDIDATES])
        block = block | titled if start == 0 else block - titled
        scored = [
            ((TITLE_BOOST if k in titled else 1.0) * recency(_from_key(k), now), k) for k in block
        ]
        ranked.extend(sorted(scored, reverse=True))
    return ranked


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TITLE_BOOST = 3.0


def _keys(result: Any) -> list[int]:
    return [int(value) for value in result.scalars()]


async def _sqlite_candidates(
    conn: AsyncConnection,
    phrases: Sequence[_Phrase],
    category: str | None,
    year: int | None,
    want: int,
) -> _Found:
    match = fts5_query(phrases)
    facets = ""
    if category:
        facets += f' AND facets : "类{category}"'
    if year is not None:
        facets += f' AND facets : "年{int(year)}"'
    # Rowid-only walks, newest first, stopping at the cap: no bm25(), whose document
    # frequencies would make FTS5 visit every match of a common bigram. FTS5 checks phrase
    # positions itself while walking, so every key is a confirmed match.
    newest = (
        "SELECT rowid FROM website_search_fts WHERE website_search_fts MATCH :q"
        " ORDER BY rowid DESC LIMIT :cap"
    )
    matches = _keys(await conn.execute(text(newest), {"q": match + facets, "cap": want}))
    title_query = "title : " + match + facets
    titles = _keys(await conn.execute(text(newest), {"q": title_query, "cap": CANDIDATES}))
    total, exact = len(matches), True
    if total >= want:
        cap = max(TOTAL_CAP, want + 1)
        # The cap-th newest match: if there is one, the total is estimated from the share
        # of the catalog's time span that the newest `cap` matches cover.
        last = (
            await conn.execute(
                text(
                    "SELECT rowid FROM website_search_fts WHERE website_search_fts MATCH :q"
                    " ORDER BY rowid DESC LIMIT 1 OFFSET :skip"
                ),
                {"q": match + facets, "skip": cap - 1},
            )
        ).scalar_one_or_none()
        if last is None:
            total = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT rowid FROM website_search_fts"
                        " WHERE website_search_fts MATCH :q)"
                    ),
                    {"q": match + facets},
                )
            ).scalar_one()
        else:
            oldest = (
                await conn.execute(text("SELECT min(rank_key) FROM website_search_docs"))
            ).scalar_one()
            total, exact = _extrapolate(cap, int(last), int(oldest or last), year), False
    return _Found(matches, titles, int(total), exact)


def _extrapolate(count: int, last_key: int, oldest_key: int, year: int | None) -> int:
    """Matches in the whole catalog (or year) if they keep the rate of the newest ``count``."""
    end = int(datetime.now(UTC).timestamp())
    start = oldest_key >> 22
    if year is not None:
        end = min(end, _key_at(year + 1) >> 22)
        start = max(start, _key_at(year) >> 22)
    covered = max(1, end - (last_key >> 22))
    return max(count, round(count * max(covered, end - start) / covered))


# --- PostgreSQL: newest matches through the GIN index, month by month -----------------------
#
# The GIN index returns matches in physical order, so "the newest 200 matches of 社保" used
# to mean either fetching every match (45 % of the catalog) to sort them, or walking the
# rank-key index newest first and testing each row's tsvector (a TOAST fetch per row). The
# trigger of migration website_0002 adds position-less lexemes for the publication month
# and year (``@m202611``, ``@y2026``), the category (``#service``) and the title tokens
# (``~社保``). A query is then a UNION ALL of "AND of the bigrams & this month", newest month
# first, each sorted by rank key; PostgreSQL runs the branches in order and stops at the
# LIMIT, so a common word costs one month of its matches and a rare one a handful of index
# probes. An AND of lexemes without weights or positions is exact in GIN (no heap recheck);
# the phrase (bigram order) is then confirmed only on the candidates that were pulled.

MONTH_BUCKETS_YEARS = 2  # this year and last: month buckets; older: one bucket per year
YEAR_BUCKETS = 10
MAX_AND_LEXEMES = 6
# Below this many estimated matches the time slices are skipped (see _pg_candidates).
FEW_MATCHES = 3000
STATS_SECONDS = 300.0
_LEXEME_RE = re.compile(f"[{_CJK}0-9a-z_]+")


@dataclass(frozen=True)
class _Bucket:
    """A time slice of the catalog: rank keys in [lo, hi), with its lexeme if it has one."""

    lexeme: str | None
    lo: int | None
    hi: int | None


def _key_at(year: int, month: int = 1) -> int:
    while month > 12:
        year, month = year + 1, month - 12
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) << 22


def pg_buckets(now: datetime) -> list[_Bucket]:
    """Newest first: the future, each month of this and last year, ten years, the rest."""
    now = now.astimezone(UTC)
    buckets = [_Bucket(None, _key_at(now.year, now.month + 1), None)]
    year, month = now.year, now.month
    while year > now.year - MONTH_BUCKETS_YEARS:
        buckets.append(
            _Bucket(f"@m{year * 100 + month}", _key_at(year, month), _key_at(year, month + 1))
        )
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    for y in range(year, year - YEAR_BUCKETS, -1):
        buckets.append(_Bucket(f"@y{y}", _key_at(y), _key_at(y + 1)))
    buckets.append(_Bucket(None, None, _key_at(year - YEAR_BUCKETS + 1)))
    return buckets


def _lexeme(word: str, prefix: bool = False, mark: str = "") -> str:
    # Tokens are CJK or [0-9a-z] only (and filter values [a-z_]): nothing to escape, which
    # is what lets the literal be inlined; checked anyway.
    if not _LEXEME_RE.fullmatch(word):
        raise ValueError("unexpected search token")
    return f"'{mark}{word}'" + (":*" if prefix else "")


def _and_lexemes(phrases: Sequence[_Phrase], mark: str = "") -> list[str]:
    found: dict[str, None] = {}
    for phrase in phrases:
        for i, word in enumerate(phrase.words):
            last = i == len(phrase.words) - 1
            found[_lexeme(word, phrase.prefix and last, mark)] = None
    return list(found)


@dataclass(frozen=True)
class _Stats:
    """Row count and lexeme frequencies from PostgreSQL's statistics (ANALYZE)."""

    at: float
    rows: float
    freqs: dict[str, float]
    floor: float


_STATS: dict[str, _Stats] = {}


async def _pg_stats(conn: AsyncConnection) -> _Stats | None:
    key = str(conn.engine.url)
    cached = _STATS.get(key)
    if cached is not None and time.monotonic() - cached.at < STATS_SECONDS:
        return cached
    row = (
        await conn.execute(
            text(
                "SELECT c.reltuples, s.most_common_elems::text::text[] AS elems,"
                " s.most_common_elem_freqs AS freqs FROM pg_class c"
                " JOIN pg_stats s ON s.schemaname = current_schema()"
                " AND s.tablename = c.relname AND s.attname = 'tsv'"
                " WHERE c.relname = 'website_search_docs'"
                " AND c.relnamespace = current_schema()::regnamespace"
            )
        )
    ).first()
    stats = None
    if row is not None and row.elems and row.freqs and row.reltuples > 0:
        freqs = list(row.freqs)
        count = len(row.elems)
        # most_common_elem_freqs continues with the minimum and maximum frequency (and,
        # for arrays, the null fraction). A lexeme not listed is rarer than the minimum;
        # half of it stands in for its frequency.
        stats = _Stats(
            time.monotonic(),
            float(row.reltuples),
            dict(zip(row.elems, freqs[:count], strict=True)),
            freqs[count] / 2 if len(freqs) > count else 0.0,
        )
    _STATS[key] = stats or _Stats(time.monotonic(), 0.0, {}, 0.0)
    return stats


def _estimate(stats: _Stats | None, lexemes: Sequence[str]) -> float | None:
    """Upper bound of an AND of lexemes: the rarest one's frequency x rows."""
    if stats is None or not stats.rows:
        return None
    plain = [_bare(x) for x in lexemes if not x.endswith(":*")]
    if not plain:
        return None
    return stats.rows * min(stats.freqs.get(x, stats.floor) for x in plain)


def _bare(lexeme: str) -> str:
    return lexeme.split("'")[1]


def _rarest_first(stats: _Stats | None, lexemes: list[str]) -> list[str]:
    """Rarest first (prefix terms last): GIN starts its AND from the shortest lists."""
    if stats is None:
        return lexemes
    return sorted(
        lexemes,
        key=lambda x: 2.0 if x.endswith(":*") else stats.freqs.get(_bare(x), stats.floor),
    )


@dataclass(frozen=True)
class _Walk:
    """Result of a newest-first walk: confirmed keys, candidates examined, whether every
    candidate was seen, and the oldest key examined (to resume from)."""

    keys: list[int]
    examined: int
    exhausted: bool
    after: int | None


async def _pg_walk(
    conn: AsyncConnection,
    match: str,
    check: str | None,
    buckets: Sequence[_Bucket],
    want: int,
    year: int | None,
    after: int | None = None,
) -> _Walk:
    """The newest ``want`` rows matching ``match`` (and ``check``), older than ``after``."""
    confirmed: list[int] = []
    examined = 0
    # A phrase whose bigrams often appear apart could otherwise walk the whole catalog.
    budget = 4 * want + 4 * CANDIDATES
    while True:
        missing = want - len(confirmed)
        # First exactly what is wanted; after rejections, more at a time.
        size = missing if not examined else min(budget - examined, max(CANDIDATES, 2 * missing))
        branches = []
        for bucket in buckets:
            if after is not None and bucket.lo is not None and bucket.lo >= after:
                continue  # entirely newer than what was already examined
            where = [f"tsv @@ '{match}'::tsquery"]
            if bucket.lexeme is not None:
                where[0] = f"tsv @@ '({match}) & ''{bucket.lexeme}'''::tsquery"
            else:
                where += [f"rank_key >= {bucket.lo}"] if bucket.lo is not None else []
                where += [f"rank_key < {bucket.hi}"] if bucket.hi is not None else []
            if after is not None and (bucket.hi is None or bucket.hi > after):
                where.append(f"rank_key < {after}")
            if year is not None:
                where.append(f"year = {int(year)}")
            branches.append(
                "(SELECT rank_key, tsv FROM website_search_docs WHERE "
                + " AND ".join(where)
                + f" ORDER BY rank_key DESC LIMIT {size})"
            )
        if not branches:
            return _Walk(confirmed, examined, True, after)
        # The phrase test reads the (TOASTed) tsvector: done above the UNION, so only on
        # the rows the LIMIT lets through.
        ok = f"c.tsv @@ '{check}'::tsquery" if check else "true"
        sql = (
            f"SELECT c.rank_key, {ok} AS ok FROM ("
            + " UNION ALL ".join(branches)
            + f") AS c LIMIT {size}"
        )
        # Literals are inlined (no bind parameters): each query is planned with its own
        # lexeme frequencies, never as a generic plan that could walk the whole table.
        rows = (await conn.exec_driver_sql(sql)).all()
        examined += len(rows)
        confirmed.extend(int(r.rank_key) for r in rows if r.ok)
        if rows:
            after = min(int(r.rank_key) for r in rows)
        if len(rows) < size:
            return _Walk(confirmed, examined, True, after)
        if len(confirmed) >= want or examined >= budget:
            return _Walk(confirmed, examined, False, after)


async def _pg_candidates(
    conn: AsyncConnection,
    phrases: Sequence[_Phrase],
    category: str | None,
    year: int | None,
    want: int,
    now: datetime,
) -> _Found:
    stats = await _pg_stats(conn)
    everything = _rarest_first(stats, _and_lexemes(phrases))
    # The rarest few bigrams find the candidates (fewer posting lists, a shorter query);
    # the phrase check below restores the exact meaning of the whole query. A prefix term
    # (12号 -> '号':*) makes GIN merge every lexeme starting with 号 in every branch, so
    # it is left to that check unless nothing else is there.
    whole = [w for w in everything if not w.endswith(":*")] or everything
    # A lexeme in most rows (the office's organization code in every index number) only
    # slows the AND down; the check keeps it.
    rare = [w for w in whole if stats is None or stats.freqs.get(_bare(w), 0.0) < 0.5]
    words = (rare or whole)[:MAX_AND_LEXEMES]
    marks = [w.replace("'", "'~", 1) for w in words]
    filters = [_lexeme(category, mark="#")] if category else []
    buckets = pg_buckets(now)
    if year is not None:
        # Buckets are UTC months; the year column is the item's own calendar year, so keep
        # the neighbouring slices too and filter on the column.
        lo, hi = _key_at(int(year) - 1, 12), _key_at(int(year) + 1, 2)
        buckets = [
            b for b in buckets if (b.hi is None or b.hi > lo) and (b.lo is None or b.lo < hi)
        ]
    estimate = _estimate(stats, words + filters)
    if estimate is not None and estimate <= FEW_MATCHES:
        # A rare term: one probe of the index and a sort of all its matches beats ~36
        # probes, one per time slice.
        buckets = [_Bucket(None, None, None)]
    confirm = len(words) < len(everything) or any(len(p.words) > 1 for p in phrases)
    # Quotes inside the tsquery literal are doubled: it is itself inside '...'.
    match = " & ".join(words + filters).replace("'", "''")
    title_match = " & ".join(marks + filters).replace("'", "''")
    check = pg_tsquery(phrases).replace("'", "''") if confirm else None
    title_check = pg_tsquery(phrases, weight="A").replace("'", "''") if confirm else None
    walk = await _pg_walk(conn, match, check, buckets, want, year)
    matches = walk.keys[:want]
    titles = (await _pg_walk(conn, title_match, title_check, buckets, CANDIDATES, year)).keys
    seen = len(set(walk.keys) | set(titles))
    if walk.exhausted:
        return _Found(matches, titles, len(walk.keys), True)
    ratio = len(walk.keys) / walk.examined if walk.examined else 1.0
    if estimate is not None and year is not None:
        estimate *= stats.freqs.get(f"@y{int(year)}", stats.floor) if stats else 1.0
    if estimate is None or estimate < TOTAL_CAP:
        # Few matches by the statistics: count them (capped) through the index.
        in_year = f" AND year = {int(year)}" if year is not None else ""
        counted = int(
            (
                await conn.exec_driver_sql(
                    "SELECT count(*) FROM (SELECT 1 FROM website_search_docs"
                    f" WHERE tsv @@ '{match}'::tsquery{in_year} LIMIT {TOTAL_CAP}) AS t"
                )
            ).scalar_one()
        )
        if counted < TOTAL_CAP and not confirm:
            return _Found(matches, titles, max(counted, seen), True)
        if counted < TOTAL_CAP and counted - walk.examined <= 2 * CANDIDATES:
            # Few candidates left unchecked: confirm them too for an exact count.
            rest = await _pg_walk(conn, match, check, buckets, counted, year, walk.after)
            if rest.exhausted:
                return _Found(matches, titles, len(walk.keys) + len(rest.keys), True)
        estimate = max(float(counted), estimate or 0.0)
    # Beyond the cap the total is an estimate ("about N"), scaled by the share of
    # candidates whose phrase was confirmed.
    return _Found(matches, titles, max(int(estimate * ratio), seen), False)


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
