"""Weibo comments on our posts (and mentions in comments) polled into answers or cases.

Each comment is decided once, by this poller alone (the comments inbox collector leaves
Weibo's automatic answers to it):

- a keyword rule or a published item answers it and the office lets that answer go out
  without a person (``[comments] auto_answer_rules``, ``[comments] weibo_search_answers``):
  a Weibo comment reply is put in the comments inbox's reply outbox, which posts it exactly
  once (claimed row, reconciled against ``comments/show`` after an unknown outcome), and no
  case is opened;
- otherwise it becomes a case, as before, with any rule or search answer noted on the case
  as a suggestion for staff.

The decision is committed in one transaction with the unique keys that make it stick: the
inbox comment (platform, account, remote id) with its one reply row, or the case's
``remote_id`` (``weibo:<account>:<comment id>``). A repeated poll after a restart, or a
second poller, finds them and does nothing; the per-account cursor moves only with them.
Automatic replies need the post's inbox thread (posts govcast published); comments under
other posts always become cases.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases import service
from bot.cases.delivery import ApiLookup
from bot.cases.models import Case, WeiboCursor
from bot.comments import service as inbox
from bot.comments.answers import Answer, Answerer
from bot.comments.models import Comment, CommentReply, CommentThread
from publisher import audit
from publisher.db import Database
from publisher.orm import utcnow

log = logging.getLogger("govcast.bot.cases")

MIN_TEXT = 5
PAGE = 100
MAX_PAGES = 5  # parse_comments keeps at most 500 per poll
_MENTION = re.compile(r"@[\w\-\u4e00-\u9fa5]{1,30}")
_REPLY_PREFIX = re.compile(r"^回复@[^:：]{1,30}[:：]")


def comment_text(raw: str) -> str:
    """The citizen's words: reply prefixes and @mentions removed, whitespace trimmed."""
    return _MENTION.sub("", _REPLY_PREFIX.sub("", inbox.clean_text(raw))).strip()


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


def _backfill_key(account: str) -> str:
    """The companion cursor row of an account's unfinished backwards read."""
    return f"{account}#backfill"


def _item_id(item: Mapping[str, Any]) -> int | None:
    cid = str(item.get("idstr") or item.get("id") or "")
    return int(cid) if cid.isdigit() and len(cid) <= 30 else None


async def _fetch(
    api: Any, since: str, gap: tuple[int, int] | None
) -> tuple[list[Mapping[str, Any]], str, str | None]:
    """New ``comments/to_me`` items since the cursor; returns them, the cursor to move to
    and the unfinished backwards read ("<newest>:<oldest read>") or None.

    Weibo lists newest first: a burst larger than one poll's pages is read backwards
    (``max_id``) over several polls, resuming below the oldest comment read, and the cursor
    moves past the burst only once the gap down to it is closed, so the oldest comments of
    a burst are never skipped.
    """
    low = int(since or 0)
    top: int | None = gap[0] if gap else None
    below: int | None = gap[1] if gap else None
    items: list[Mapping[str, Any]] = []
    closed = False
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"since_id": low, "count": PAGE}
        if below is not None:
            if below - 1 <= low:
                closed = True
                break
            params["max_id"] = below - 1
        data = await api.call("GET", "comments/to_me.json", params=params)
        raw = data.get("comments") if isinstance(data, Mapping) else None
        if not isinstance(raw, list):
            break  # garbage: the next poll resumes from what is known
        ids: list[int] = []
        for item in raw:
            cid = _item_id(item) if isinstance(item, Mapping) else None
            if cid is not None and cid > low and (below is None or cid < below):
                ids.append(cid)
                items.append(item)
        if ids:
            top = max(ids) if top is None else top
            below = min(ids)
        if len(raw) < PAGE or not ids:
            closed = True
            break
    if closed:
        return items, str(max(low, top or 0)), None
    log.info(
        "weibo comments beyond one poll's pages: resumed next poll", extra={"pages": MAX_PAGES}
    )
    if top is None or below is None:
        return items, str(low), None
    return items, str(low), f"{top}:{below}"


