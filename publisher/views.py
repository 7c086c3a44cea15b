"""Read-side helpers: publication snapshots for the channels and summaries for staff."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.config import CoreConfig
from publisher.db import Database
from publisher.errors import NotFound
from publisher.media import MediaStore
from publisher.models import Delivery, Media, Office, Publication, PublicationMedia
from publisher.orm import utcnow
from publisher.snapshot import MediaRef, PublicationSnapshot


def media_url(config: CoreConfig, media: Media) -> str:
    """Public address of a stored file."""
    return f"{config.website_base_url.rstrip('/')}/media/{media.sha256}/{media.filename}"


async def snapshot_of(
    session: AsyncSession, config: CoreConfig, store: MediaStore, publication_id: int
) -> PublicationSnapshot:
    """A frozen snapshot of the publication as it stands now."""
    found = await snapshots_of(session, config, store, [publication_id])
    if publication_id not in found:
        raise NotFound(f"no publication {publication_id}")
    return found[publication_id]


async def snapshots_of(
    session: AsyncSession, config: CoreConfig, store: MediaStore, publication_ids: Sequence[int]
) -> dict[int, PublicationSnapshot]:
    """Snapshots of several publications in three queries; missing ids are left out."""
    ids = sorted(set(publication_ids))
    publications = list(
        (await session.execute(select(Publication).where(Publication.id.in_(ids)))).scalars()
    )
    if not publications:
        return {}
    office_ids = {p.office_id for p in publications}
    offices = {
        o.id: o
        for o in (await session.execute(select(Office).where(Office.id.in_(office_ids)))).scalars()
    }
    rows = (
        await session.execute(
            select(PublicationMedia, Media)
            .join(Media, Media.id == PublicationMedia.media_id)
            .where(PublicationMedia.publication_id.in_(ids))
            .order_by(PublicationMedia.publication_id, PublicationMedia.position)
        )
    ).all()
    images: dict[int, list[MediaRef]] = {}
    attachments: dict[int, list[MediaRef]] = {}
    for link, media in rows:
        ref = MediaRef(
            media_id=media.id,
            filename=media.filename,
            content_type=media.content_type,
            path=store.path_of(media.sha256),
            url=media_url(config, media),
            alt=link.alt,
            size=media.size,
        )
        group = images if link.role == "image" else attachments
        group.setdefault(link.publication_id, []).append(ref)
    return {
        p.id: _snapshot(
            config,
            p,
            offices[p.office_id],
            images.get(p.id, []),
            attachments.get(p.id, []),
        )
        for p in publications
    }


def _snapshot(
    config: CoreConfig,
    publication: Publication,
    office: Office,
    images: list[MediaRef],
    attachments: list[MediaRef],
) -> PublicationSnapshot:
    index_number = publication.index_number or f"draft-{publication.id}"
    return PublicationSnapshot(
        id=publication.id,
        office_id=office.id,
        office_key=office.key,
        office_name=office.name,
        index_number=index_number,
        kind=publication.kind,
        version=publication.version,
        title=publication.title,
        body_html=publication.body_html,
        summary=publication.summary,
        category=publication.category,
        issuing_body=publication.issuing_body,
        url=config.item_url(index_number),
        published_at=publication.published_at or publication.publish_at or utcnow(),
        document_number=publication.document_number,
        written_on=publication.written_on,
        subject=publication.subject,
        genre=publication.genre,
        keywords=tuple(publication.keywords or ()),
        validity=publication.validity,
        title_en=publication.title_en,
        body_html_en=publication.body_html_en,
        urgent=publication.urgent,
        push=publication.push,
        images=tuple(images),
        attachments=tuple(attachments),
        author=publication.author_label,
    )


def snapshot_loader(db: Database, config: CoreConfig, store: MediaStore) -> Any:
    """A worker's snapshot loader bound to this deployment: ids in, snapshots by id out."""

    async def load(publication_ids: Sequence[int]) -> dict[int, PublicationSnapshot]:
        async with db.read_sessions() as session:
            return await snapshots_of(session, config, store, publication_ids)

    return load


async def deliveries_of(session: AsyncSession, publication_id: int) -> list[Delivery]:
    """A publication's deliveries, in the order they were written."""
    result = await session.execute(
        select(Delivery).where(Delivery.publication_id == publication_id).order_by(Delivery.id)
    )
    return list(result.scalars())
