"""The editable check lists in the database, and the approval hook that uses them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.checks.findings import Finding, Severity
from publisher.checks.lists import DEFAULT_TYPOS, CheckLists, Leader
from publisher.checks.run import Checker
from publisher.errors import NotFound, ValidationError
from publisher.orm import utcnow
from reports.models import CheckListEntry, ListKind

MAX_TERM = 100
MAX_VALUE = 200
KNOWN_CODES = frozenset(
    {
        "banned_word",
        "sensitive_word",
        "typo",
        "leader_title",
        "leader_former",
        "personal_id_number",
        "personal_mobile",
        "personal_landline",
        "personal_bank_card",
        "personal_address",
        "punctuation",
        "fullwidth_alnum",
        "missing_alt",
        "summary_length",
        "wechat_title_length",
        "weibo_text_length",
        "broken_link",
        "broken_image",
    }
)


async def load_lists(session: AsyncSession) -> CheckLists:
    """The lists as stored; the default typo list is used until staff add their own."""
    rows = (await session.execute(select(CheckListEntry).order_by(CheckListEntry.id))).scalars()
    banned: list[str] = []
    sensitive: list[str] = []
    typos: dict[str, str] = {}
    leaders: list[Leader] = []
    severities: dict[str, Severity] = {}
    for row in rows:
        if row.kind == ListKind.BANNED:
            banned.append(row.term)
        elif row.kind == ListKind.SENSITIVE:
            sensitive.append(row.term)
        elif row.kind == ListKind.TYPO:
            typos[row.term] = row.value
        elif row.kind == ListKind.LEADER:
            leaders.append(Leader(row.term, row.value, row.current))
        elif row.kind == ListKind.SEVERITY:
            severities[row.term] = Severity(row.value)
    return CheckLists(
        banned_words=tuple(banned),
        sensitive_words=tuple(sensitive),
        typos={**DEFAULT_TYPOS, **typos},
        leaders=tuple(leaders),
        severities=severities,
    )


async def content_checks(session: Any, publication: Any) -> Sequence[Finding]:
    """The approval hook (CoreConfig.content_checks): every check with the stored lists."""
    return Checker(await load_lists(session)).check(publication)


def validate_entry(kind: str, term: str, value: str = "") -> tuple[ListKind, str, str]:
    """A clean entry or a ValidationError naming what is wrong."""
    try:
        list_kind = ListKind(kind)
    except ValueError:
        raise ValidationError(
            "kind", f"unknown list {kind!r}; one of " + ", ".join(k.value for k in ListKind)
        ) from None
    term, value = term.strip(), value.strip()
    if not term or len(term) > MAX_TERM or any(ord(c) < 32 for c in term):
        raise ValidationError("term", f"1-{MAX_TERM} printable characters")
    if len(value) > MAX_VALUE or any(ord(c) < 32 for c in value):
        raise ValidationError("value", f"at most {MAX_VALUE} printable characters")
    if list_kind in (ListKind.TYPO, ListKind.LEADER) and not value:
        raise ValidationError("value", "a typo needs its correction, a leader a title")
    if list_kind == ListKind.TYPO and value == term:
        raise ValidationError("value", "the correction equals the typo")
    if list_kind == ListKind.SEVERITY:
        if term not in KNOWN_CODES:
            raise ValidationError("term", f"unknown check code {term!r}")
        if value not in {s.value for s in Severity}:
            raise ValidationError("value", "error, warning or off")
    if list_kind in (ListKind.BANNED, ListKind.SENSITIVE):
        value = ""
    return list_kind, term, value


async def add_entry(
    session: AsyncSession,
    kind: str,
    term: str,
    value: str = "",
    *,
    current: bool = True,
    actor: str = "",
) -> CheckListEntry:
    """Add (or update) one entry; a severity or typo replaces the earlier one for its term."""
    list_kind, term, value = validate_entry(kind, term, value)
    if list_kind in (ListKind.SEVERITY, ListKind.TYPO):
        await session.execute(
            delete(CheckListEntry).where(
                CheckListEntry.kind == list_kind.value, CheckListEntry.term == term
            )
        )
    existing = (
        await session.execute(
            select(CheckListEntry).where(
                CheckListEntry.kind == list_kind.value,
                CheckListEntry.term == term,
                CheckListEntry.value == value,
            )
        )
    ).scalar_one_or_none()
    entry = existing or CheckListEntry(kind=list_kind.value, term=term, value=value)
    entry.current = current
    entry.updated_by = actor[:100]
    entry.updated_at = utcnow()
    if existing is None:
        session.add(entry)
    await session.flush()
    return entry


async def remove_entry(session: AsyncSession, entry_id: int) -> None:
    """Delete one entry or raise NotFound."""
    entry = await session.get(CheckListEntry, entry_id)
    if entry is None:
        raise NotFound(f"no list entry {entry_id}")
    await session.delete(entry)


async def entries(session: AsyncSession, kind: str | None = None) -> list[CheckListEntry]:
    """Entries of one list (or all), in a stable order."""
    stmt = select(CheckListEntry).order_by(CheckListEntry.kind, CheckListEntry.term)
    if kind is not None:
        stmt = stmt.where(CheckListEntry.kind == kind)
    return list((await session.execute(stmt)).scalars())


MAX_IMPORT_LINES = 100_000


def parse_lines(kind: str, text: str) -> list[tuple[str, str, bool]]:
    """Entries from text, one per line: a word; ``错词=正词``; ``姓名,职务[,former]``;
    ``code=severity``. Blank lines and ``#`` comments are skipped; errors name the line."""
    lines = text.splitlines()
    if len(lines) > MAX_IMPORT_LINES:
        raise ValidationError("lines", f"at most {MAX_IMPORT_LINES:,} lines at once")
    out: list[tuple[str, str, bool]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = True
        if kind in (ListKind.TYPO, ListKind.SEVERITY):
            term, sep, value = line.partition("=")
            if not sep:
                raise ValidationError("lines", f"line {number}: expected 'wrong=right'")
        elif kind == ListKind.LEADER:
            parts = [p.strip() for p in line.replace("，", ",").split(",")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "former"):
                raise ValidationError("lines", f"line {number}: expected 'name,title[,former]'")
            term, value = parts[0], parts[1]
            current = len(parts) == 2
        else:
            term, value = line, ""
        try:
            _, term, value = validate_entry(kind, term, value)
        except ValidationError as exc:
            raise ValidationError("lines", f"line {number}: {exc.message}") from None
        out.append((term, value, current))
    return out


async def import_lines(session: AsyncSession, kind: str, text: str, actor: str = "") -> int:
    """Add every entry of ``text`` (all or nothing: the caller's transaction)."""
    parsed = parse_lines(kind, text)
    # One read of the list, then plain inserts: a 50,000-word list imports in one go.
    existing = {(e.term, e.value): e for e in await entries(session, kind)}
    by_term: dict[str, list[CheckListEntry]] = {}
    for entry in existing.values():
        by_term.setdefault(entry.term, []).append(entry)
    now = utcnow()
    for term, value, current in parsed:
        if kind in (ListKind.TYPO, ListKind.SEVERITY):
            for old in by_term.pop(term, []):
                if old.value != value:
                    await session.delete(old)
                    existing.pop((old.term, old.value), None)
        found = existing.get((term, value))
        if found is None:
            found = CheckListEntry(kind=kind, term=term, value=value)
            session.add(found)
            existing[(term, value)] = found
        entry = found
        by_term.setdefault(term, []).append(entry)
        entry.current = current
        entry.updated_by = actor[:100]
        entry.updated_at = now
    await session.flush()
    return len(parsed)
