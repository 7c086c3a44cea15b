"""Weibo comments on our posts (and mentions in comments) polled into cases.

Each comment becomes at most one case: the case's unique ``remote_id``
(``weibo:<account>:<comment id>``) makes a repeated poll after a restart a no-op, and the
per-account cursor only moves forward after the cases are committed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.cases import service
from bot.cases.delivery import ApiLookup
from bot.cases.models import Case, CaseState, WeiboCursor
from publisher import audit
from publisher.db import Database
from publisher.orm import utcnow

log = logging.getLogger("govcast.bot.cases")

MIN_TEXT = 5
_MENTION = re.compile(r"@[\w\-\u4e00-\u9fa5]{1,30}")
_REPLY_PREFIX = re.compile(r"^回复@[^:：]{1,30}[:：]")


def comment_text(raw: str) -> str:
    """The citizen's words: reply prefixes and @mentions removed, whitespace trimmed."""
    return _MENTION.sub("", _REPLY_PREFIX.sub("", raw or "")).strip()


def parse_comments(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """Well-formed comments of a ``comments/to_me`` answer, oldest first (pure).

    Anything malformed (missing ids, non-numeric ids, no text) is skipped, never fatal.
    """
    found: list[dict[str, str]] = []
    comments = data.get("comments")
    if not isinstance(comments, list):
        return found
    for item in comments[:500]:
        if not isinstance(item, Mapping):
            continue
        cid = str(item.get("idstr") or item.get("id") or "")
        status = item.get("status")
        status_id = (
            str(status.get("idstr") or status.get("id") or "")
            if isinstance(status, Mapping)
            else ""
        )
        user = item.get("user")
        uid = str(user.get("idstr") or user.get("id") or "") if isinstance(user, Mapping) else ""
        text = item.get("text")
        if not (cid.isdigit() and status_id.isdigit() and isinstance(text, str)):
            continue
        found.append(
            {
                "id": cid,
                "status_id": status_id,
                "user": uid[:64],
                "text": comment_text(text)[: service.MAX_TEXT],
            }
        )
    found.sort(key=lambda c: int(c["id"]))
    return found


async def poll_account(
    db: Database,
    rules: service.CaseRules,
    apis: ApiLookup,
    account: str,
    office_key: str,
    *,
    now: datetime | None = None,
    answer: Callable[[str], Awaitable[str | None]] | None = None,
) -> int:
    """Turn new comments on one account's posts into cases; returns how many were new.

    ``answer`` looks a comment up in the keyword rules (as WeChat does): a match is
    answered at once through the same exactly-once outbox, and the case is recorded as
    replied automatically."""
    now = now or utcnow()
    async with db.sessions() as session:
        cursor = await session.get(WeiboCursor, account)
        since = cursor.since_id if cursor else "0"
    data = await apis("weibo", account).comments_to_me(since_id=since, count=100)
    comments = [c for c in parse_comments(data) if int(c["id"]) > int(since)]
    # Keyword answers are looked up before the write transaction: on SQLite a second
    # connection inside it would wait for the write lock this one holds.
    answers: dict[str, str | None] = {}
    for comment in comments:
        if answer is not None and len(comment["text"]) >= MIN_TEXT:
            answers[comment["id"]] = await answer(comment["text"])
    created = 0
    async with db.transaction() as session:
        calendar = await service.load_calendar(session)
        office_id = await service.office_id_by_key(session, office_key)
        remote_ids = [f"weibo:{account}:{c['id']}" for c in comments]
        existing = (
            set(
                (
                    await session.execute(
                        select(Case.remote_id).where(Case.remote_id.in_(remote_ids))
                    )
                ).scalars()
            )
            if remote_ids
            else set()
        )
        for comment, remote_id in zip(comments, remote_ids, strict=True):
            if remote_id in existing or len(comment["text"]) < MIN_TEXT:
                continue
            case, _secret = await service.receive(
                session,
                rules,
                calendar,
                office_id,
                service.NewCase(
                    kind="consultation",
                    channel="weibo",
                    text=comment["text"],
                    account=account,
                    sender=comment["user"],
                    remote_id=remote_id,
                    reply_address={"comment_id": comment["id"], "status_id": comment["status_id"]},
                ),
                now=now,
            )
            created += 1
            auto = answers.get(comment["id"])
            if auto:
                case.state, case.reply_text, case.replied_at = (CaseState.REPLIED.value, auto, now)
                service.enqueue_message(session, case, "reply", auto, now)
                audit.record(
                    session,
                    audit.Actor.system("keyword-rules"),
                    "case.auto_reply",
                    "case",
                    case.id,
                    office_id=case.office_id,
                    number=case.number,
                )
        row = await session.get(WeiboCursor, account)
        newest = max([int(since), *(int(c["id"]) for c in comments)])
        if row is None:
            session.add(WeiboCursor(account=account, since_id=str(newest), polled_at=now))
        else:
            row.since_id, row.polled_at = str(newest), now
    if created:
        log.info("weibo comments became cases", extra={"account": account, "cases": created})
    return created
