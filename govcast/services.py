"""A facade over the core for the command line (and scripts): one database handle, the
core config and the media store, with staff looked up by name."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from govcast import runtime
from govcast.settings import Settings
from publisher import audit, staff, workflow
from publisher.config import CoreConfig
from publisher.db import Database
from publisher.errors import ValidationError
from publisher.inputs import parse_publication_file
from publisher.media import MediaStore
from publisher.models import Publication, PublicationMedia
from publisher.views import deliveries_of, media_url


class Services:
    """Core operations bound to one deployment."""

    def __init__(self, db: Database, config: CoreConfig, store: MediaStore) -> None:
        self.db = db
        self.config = config
        self.store = store

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Services]:
        """Open the database for the duration of one command."""
        db = runtime.database(settings)
        try:
            await runtime.sync_offices(db, settings)
            yield cls(db, runtime.core_config(settings), runtime.media_store(settings))
        finally:
            await db.dispose()

    async def _actor(self, session: Any, as_user: str | None) -> tuple[audit.Actor, Any]:
        if as_user is None:
            return audit.CLI, None
        member = await staff.load_member(session, as_user)
        return member.actor("cli"), member

    async def add_from_file(
        self, path: Path, *, as_user: str | None, office_key: str, submit: bool = True
    ) -> int:
        """Create a publication from a Markdown/JSON file (and submit it); returns its id."""
        data = parse_publication_file(path, max_body_chars=self.config.max_body_chars)
        async with self.db.transaction() as session:
            actor, member = await self._actor(session, as_user)
            office = await workflow.office_by_key(session, office_key)
            if member is not None and office.id not in member.offices:
                raise ValidationError("office", f"{as_user} does not belong to office {office_key}")
            images = []
            for image_path in data.image_paths:
                media = await self.store.save(
                    session, office.id, image_path.name, image_path.read_bytes(), image_only=True
                )
                images.append((image_path, media))
            for image_path, media in images:
                # Point the body at the stored copy instead of the local file name.
                relative = image_path.name
                data.body_html = data.body_html.replace(
                    f'src="{relative}"', f'src="{media_url(self.config, media)}"'
                )
                for candidate in _relative_forms(path.parent, image_path):
                    data.body_html = data.body_html.replace(
                        f'src="{candidate}"', f'src="{media_url(self.config, media)}"'
                    )
            publication = await workflow.create(
                session, self.config, office, data, actor, member=member
            )
            for position, (_path, media) in enumerate(images):
                session.add(
                    PublicationMedia(
                        publication_id=publication.id,
                        media_id=media.id,
                        role="image",
                        position=position,
                    )
                )
            if submit:
                await workflow.submit(session, publication.id, actor, member=member)
            return publication.id

    async def submit(self, publication_id: int, as_user: str | None) -> Publication:
        """Submit a draft for review."""
        async with self.db.transaction() as session:
            actor, member = await self._actor(session, as_user)
            return await workflow.submit(session, publication_id, actor, member=member)

    async def review(
        self, publication_id: int, as_user: str, *, approve: bool, comment: str
    ) -> Publication:
        """Decide the current review step as the named staff member."""
        async with self.db.transaction() as session:
            member = await staff.load_member(session, as_user)
            return await workflow.review(
                session,
                self.config,
                publication_id,
                member,
                approve=approve,
                comment=comment,
                origin="cli",
            )

    async def withdraw(self, publication_id: int, as_user: str, *, reason: str) -> Publication:
        """Withdraw a publication everywhere."""
        async with self.db.transaction() as session:
            member = await staff.load_member(session, as_user)
            return await workflow.withdraw(
                session, publication_id, member.actor("cli"), reason=reason, member=member
            )

    async def show(self, publication_id: int) -> dict[str, Any]:
        """State, metadata and deliveries as plain data."""
        async with self.db.sessions() as session:
            publication = await workflow.get_publication(session, publication_id)
            deliveries = await deliveries_of(session, publication_id)
        return publication_report(publication, deliveries, self.config)


def _relative_forms(folder: Path, image: Path) -> list[str]:
    try:
        relative = image.relative_to(folder.resolve())
    except ValueError:
        return []
    return [str(relative), f"./{relative}"]


def publication_report(
    publication: Publication, deliveries: list[Any], config: CoreConfig
) -> dict[str, Any]:
    """The JSON shape of ``publication show``."""

    def iso(value: Any) -> Any:
        return value.isoformat() if value is not None else None

    return {
        "id": publication.id,
        "state": publication.state,
        "index_number": publication.index_number,
        "url": config.item_url(publication.index_number) if publication.index_number else None,
        "kind": publication.kind,
        "title": publication.title,
        "version": publication.version,
        "category": publication.category,
        "issuing_body": publication.issuing_body,
        "document_number": publication.document_number,
        "written_on": iso(publication.written_on),
        "subject": publication.subject,
        "keywords": list(publication.keywords or []),
        "summary": publication.summary,
        "validity": publication.validity,
        "channels": list(publication.channels or []),
        "publish_at": iso(publication.publish_at),
        "published_at": iso(publication.published_at),
        "urgent": publication.urgent,
        "push": publication.push,
        "review_step": publication.review_step,
        "review_steps": publication.review_steps,
        "rejection_reason": publication.rejection_reason,
        "created_at": iso(publication.created_at),
        "approved_at": iso(publication.approved_at),
        "withdrawn_at": iso(publication.withdrawn_at),
        "deliveries": [
            {
                "id": d.id,
                "channel": d.channel,
                "account": d.account,
                "action": d.action,
                "revision": d.revision,
                "state": d.state,
                "attempts": d.attempts,
                "not_before": iso(d.not_before),
                "remote_id": d.remote_id,
                "remote_url": d.remote_url,
                "last_error": d.last_error,
            }
            for d in deliveries
        ],
    }


def format_show(report: dict[str, Any]) -> str:
    """A readable rendering of ``publication show``."""
    lines = [
        f"Publication {report['id']}: {report['title']}",
        f"  state:         {report['state']}"
        f" (review step {report['review_step']}/{report['review_steps']})",
        f"  index number:  {report['index_number'] or '-'}",
        f"  kind:          {report['kind']}   category: {report['category']}",
        f"  issuing body:  {report['issuing_body']}",
        f"  publish at:    {report['published_at'] or report['publish_at'] or 'when approved'}",
        f"  channels:      {', '.join(report['channels'])}",
    ]
    if report["rejection_reason"]:
        lines.append(f"  rejected:      {report['rejection_reason']}")
    lines.append("  deliveries:")
    if not report["deliveries"]:
        lines.append("    (none yet)")
    for d in report["deliveries"]:
        target = f"{d['channel']}:{d['account']}"
        lines.append(
            f"    {target:<16} {d['action']:<8} {d['state']:<10} attempts={d['attempts']}"
            f" remote={d['remote_id'] or '-'} url={d['remote_url'] or '-'}"
            + (f" error={d['last_error']}" if d["last_error"] else "")
        )
    return "\n".join(lines)
