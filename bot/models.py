"""Tables of the bot: inbound dedup records with their replies, keyword rules, followers,
and replies delivered after the callback answered.

OpenIDs are personal data: rows holding them are deleted after ``[bot] retention_days``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models import BigId
from publisher.orm import Base, JSONType, utcnow


class InboundMessageRecord(Base):
    """One citizen push, claimed once: WeChat's retries find the row and get its reply.

    Written by raw SQL on the hot path (group-committed INSERT ... ON CONFLICT DO NOTHING),
    hence the integer epoch timestamp. On PostgreSQL the table has ``fillfactor = 20``
    (migration bot_0004): each row is updated once with its reply, and the room left on
    its page keeps that update HOT. Every index here costs each push: add none lightly.
    """

    __tablename__ = "bot_inbound"
    # PostgreSQL: BRIN for the hourly retention purge's range over an append-only column.
    __table_args__ = (Index("ix_bot_inbound_received_ts", "received_ts", postgresql_using="brin"),)

    # The dedup key is the primary key: every statement finds the row by it.
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    openid: Mapped[str] = mapped_column(String(128))
    msg_type: Mapped[str] = mapped_column(String(32))
    received_ts: Mapped[int] = mapped_column(BigInteger)
    # handling -> done (reply holds the passive reply XML, or "success")
    #          | deferred (answered "success"; see DeferredPush) -> late_done (reply recorded)
    state: Mapped[str] = mapped_column(String(12), default="handling")
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The process handling it (see migration bot_0002): a retry that finds the push still
    # "handling" takes it over when this process is dead, instead of answering nothing.
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)


class DeferredPush(Base):
    """A push answered ``success`` past the budget whose late reply is not recorded yet.

    Kept with its parsed fields so that another process handles it again if its owner
    dies (``BotService.recover``); deleted with the recording of its late reply. Small:
    only the pushes being handled late at this moment.
    """

    __tablename__ = "bot_deferred_pushes"
    __table_args__ = (
        UniqueConstraint("account", "dedup_key"),
        Index("ix_bot_deferred_pushes_received_ts", "received_ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(300))
    # The process handling it (see bot_inbound.owner): alive while its lock is held.
    owner: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(Text)  # the push's parsed fields, JSON
    received_ts: Mapped[int] = mapped_column(BigInteger)


class KeywordRule(Base):
    """A staff-managed auto-reply: the WeChat console's own stops once a callback is set."""

    __tablename__ = "bot_keyword_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Empty: every account.
    account: Mapped[str] = mapped_column(String(64), default="")
    match: Mapped[str] = mapped_column(String(12))  # exact | contains | regex
    pattern: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    valid_from: Mapped[datetime | None] = mapped_column(nullable=True)
    valid_to: Mapped[datetime | None] = mapped_column(nullable=True)
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # [{title, url, description, picurl}], 1-8 items
    reply_news: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Follower(Base):
    """A citizen seen subscribing or unsubscribing (personal data)."""

    __tablename__ = "bot_followers"
    __table_args__ = (UniqueConstraint("account", "openid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    openid: Mapped[str] = mapped_column(String(128))
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    subscribed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class DeferredReply(Base):
    """A reply that missed the callback's budget, delivered afterwards.

    States: ``pending`` (to send), ``sent``, ``failed`` (gave up; last_error says why),
    ``waiting_channel`` (no WeChat API client in this deployment yet).
    """

    __tablename__ = "bot_deferred_replies"
    __table_args__ = (
        UniqueConstraint("account", "dedup_key"),
        Index("ix_bot_deferred_replies_state", "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(300))
    openid: Mapped[str] = mapped_column(String(128))
    reply: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # When the citizen last wrote: the customer-service window is 48 h from it.
    last_inbound_at: Mapped[datetime] = mapped_column()
    state: Mapped[str] = mapped_column(String(16), default="pending")
    via: Mapped[str] = mapped_column(String(16), default="")  # custom | template
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The process of the attempt in flight (state "sending"; bot_0003): on PostgreSQL a
    # dead one's attempt is taken over at once rather than after the lease.
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
