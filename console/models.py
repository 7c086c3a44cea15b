"""Tables the console owns: staff sessions, API tokens, idempotency keys, rate buckets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base, JSONType, utcnow


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is kept."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8), default="zh")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()  # absolute limit
    origin: Mapped[str] = mapped_column(String(100), default="")
    # Messages to show on the next page ("flash"), as [level, text] pairs.
    flash: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class ApiToken(Base):
    """A personal access token of one staff member, with scopes. Only a hash is stored."""

    __tablename__ = "console_api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell tokens apart
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class IdempotencyKey(Base):
    """The stored response of one create request, replayed when the key is sent again."""

    __tablename__ = "console_idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("console_api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateBucket(Base):
    """A fixed-window counter (login attempts per address, API calls per token)."""

    __tablename__ = "console_rate_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=0)


class PasswordReset(Base):
    """An account whose password an admin reset: its holder must choose a new one at the
    next sign-in (done once ``users.password_changed_at`` is later than ``reset_at``)."""

    __tablename__ = "console_password_resets"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    reset_at: Mapped[datetime] = mapped_column(default=utcnow)
    reset_by: Mapped[str] = mapped_column(String(64), default="")


class WechatMenu(Base):
    """The custom menu of one WeChat account as edited in the console; until one is saved,
    the menu comes from ``[bot.menu]``. ``button`` is the ``menu/create`` payload's list."""

    __tablename__ = "console_wechat_menus"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    button: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    pushed_at: Mapped[datetime | None] = mapped_column()
    # The platform's answer to the last push: "" (never), "ok", or its error.
    push_result: Mapped[str] = mapped_column(String(500), default="")
