"""A frozen view of a publication as the channels see it: no database session attached."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path


@dataclass(frozen=True)
class MediaRef:
    """An image or attachment in the media store."""

    media_id: int
    filename: str
    content_type: str
    path: Path
    url: str
    alt: str = ""
    size: int = 0


@dataclass(frozen=True)
class PublicationSnapshot:
    """Everything a channel needs to render and deliver one publication version."""

    id: int
    office_id: int
    office_key: str
    office_name: str
    index_number: str
    kind: str
    version: int
    title: str
    body_html: str
    summary: str
    category: str
    issuing_body: str
    url: str
    published_at: datetime
    document_number: str | None = None
    written_on: date | None = None
    subject: str | None = None
    genre: str | None = None
    keywords: tuple[str, ...] = ()
    validity: str = "in_force"
    title_en: str | None = None
    body_html_en: str | None = None
    urgent: bool = False
    push: bool = False
    images: tuple[MediaRef, ...] = field(default_factory=tuple)
    attachments: tuple[MediaRef, ...] = field(default_factory=tuple)
    author: str = ""
