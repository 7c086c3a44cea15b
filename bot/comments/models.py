"""Tables of the comments inbox: one thread per published article/post (with its cursor),
the comments collected from WeChat and Weibo, and the reply outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId, StrEnum
from publisher.orm import Base, utcnow


class CommentState(StrEnum):
    NEW = "new"
    ANSWERED = "answered"
    FEATURED = "featured"
    HIDDEN = "hidden"
    CASE = "case"


class CommentThread(Base):
    """The comments under one published article (WeChat) or post (Weibo), with the cursor
    of what has been collected so far."""

    __tablename__ = "comment_threads"
    __table_args__ = (
        UniqueConstraint("platform", "account", "target"),
        CheckConstraint("platform IN ('wechat', 'weibo')", name="platform_valid"),
        Index("ix_comment_threads_due", "published_at", "next_poll_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    # WeChat: "<msg_data_id>:<index>"; Weibo: the post id.
    target: Mapped[str] = mapped_column(String(80))
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    # WeChat: comments read so far (the next ``begin``); Weibo: the newest comment id below
    # which everything has been read (the next ``since_id``).
    cursor: Mapped[str] = mapped_column(String(40), default="0")
    # Weibo, while a burst is read backwards over several polls: "<newest id of the burst>:
    # <oldest id read so far>"; the cursor moves to the newest id once the gap is closed.
    backfill: Mapped[str | None] = mapped_column(String(80))
    polls: Mapped[int] = mapped_column(Integer, default=0)
    last_polled_at: Mapped[datetime | None] = mapped_column()
    next_poll_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))


class Comment(Base):
    """One follower's comment, stored once (platform + account + remote id)."""

    __tablename__ = "comments"
    __table_args__ = (
        UniqueConstraint("platform", "account", "remote_id"),
        CheckConstraint(
            "state IN ('new', 'answered', 'featured', 'hidden', 'case')", name="state_valid"
        ),
        Index("ix_comments_inbox", "state", "remote_created_at"),
        Index("ix_comments_publication", "publication_id", "platform"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("comment_threads.id"), index=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"))
    platform: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    remote_id: Mapped[str] = mapped_column(String(40))
    # Personal data: the follower's OpenID / Weibo uid and screen name. Never logged.
    author_id: Mapped[str] = mapped_column(String(128), default="")
    author_name: Mapped[str] = mapped_column(String(100), default="")
    text: Mapped[str] = mapped_column(Text)
    remote_created_at: Mapped[datetime] = mapped_column(default=utcnow)
    collected_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=CommentState.NEW.value)
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_text: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column()
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommentReply(Base):
    """The reply outbox: at most one reply per comment, sent exactly once.

    ``unknown`` marks an attempt whose outcome was not seen (timeout, 5xx); the next attempt
    first re-reads the platform to learn whether the reply is already there.
    """

    __tablename__ = "comment_replies"
    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'sending', 'done', 'failed')", name="reply_state_valid"
        ),
        Index("ix_comment_replies_due", "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    comment_id: Mapped[int] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), unique=True
    )
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    unknown: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    remote_id: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(String(500))
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
