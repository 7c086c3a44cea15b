"""Bulk import of an existing catalog: ``govcast import FILE.jsonl``.

- Streaming: one line at a time, committed in batches; memory does not grow with the file.
- Resumable: the number of the last handled line is stored per file in
  ``website_import_checkpoints`` in the same transaction as the batch, so a rerun after a
  crash or Ctrl-C continues exactly after the last committed line.
- Rejected lines are reported (line number and reason) and counted; they never stop the run.
- Imported items were published elsewhere: they go to the website catalog and the search
  index directly, marked ``imported``, in state ``published``, keeping their index number
  and publication date. No delivery row is written, so nothing is ever re-posted to
  WeChat or Weibo.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.models import WebsiteEntry
from publisher import audit, workflow
from publisher.config import CoreConfig
from publisher.errors import GovcastError
from publisher.inputs import PublicationInput, publication_from_fields
from publisher.markup import derive_summary, html_to_text
from publisher.models import Office, Publication, PublicationState
from publisher.orm import utcnow
from website.models import ImportCheckpoint
from website.search import IndexInput, index_document

log = logging.getLogger("govcast.website")

MAX_LINE_BYTES = 2_000_000
BATCH = 500
INDEX_NUMBER_RE = re.compile(r"^[0-9A-Za-z]{1,32}/[0-9]{4,6}-[0-9]{1,8}$")


class ImportFileError(GovcastError):
    """The file itself cannot be imported (missing, not UTF-8 text)."""


@dataclass
class Rejection:
    """One line that was not imported, and why."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """The outcome of one run."""

    imported: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    skipped_lines: int = 0  # already handled by an earlier run
    last_line: int = 0


def file_key(path: Path) -> str:
    """Identifies a file across runs: its absolute path and the hash of its first line."""
    with path.open("rb") as handle:
        first = handle.readline(MAX_LINE_BYTES)
    digest = hashlib.sha256(str(path.resolve()).encode() + b"\0" + first).hexdigest()
    return digest[:64]


_TOO_LONG = "\0too-long"
_NOT_UTF8 = "\0not-utf8"


def _lines(handle: BinaryIO, start_after: int) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded one by one; an oversized line is never held in memory."""
    number = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        too_long = len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n")
        while too_long and raw and not raw.endswith(b"\n"):
            raw = handle.readline(MAX_LINE_BYTES + 1)  # skip the rest of the line
        number += 1
        if number <= start_after:
            continue
        if too_long:
            yield number, _TOO_LONG
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, _NOT_UTF8


def parse_line(raw: str, max_body_chars: int) -> PublicationInput:
    """Pure: one JSON line into a validated publication input (raises on anything wrong)."""
    if raw == _TOO_LONG:
        raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
    if raw == _NOT_UTF8:
        raise ValueError("not UTF-8 text")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        fields = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(fields, dict):
        raise ValueError("not a JSON object")
    fields.pop("channels", None)  # imported items go to the website only
    fields.pop("push", None)
    fields.pop("office", None)
    data = publication_from_fields(fields, max_body_chars=max_body_chars)
    if data.published_at is None:
        raise ValueError("published_at: required for imported items")
    if data.published_at > utcnow():
        raise ValueError("published_at: in the future")
    if data.index_number is not None and not INDEX_NUMBER_RE.match(data.index_number):
        raise ValueError("index_number: not like ORGCODE/YYYYMM-00001")
    return data


