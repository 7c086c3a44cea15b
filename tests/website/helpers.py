"""Helpers for website tests: publish items straight into the catalog and the index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from channels.models import WebsiteEntry
from publisher.db import Database
from publisher.markup import sanitize_html
from publisher.models import Office, Publication
from website.search import IndexInput, index_document

ORG = "11340000MB0000000X"


async def add_item(
    db: Database,
    serial: int,
    *,
    title: str,
    body: str = "",
    category: str = "service",
    kind: str = "disclosure",
    published_at: datetime | None = None,
    document_number: str | None = None,
    state: str = "live",
    **extra: Any,
) -> Publication:
    """A published publication with a live website entry and a search-index row."""
    when = published_at or datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    index_number = extra.pop("index_number", f"{ORG}/{when:%Y%m}-{serial:05d}")
    async with db.transaction() as session:
        office = (await session.execute(select(Office).where(Office.key == "main"))).scalar_one()
        pub = Publication(
            office_id=office.id,
            index_number=index_number,
            kind=kind,
            state="published" if state == "live" else "withdrawn",
            title=title,
            # As every real publication: through the sanitizer at input.
            body_html=sanitize_html(f"<p>{body}</p>" if body else "<p>正文</p>"),
            summary=body[:100],
            category=category,
            issuing_body=extra.pop("issuing_body", "示例市人民政府办公室"),
            document_number=document_number,
            channels=["website"],
            published_at=when,
            **extra,
        )
        session.add(pub)
        await session.flush()
        url = f"http://127.0.0.1:8080/disclosure/{index_number}"
        session.add(
            WebsiteEntry(
                publication_id=pub.id,
                office_id=office.id,
                index_number=index_number,
                url=url,
                state=state,
                published_at=when,
                updated_at=when,
            )
        )
        if state == "live":
            await index_document(
                session,
                IndexInput(
                    publication_id=pub.id,
                    index_number=index_number,
                    url=url,
                    title=title,
                    kind=kind,
                    category=category,
                    published_at=when,
                    body_text=body,
                    metadata=tuple(x for x in (document_number, pub.issuing_body) if x),
                    column_key=pub.column_key,
                    genre=pub.genre,
                ),
            )
    return pub
