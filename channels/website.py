"""The website channel: the office's own disclosure platform, served by this application.

Publishing writes the catalog entry in the same database; the pages themselves are
rendered by the website package from that entry. ``find`` is a lookup in the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, ClassVar

from sqlalchemy import select

from channels.base import DeliveryContext, PermanentError, Receipt, Rendition
from channels.models import WebsiteEntry
from publisher.db import Database
from publisher.orm import utcnow
from publisher.queue import RateLimit
from publisher.snapshot import PublicationSnapshot


@dataclass(frozen=True)
class WebsiteRendition(Rendition):
    """The catalog entry to write."""

    index_number: str = ""
    url: str = ""
    office_id: int = 0


class WebsiteChannel:
    """The disclosure catalog on the government website."""

    name: ClassVar[str] = "website"
    title: ClassVar[str] = "政府网站"
    supports_retract: ClassVar[bool] = True
    supports_update: ClassVar[bool] = True
    supports_push: ClassVar[bool] = False

    def __init__(self, db: Database) -> None:
        self.db = db

    def accounts(self) -> Sequence[str]:
        """The website has one "account": the site itself."""
        return ("main",)

    def rate_limits_for(self, account: str) -> Sequence[RateLimit]:
        """The office's own site has no rate limit."""
        return ()

    def render(self, publication: PublicationSnapshot, account: str) -> WebsiteRendition:
        """The item page's core: title, metadata line and the sanitized body."""
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
        )

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Put the item in the catalog (or bring a withdrawn entry back)."""
        assert isinstance(rendition, WebsiteRendition)
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
        return Receipt(remote_id=rendition.index_number, remote_url=rendition.url)

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """The website has no followers to push to."""
        raise PermanentError("the website channel does not push")