async def _store(
    session: AsyncSession, config: CoreConfig, office: Office, data: PublicationInput
) -> Publication:
    assert data.published_at is not None
    index_number = data.index_number or await workflow.next_index_number(
        session, office, data.published_at, config
    )
    taken = await session.execute(
        select(Publication.id).where(Publication.index_number == index_number)
    )
    if taken.first() is not None:
        raise ValueError(f"index_number: {index_number} already in the catalog")
    now = utcnow()
    publication = Publication(
        office_id=office.id,
        index_number=index_number,
        kind=data.kind,
        state=PublicationState.PUBLISHED.value,
        title=data.title,
        title_en=data.title_en,
        body_html=data.body_html,
        body_html_en=data.body_html_en,
        body_source=data.body_source,
        summary=data.summary or derive_summary(data.body_html),
        category=data.category,
        issuing_body=data.issuing_body,
        document_number=data.document_number,
        written_on=data.written_on,
        subject=data.subject,
        genre=data.genre,
        audience=data.audience,
        keywords=list(data.keywords),
        source=data.source,
        column_key=data.column_key,
        validity=data.validity,
        explanation_url=data.explanation_url,
        solicitation_opens_at=data.solicitation_opens_at,
        solicitation_closes_at=data.solicitation_closes_at,
        solicitation_basis=data.solicitation_basis,
        channels=["website"],
        imported=True,
        author_label="import",
        approved_at=now,
        published_at=data.published_at,
        created_at=now,
        updated_at=now,
    )
    session.add(publication)
    await session.flush()
    url = config.item_url(index_number)
    session.add(
        WebsiteEntry(
            publication_id=publication.id,
            office_id=office.id,
            index_number=index_number,
            url=url,
            state="live",
            published_at=data.published_at,
            updated_at=now,
        )
    )
    await index_document(
        session,
        IndexInput(
            publication_id=publication.id,
            index_number=index_number,
            url=url,
            title=data.title,
            kind=data.kind,
            category=data.category,
            published_at=data.published_at,
            body_text=html_to_text(data.body_html),
            column_key=data.column_key,
            genre=data.genre,
            metadata=tuple(
                x
                for x in (
                    data.document_number,
                    data.issuing_body,
                    data.subject,
                    data.genre,
                    data.title_en,
                    *data.keywords,
                )
                if x
            ),
        ),
    )
    return publication


async def import_file(
    db: Any, config: CoreConfig, office_key: str, path: Path, *, batch: int = BATCH
) -> ImportReport:
    """Import a JSON Lines catalog, resuming after the last committed line."""
    # A command-line run: blocking file reads here hold up no server.
    if not path.is_file():  # noqa: ASYNC240
        raise ImportFileError(f"{path}: no such file")
    key = file_key(path)
    report = ImportReport()
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, office_key)
        checkpoint = (
            await session.execute(select(ImportCheckpoint).where(ImportCheckpoint.file_key == key))
        ).scalar_one_or_none()
        if checkpoint is None:
            checkpoint = ImportCheckpoint(
                file_key=key,
                path=str(path.resolve())[:1000],  # noqa: ASYNC240
                line=0,
                imported=0,
                rejected=0,
            )
            session.add(checkpoint)
        start_after = checkpoint.line
    report.skipped_lines = start_after
    report.last_line = start_after
    try:
        handle = path.open("rb")  # a command-line run, see above
    except OSError as exc:
        raise ImportFileError(f"{path}: {exc.strerror}") from None
    with handle:
        pending: list[tuple[int, str]] = []
        for number, raw in _lines(handle, start_after):
            pending.append((number, raw))
            if len(pending) >= batch:
                await _commit_batch(db, config, office, key, pending, report)
                pending = []
        if pending:
            await _commit_batch(db, config, office, key, pending, report)
    audit_detail = {"imported": report.imported, "rejected": len(report.rejected)}
    async with db.transaction() as session:
        audit.record(session, audit.CLI, "catalog.import", "import", key[:64], **audit_detail)
    log.info("catalog import finished", extra={"file": path.name, **audit_detail})
    return report


async def _commit_batch(
    db: Any,
    config: CoreConfig,
    office: Office,
    key: str,
    lines: list[tuple[int, str]],
    report: ImportReport,
) -> None:
    imported = 0
    rejected: list[Rejection] = []
    async with db.transaction() as session:
        for number, raw in lines:
            if not raw.strip():
                continue
            try:
                data = parse_line(raw, config.max_body_chars)
                # A savepoint per line: a rejected line leaves nothing behind.
                async with session.begin_nested():
                    await _store(session, config, office, data)
                imported += 1
            except (ValueError, GovcastError) as exc:
                rejected.append(Rejection(number, str(exc)[:300]))
        checkpoint = (
            await session.execute(select(ImportCheckpoint).where(ImportCheckpoint.file_key == key))
        ).scalar_one()
        checkpoint.line = lines[-1][0]
        checkpoint.imported += imported
        checkpoint.rejected += len(rejected)
        checkpoint.updated_at = utcnow()
    report.imported += imported
    report.rejected.extend(rejected)
    report.last_line = lines[-1][0]
