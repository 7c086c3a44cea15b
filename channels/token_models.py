"""Tables of the social channels: the shared access-token cache with its refresh budget,
and the WeChat uploads and submissions that make retries and reconciliation cheap."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base, utcnow


class ChannelToken(Base):
    """One platform app's access token, shared by every process of the deployment.

    The row is also the single-flight lock: a process that wants to refresh takes a short
    lease on it (``refreshing_until``) inside a locked transaction, fetches outside it, and
    writes the result back. ``fetch_day``/``fetches`` is the per-day refresh budget.
    """

    __tablename__ = "channel_tokens"
    __table_args__ = (UniqueConstraint("platform", "app_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    app_id: Mapped[str] = mapped_column(String(64))
    access_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    refresh_after: Mapped[datetime | None] = mapped_column(nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    refreshing_until: Mapped[datetime | None] = mapped_column(nullable=True)
    refreshing_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fetch_day: Mapped[str] = mapped_column(String(10), default="")
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    forced: Mapped[int] = mapped_column(Integer, default=0)
    last_forced_at: Mapped[datetime | None] = mapped_column(nullable=True)
    total_fetches: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatUpload(Base):
    """Something already handed to WeChat, so that retries reuse it: an image re-hosted
    (``uploadimg`` URL or permanent material id), or a push's own draft (its media_id,
    keyed by a digest of the push's clientmsgid)."""

    __tablename__ = "wechat_uploads"
    __table_args__ = (UniqueConstraint("app_id", "sha256", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    # "content" (uploadimg) | "cover" (material) | "push_draft" (draft/add for a mass send)
    kind: Mapped[str] = mapped_column(String(16))
    remote: Mapped[str] = mapped_column(Text)  # the mmbiz URL or the media_id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatSubmission(Base):
    """A draft handed to ``freepublish/submit`` for one publication on one account.

    Written right after the submit answers, so that a worker that dies before recording
    its receipt can be reconciled from the publish_id even while the platform is still
    publishing (the article is not yet in ``freepublish/batchget``).
    """

    __tablename__ = "wechat_submissions"
    __table_args__ = (UniqueConstraint("publication_id", "account", "revision"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    account: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    media_id: Mapped[str] = mapped_column(String(128))
    publish_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    msg_data_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
