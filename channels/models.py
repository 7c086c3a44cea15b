"""Tables the channels own: the website's published entries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base, utcnow


class WebsiteEntry(Base):
    """A publication as it stands on the disclosure platform (the website channel's record)."""

    __tablename__ = "website_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), unique=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    index_number: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(16), default="live")  # live | withdrawn
    revision: Mapped[int] = mapped_column(Integer, default=1)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
