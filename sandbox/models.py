"""The sandbox platforms' own state: tokens, quotas, media, drafts, publishes, mass sends,
menus, citizens' conversations, Weibo posts and comments. Every table is ``sandbox_*``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base


class SandboxToken(Base):
    """An access_token the WeChat stand-in issued (``kind``: token or stable)."""

    __tablename__ = "sandbox_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(160), unique=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Set when a newer token replaced this one (it then lives at most 5 more minutes).
    superseded_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_sandbox_tokens_account_kind", "account", "kind"),)


class SandboxCounter(Base):
    """A quota counter: (scope, name, period) -> count."""

    __tablename__ = "sandbox_counters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("scope", "name", "period"),)


class SandboxMedia(Base):
    """An uploaded image: ``uploadimg`` (served by URL) or permanent material."""

    __tablename__ = "sandbox_media"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    media_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class SandboxDraft(Base):
    """A draft in the WeChat draft box; ``articles`` is the stored news_item list."""

    __tablename__ = "sandbox_drafts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    media_id: Mapped[str] = mapped_column(String(64), unique=True)
    articles: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SandboxPublish(Base):
    """A ``freepublish/submit`` job and, once it succeeded, the published article."""

    __tablename__ = "sandbox_publishes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    publish_id: Mapped[str] = mapped_column(String(32), unique=True)
    msg_data_id: Mapped[str] = mapped_column(String(32), unique=True)
    article_id: Mapped[str] = mapped_column(String(64), unique=True)
    media_id: Mapped[str] = mapped_column(String(64))
    articles: Mapped[dict[str, Any]]
    # 0 success, 1 publishing, 2 originality failed, 3 failed, 4 rejected, 5 deleted, 6 banned
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime]
    finish_at: Mapped[datetime]
    event_sent: Mapped[bool] = mapped_column(Boolean, default=False)


class SandboxMassSend(Base):
    """A ``message/mass/sendall`` job."""

    __tablename__ = "sandbox_mass_sends"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    msg_id: Mapped[str] = mapped_column(String(32), unique=True)
    msg_data_id: Mapped[str] = mapped_column(String(32))
    clientmsgid: Mapped[str | None] = mapped_column(String(64))
    media_id: Mapped[str] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer)
    filtered: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime]
    finish_at: Mapped[datetime]
    event_sent: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("account", "clientmsgid"),)


class SandboxMenu(Base):
    """The account's custom menu as last created."""

    __tablename__ = "sandbox_menus"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    menu: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class SandboxMessage(Base):
    """One line of a citizen's conversation with an account (``direction``: in/out)."""

    __tablename__ = "sandbox_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    openid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    # text, event, reply, custom, template, failure, mass
    kind: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    msg_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_sandbox_messages_account_openid", "account", "openid", "id"),)


class SandboxWeiboStatus(Base):
    """A post on the Weibo stand-in."""

    __tablename__ = "sandbox_weibo_statuses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    pic_media_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class SandboxComment(Base):
    """A comment: under a Weibo post or a WeChat article (留言), by a follower or us."""

    __tablename__ = "sandbox_comments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(8))
    account: Mapped[str] = mapped_column(String(64))
    # Weibo: the status id; WeChat: "<msg_data_id>:<index>".
    target: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    by_account: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[int | None] = mapped_column(BigId)
    # WeChat: 1 when featured (精选); the account's reply and its time.
    elected: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_sandbox_comments_target", "platform", "account", "target"),)


class SandboxCommentSwitch(Base):
    """Whether comments are open on one WeChat article (msg_data_id + index)."""

    __tablename__ = "sandbox_comment_switches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    open: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("account", "target"),)