async def poll_account(
    db: Database,
    rules: service.CaseRules,
    apis: ApiLookup,
    account: str,
    office_key: str,
    *,
    now: datetime | None = None,
    answers: Answerer | None = None,
) -> int:
    """Answer or open a case for each new comment on one account's posts; returns how many
    comments were newly handled (replies queued plus cases opened)."""
    now = now or utcnow()
    async with db.sessions() as session:
        cursor = await session.get(WeiboCursor, account)
        since = cursor.since_id if cursor else "0"
        gap_row = await session.get(WeiboCursor, _backfill_key(account))
        gap = inbox.parse_backfill(gap_row.since_id if gap_row else None)
    raw, advance_to, backfill = await _fetch(apis("weibo", account), since, gap)
    data = {"comments": raw}
    comments = [c for c in parse_comments(data) if int(c["id"]) > int(since)]
    remotes = {r.remote_id: r for r in inbox.parse_weibo(data)}
    # Answers are looked up before the write transaction: on SQLite a second connection
    # inside it would wait for the write lock this one holds.
    found: dict[str, Answer | None] = {}
    for comment in comments:
        if answers is not None and comment["text"] and comment["id"] in remotes:
            found[comment["id"]] = await answers.find(account, comment["text"], now)
    try:
        handled, replies = await _decide(
            db,
            rules,
            account,
            office_key,
            comments,
            remotes,
            found,
            now,
            (advance_to, backfill),
        )
    except IntegrityError:
        # Another poller committed the same comments first (unique case id, inbox comment
        # or cursor row): everything it decided stands; the next poll starts after it.
        log.warning("weibo comments decided by another poller", extra={"account": account})
        return 0
    if handled:
        log.info(
            "weibo comments handled",
            extra={"account": account, "cases": handled - replies, "replies": replies},
        )
    return handled


async def _decide(
    db: Database,
    rules: service.CaseRules,
    account: str,
    office_key: str,
    comments: list[dict[str, str]],
    remotes: Mapping[str, inbox.Remote],
    found: Mapping[str, Answer | None],
    now: datetime,
    moves: tuple[str, str | None],
) -> tuple[int, int]:
    """One transaction: each comment answered or made a case, and the cursor (with any
    unfinished backwards read) moved."""
    handled = replies = 0
    async with db.transaction() as session:
        # A post published a moment ago gets its inbox thread now, not at the next collection.
        await inbox.discover(session, now)
        calendar = await service.load_calendar(session)
        office_id = await service.office_id_by_key(session, office_key)
        threads = await _threads(session, account, {c["status_id"] for c in comments})
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
            if remote_id in existing or comment["id"] not in remotes:
                continue  # a case already, or our own account's comment
            answer = found.get(comment["id"])
            thread = threads.get(comment["status_id"])
            stored = None
            if thread is not None:
                stored = await _inbox_comment(session, thread, remotes[comment["id"]], now)
                if stored is None:
                    continue  # already answered, hidden or a case: decided before
            if answer is not None and answer.automatic and stored is not None:
                queued = await inbox.enqueue_automatic(
                    session, stored, answer.text, answer.source, now
                )
                if queued is not None:
                    handled += 1
                    replies += 1
                    continue
            if len(comment["text"]) < MIN_TEXT:
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
                    publication_id=thread.publication_id if thread is not None else None,
                ),
                now=now,
            )
            handled += 1
            if stored is not None:
                stored.case_id = case.id
                stored.updated_at = now
                stored.state = inbox.state_of(stored)
            if answer is not None:
                # Staff see what the rules or the corpus would answer; a person sends it.
                service._event(
                    session,
                    case,
                    audit.Actor.system(f"weibo-{answer.source}"),
                    "note",
                    f"建议答复 / suggested answer: {answer.text}",
                    now=now,
                )
        advance_to, backfill = moves
        row = await session.get(WeiboCursor, account)
        if row is None:
            session.add(WeiboCursor(account=account, since_id=advance_to, polled_at=now))
        else:
            row.since_id, row.polled_at = advance_to, now
        # The backwards read's state sits in a companion row of the same table.
        gap_row = await session.get(WeiboCursor, _backfill_key(account))
        if backfill is not None and gap_row is None:
            session.add(
                WeiboCursor(account=_backfill_key(account), since_id=backfill, polled_at=now)
            )
        elif backfill is not None and gap_row is not None:
            gap_row.since_id, gap_row.polled_at = backfill, now
        elif gap_row is not None:
            await session.delete(gap_row)
    return handled, replies


async def _threads(
    session: AsyncSession, account: str, status_ids: set[str]
) -> dict[str, CommentThread]:
    """The inbox threads of the commented posts that govcast published, by post id."""
    if not status_ids:
        return {}
    rows = await session.execute(
        select(CommentThread).where(
            CommentThread.platform == "weibo",
            CommentThread.account == account,
            CommentThread.target.in_(sorted(status_ids)),
        )
    )
    return {t.target: t for t in rows.scalars()}


async def _inbox_comment(
    session: AsyncSession, thread: CommentThread, remote: inbox.Remote, now: datetime
) -> Comment | None:
    """The comment's inbox row (stored now if the collector has not yet), or None when
    it is already decided: replied, being replied, hidden by staff, or a case."""
    await inbox.store(session, thread, [remote], now)
    comment = await session.scalar(
        select(Comment).where(
            Comment.platform == "weibo",
            Comment.account == thread.account,
            Comment.remote_id == remote.remote_id,
        )
    )
    if comment is None or comment.hidden or comment.case_id is not None:
        return None
    if comment.reply_text is not None:
        return None
    replied = await session.scalar(
        select(CommentReply.id).where(CommentReply.comment_id == comment.id)
    )
    return None if replied is not None else comment
