"""The website channel: the office's own disclosure platform, served by this application.

Publishing writes the catalog entry in the same database; the pages themselves are
rendered by the website package from that entry. ``find`` is a lookup in the same table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import DeliveryContext, PermanentError, Receipt, Rendition
from channels.models import WebsiteEntry
from publisher.db import Database
from publisher.markup import html_to_text
from publisher.models import Publication
from publisher.orm import utcnow
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot
from website.search import IndexInput, index_document, remove_document

log = logging.getLogger("govcast.website")
ChangeHook = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class WebsiteRendition(Rendition):
    """The catalog entry to write."""

    index_number: str = ""
    url: str = ""
    office_id: int = 0
    # What the search index needs, written in the same transaction as the entry.
    title: str = ""
    kind: str = ""
    category: str = ""
    published_at: datetime | None = None
    body_text: str = ""
    metadata: tuple[str, ...] = ()
    genre: str | None = None

    def index_input(self, column_key: str | None = None) -> IndexInput:
        """This rendition as a search-index document."""
        return IndexInput(
            column_key=column_key,
            genre=self.genre,
            publication_id=self.publication_id,
            index_number=self.index_number,
            url=self.url,
            title=self.title,
            kind=self.kind,
            category=self.category,
            published_at=self.published_at or utcnow(),
            body_text=self.body_text,
            metadata=self.metadata,
        )


_IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT_RE = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_SRC_RE = re.compile(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def images_without_alt(body_html: str) -> list[str]:
    """Pure: the sources of images whose alt text is missing or blank."""
    missing = []
    for tag in _IMG_RE.findall(body_html):
        alt = _ALT_RE.search(tag)
        if alt is None or not "".join(g or "" for g in alt.groups()).strip():
            src = _SRC_RE.search(tag)
            missing.append("".join(g or "" for g in src.groups())[:200] if src else "?")
    return missing


async def _column_key(session: AsyncSession, publication_id: int) -> str | None:
    # The snapshot does not carry the site column; the row is at hand in this transaction.
    return (
        await session.execute(
            select(Publication.column_key).where(Publication.id == publication_id)
        )
    ).scalar_one_or_none()


class WebsiteChannel:
    """The disclosure catalog on the government website."""

    name: ClassVar[str] = "website"
    title: ClassVar[str] = "政府网站"
    supports_retract: ClassVar[bool] = True
    supports_update: ClassVar[bool] = True
    supports_push: ClassVar[bool] = False

    def __init__(self, db: Database, on_change: ChangeHook | None = None) -> None:
        self.db = db
        # Called after a committed change, e.g. to rewrite the static export's pages.
        self.on_change = on_change

    async def _after_change(self, publication_id: int) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change(publication_id)
        except Exception:  # the entry is committed; a stale static page is repaired later
            log.exception("static export update failed", extra={"publication_id": publication_id})

    def accounts(self) -> Sequence[str]:
        """The website has one "account": the site itself."""
        return ("main",)

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        """The office's own site has no rate limit."""
        return ()

    def render(self, publication: PublicationSnapshot, account: str) -> WebsiteRendition:
        """The item page's core: title, metadata line and the sanitized body."""
        missing = images_without_alt(publication.body_html) + images_without_alt(
            publication.body_html_en or ""
        )
        preview = (
            f"<article><h1>{escape(publication.title)}</h1>"
            f"<p>{escape(publication.issuing_body)} · {publication.published_at:%Y-%m-%d}</p>"
            f"{publication.body_html}</article>"
        )
        return WebsiteRendition(
            channel=self.name,
            account=account,
            publication_id=publication.id,
            preview_html=preview,
            index_number=publication.index_number,
            url=publication.url,
            office_id=publication.office_id,
            notes=tuple(f"image without alt text: {src}" for src in missing),
            title=publication.title,
            kind=publication.kind,
            category=publication.category,
            published_at=publication.published_at,
            body_text=html_to_text(publication.body_html),
            genre=publication.genre,
            metadata=tuple(
                x
                for x in (
                    publication.document_number,
                    publication.issuing_body,
                    publication.subject,
                    publication.genre,
                    publication.title_en,
                    *publication.keywords,
                )
                if x
            ),
        )

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Put the item in the catalog (or bring a withdrawn entry back)."""
        assert isinstance(rendition, WebsiteRendition)
        if any(note.startswith("image without alt text") for note in rendition.notes):
            # GB/T 37668: every image on the platform needs a text alternative.
            raise PermanentError("; ".join(rendition.notes)[:500])
        now = utcnow()
        async with self.db.transaction() as session:
            entry = (
                await session.execute(
                    select(WebsiteEntry).where(WebsiteEntry.publication_id == ctx.publication_id)
                )
            ).scalar_one_or_none()
            if entry is None:
                session.add(
                    WebsiteEntry(
                        publication_id=ctx.publication_id,
                        office_id=rendition.office_id,
                        index_number=rendition.index_number,
                        url=rendition.url,
                        state="live",
                        published_at=now,
                        updated_at=now,
                    )
                )
            else:
                entry.state = "live"
                entry.updated_at = now
            await index_document(
                session, rendition.index_input(await _column_key(session, ctx.publication_id))
            )
        await self._after_change(rendition.publication_id)
        return Receipt(remote_id=rendition.index_number, remote_url=rendition.url)

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        """The live catalog entry, if the publish already happened."""
        async with self.db.sessions() as session:
            entry = (
                await session.execute(
                    select(WebsiteEntry).where(WebsiteEntry.publication_id == publication.id)
                )
            ).scalar_one_or_none()
        if entry is None or entry.state != "live":
            return None
        if ctx.action == "update" and entry.revision < ctx.revision:
            return None
        return Receipt(remote_id=entry.index_number, remote_url=entry.url)

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        """Take the item off the catalog (idempotent)."""
        async with self.db.transaction() as session:
            entry = (
                await session.execute(
                    select(WebsiteEntry).where(WebsiteEntry.publication_id == publication.id)
                )
            ).scalar_one_or_none()
            if entry is not None:
                entry.state = "withdrawn"
                entry.updated_at = utcnow()
            await remove_document(session, publication.id)
        await self._after_change(publication.id)
        return Receipt(remote_id=publication.index_number, remote_url=publication.url)

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Record the corrected revision; pages render from the publication itself."""
        assert isinstance(rendition, WebsiteRendition)
        async with self.db.transaction() as session:
            entry = (
                await session.execute(
                    select(WebsiteEntry).where(WebsiteEntry.publication_id == ctx.publication_id)
                )
            ).scalar_one_or_none()
            if entry is None:
                raise PermanentError("correction of an item that is not on the website")
            entry.revision = max(entry.revision, ctx.revision)
            entry.updated_at = utcnow()
            if entry.state == "live":
                await index_document(
                    session, rendition.index_input(await _column_key(session, ctx.publication_id))
                )
        await self._after_change(rendition.publication_id)
        return Receipt(remote_id=rendition.index_number, remote_url=rendition.url)

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """The website has no followers to push to."""
        raise PermanentError("the website channel does not push")
