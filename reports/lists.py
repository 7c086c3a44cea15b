"""The editable check lists in the database, and the approval hook that uses them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from publisher import audit
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
        "leader_name",
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
    allowed: list[str] = []
    typos: dict[str, str] = {}
    leaders: list[Leader] = []
    severities: dict[str, Severity] = {}
    for row in rows:
        if row.kind == ListKind.BANNED:
            banned.append(row.term)
        elif row.kind == ListKind.SENSITIVE:
            sensitive.append(row.term)
        elif row.kind == ListKind.ALLOWED:
            allowed.append(row.term)
        elif row.kind == ListKind.TYPO:
            typos[row.term] = row.value
        elif row.kind == ListKind.LEADER:
            leaders.append(Leader(row.term, row.value, row.current))
        elif row.kind == ListKind.SEVERITY:
            severities[row.term] = Severity(row.value)
    return CheckLists(
        banned_words=tuple(banned),
        sensitive_words=tuple(sensitive),
        allowed_words=tuple(allowed),
        typos={**DEFAULT_TYPOS, **typos},
        leaders=tuple(leaders),
        severities=severities,
    )


# The built Checker per database, with the lists version it was built from: building the
# automaton over a 50,000-word list takes far longer than the checks themselves.
_CHECKERS: dict[str, tuple[tuple[int, int, str], Checker]] = {}


async def lists_version(session: AsyncSession) -> tuple[int, int, str]:
    """A cheap fingerprint of the stored lists, seen by every process: any add, edit or
    delete changes the entry count, the highest id or the latest ``updated_at``."""
    count, last_id, last_change = (
        await session.execute(
            select(
                func.count(CheckListEntry.id),
                func.max(CheckListEntry.id),
                func.max(CheckListEntry.updated_at),
            )
        )
    ).one()
    return int(count), int(last_id or 0), "" if last_change is None else str(last_change)


def _database_key(session: AsyncSession) -> str:
    bind = session.bind
    url = getattr(bind, "url", None)
    return str(url) if url is not None else f"bind-{id(bind)}"


async def checker_for(session: AsyncSession) -> Checker:
    """The Checker for the stored lists, rebuilt only when they have changed."""
    key = _database_key(session)
    version = await lists_version(session)
    cached = _CHECKERS.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    checker = Checker(await load_lists(session))
    _CHECKERS[key] = (version, checker)
    return checker


async def content_checks(session: Any, publication: Any) -> Sequence[Finding]:
    """The approval hook (CoreConfig.content_checks): every check with the stored lists."""
    return (await checker_for(session)).check(publication)


ActorLike = str | audit.Actor
AUDITED_TERMS = 50  # entries named in one audit record; the count is always complete


def _actor(actor: ActorLike) -> audit.Actor:
    if isinstance(actor, audit.Actor):
        return actor
    if actor in ("", "cli"):
        return audit.CLI
    return audit.Actor(label=actor[:100])


def _shown(term: str, value: str, current: bool = True) -> str:
    text = f"{term}={value}" if value else term
    return text if current else f"{text} (former)"


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
    if list_kind in (ListKind.BANNED, ListKind.SENSITIVE, ListKind.ALLOWED):
        value = ""
    return list_kind, term, value


async def add_entry(
    session: AsyncSession,
    kind: str,
    term: str,
    value: str = "",
    *,
    current: bool = True,
    actor: ActorLike = "",
) -> CheckListEntry:
    """Add (or update) one entry; a severity or typo replaces the earlier one for its term.
    The change is written to the audit log."""
    list_kind, term, value = validate_entry(kind, term, value)
    who = _actor(actor)
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
    entry.updated_by = who.label[:100]
    entry.updated_at = utcnow()
    if existing is None:
        session.add(entry)
    await session.flush()
    audit.record(
        session,
        who,
        "check_list.add",
        "check_list",
        list_kind.value,
        count=1,
        entries=[_shown(term, value, current)],
    )
    return entry


async def remove_entry(session: AsyncSession, entry_id: int, actor: ActorLike = "") -> str:
    """Delete one entry (audited) or raise NotFound; returns the entry's list kind."""
    entry = await session.get(CheckListEntry, entry_id)
    if entry is None:
        raise NotFound(f"no list entry {entry_id}")
    kind = entry.kind
    audit.record(
        session,
        _actor(actor),
        "check_list.remove",
        "check_list",
        kind,
        count=1,
        entries=[_shown(entry.term, entry.value, entry.current)],
        entry_id=entry_id,
    )
    await session.delete(entry)
    return kind


async def entry_kind(session: AsyncSession, entry_id: int) -> str:
    """The list an entry belongs to, or NotFound."""
    entry = await session.get(CheckListEntry, entry_id)
    if entry is None:
        raise NotFound(f"no list entry {entry_id}")
    return entry.kind


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


async def import_lines(session: AsyncSession, kind: str, text: str, actor: ActorLike = "") -> int:
    """Add every entry of ``text`` (all or nothing: the caller's transaction), audited."""
    parsed = parse_lines(kind, text)
    who = _actor(actor)
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
        entry.updated_by = who.label[:100]
        entry.updated_at = now
    await session.flush()
    if parsed:
        audit.record(
            session,
            who,
            "check_list.import",
            "check_list",
            kind,
            count=len(parsed),
            entries=[_shown(t, v, c) for t, v, c in parsed[:AUDITED_TERMS]],
        )
    return len(parsed)
