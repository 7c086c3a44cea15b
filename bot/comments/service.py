"""The comments inbox: collecting comments under what govcast published (WeChat articles
and Weibo posts), storing each once, the exactly-once reply outbox, feature / hide, turning
a comment into a case, per-publication figures and retention.

Pure parsing functions come first; everything with I/O takes the database and an API
lookup (``apis(platform, account)`` -> the channel's typed API client).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.comments.models import Comment, CommentReply, CommentState, CommentThread
from publisher import audit
from publisher.db import Database
from publisher.errors import NotFound, ValidationError, WorkflowError
from publisher.models import Delivery, DeliveryAction, DeliveryState
from publisher.orm import utcnow
from publisher.outcomes import DeliveryError, TransientError

log = logging.getLogger("govcast.bot.comments")

Apis = Callable[[str, str], Any]
PLATFORMS = ("wechat", "weibo")
WECHAT_PAGE = 49  # comment/list takes count < 50
WEIBO_PAGE = 50
MAX_PAGES = 10  # per thread per tick: the rest waits for the next poll
MAX_TEXT = 2000
REPLY_LIMITS = {"wechat": 600, "weibo": 140}
ALREADY_REPLIED = 88005
LEASE = timedelta(seconds=120)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --- pure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """One comment as a platform listed it (already cleaned)."""

    remote_id: str
    author_id: str
    author_name: str
    text: str
    created_at: datetime
    featured: bool = False
    reply_text: str | None = None
    reply_to: str | None = None  # Weibo: the comment this one answers


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """Platform text made storable: control characters removed, cut to ``limit``."""
    if not isinstance(value, str):
        return ""
    return _CONTROL.sub("", value)[:limit]


def _stamp(value: object) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        for fmt in ("%a %b %d %H:%M:%S %z %Y",):
            try:
                return datetime.strptime(value, fmt).astimezone(UTC)
            except ValueError:
                pass
    return utcnow()


def _digits(value: object) -> str:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if re.fullmatch(r"[0-9]{1,30}", text) else ""


def parse_wechat(data: Mapping[str, Any]) -> list[Remote]:
    """Well-formed items of a ``comment/list`` answer; malformed ones are skipped (pure)."""
    found: list[Remote] = []
    items = data.get("comment")
    if not isinstance(items, list):
        return found
    for item in items[:200]:
        if not isinstance(item, Mapping):
            continue
        cid = _digits(item.get("user_comment_id"))
        text = clean_text(item.get("content"))
        if not cid or not text.strip():
            continue
        reply = item.get("reply")
        reply_text = (
            clean_text(reply.get("content")) or None if isinstance(reply, Mapping) else None
        )
        found.append(
            Remote(
                remote_id=cid,
                author_id=clean_text(item.get("openid"), 128),
                author_name="",
                text=text,
                created_at=_stamp(item.get("create_time")),
                featured=item.get("comment_type") == 1,
                reply_text=reply_text,
            )
        )
    return found


def parse_weibo(data: Mapping[str, Any]) -> list[Remote]:
    """Followers' comments of a ``comments/show`` answer, oldest first (pure).

    Comments written by the post's own author (our account's replies) are left out.
    """
    found: list[Remote] = []
    items = data.get("comments")
    if not isinstance(items, list):
        return found
    for item in items[:500]:
        if not isinstance(item, Mapping):
            continue
        cid = _digits(item.get("idstr") or item.get("id"))
        text = clean_text(item.get("text"))
        user, owner = _users(item)
        uid = _digits(user.get("idstr") or user.get("id"))
        if not cid or not text.strip():
            continue
        if uid and uid == _digits(owner.get("idstr") or owner.get("id")):
            continue
        parent = item.get("reply_comment")
        found.append(
            Remote(
                remote_id=cid,
                author_id=uid,
                author_name=clean_text(user.get("screen_name"), 100),
                text=text,
                created_at=_stamp(item.get("created_at")),
                reply_to=_digits(parent.get("idstr") or parent.get("id"))
                if isinstance(parent, Mapping)
                else None,
            )
        )
    found.sort(key=lambda r: int(r.remote_id))
    return found


def our_weibo_replies(data: Mapping[str, Any]) -> dict[str, str]:
    """``{answered comment id: reply text}`` for replies by the post's author (pure)."""
    replies: dict[str, str] = {}
    items = data.get("comments")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        user, owner = _users(item)
        parent = item.get("reply_comment")
        uid = _digits(user.get("idstr") or user.get("id"))
        if not uid or uid != _digits(owner.get("idstr") or owner.get("id")):
            continue
        if isinstance(parent, Mapping):
            pid = _digits(parent.get("idstr") or parent.get("id"))
            if pid:
                replies[pid] = clean_text(item.get("text"))
    return replies


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _users(item: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The comment's author and the commented post's author."""
    return _map(item.get("user")), _map(_map(item.get("status")).get("user"))


def state_of(comment: Comment) -> str:
    """The inbox state, by precedence: hidden, case, featured, answered, new (pure)."""
    if comment.hidden:
        return CommentState.HIDDEN.value
    if comment.case_id is not None:
        return CommentState.CASE.value
    if comment.featured:
        return CommentState.FEATURED.value
    if comment.reply_text is not None:
        return CommentState.ANSWERED.value
    return CommentState.NEW.value


def state_condition(state: str) -> Any:
    """SQL condition of one inbox state. A comment can be in several at once (featured and
    answered, a case that was answered): it is listed under each; ``state_of`` is only the
    one label a row shows."""
    visible = Comment.hidden.is_(False)
    conditions: dict[str, Any] = {
        CommentState.HIDDEN.value: Comment.hidden.is_(True),
        CommentState.CASE.value: and_(visible, Comment.case_id.is_not(None)),
        CommentState.FEATURED.value: and_(visible, Comment.featured.is_(True)),
        CommentState.ANSWERED.value: and_(visible, Comment.reply_text.is_not(None)),
        CommentState.NEW.value: and_(
            visible,
            Comment.case_id.is_(None),
            Comment.featured.is_(False),
            Comment.reply_text.is_(None),
        ),
    }
    if state not in conditions:
        raise ValidationError("state", "new, answered, featured, hidden or case")
    return conditions[state]


def poll_interval(
    published_at: datetime, now: datetime, fresh: timedelta, often: float, seldom: float
) -> timedelta:
    """How long until a thread is read again: recent items often, older ones seldom."""
    return timedelta(seconds=often if now - published_at < fresh else seldom)


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return pg_insert if dialect == "postgresql" else sqlite_insert


# --- threads -------------------------------------------------------------------------------


# Deliveries that leave an article or post followers can comment on: the publish, a
# correction (a new article / post replaces the old one) and, on WeChat, a mass send (its
# own msg_data_id, with its own comments).
COMMENTED_ACTIONS = {
    "wechat": (
        DeliveryAction.PUBLISH.value,
        DeliveryAction.UPDATE.value,
        DeliveryAction.PUSH.value,
    ),
    "weibo": (DeliveryAction.PUBLISH.value, DeliveryAction.UPDATE.value),
}


async def discover(session: AsyncSession, now: datetime | None = None) -> int:
    """Open a thread for every article/post govcast published (publish, correction, WeChat
    mass send) that is done and has no thread yet."""
    now = now or utcnow()
    msg_data_id = Delivery.receipt["msg_data_id"].as_string()
    # Where the comments live, in SQL too: a delivery whose article already has a thread
    # (a repeat, or one without an address) is not read again on every round.
    address = case(
        (Delivery.channel == "wechat", func.coalesce(msg_data_id, "") + ":0"),
        else_=func.coalesce(Delivery.remote_id, ""),
    )
    has_address = case(
        (Delivery.channel == "wechat", func.coalesce(msg_data_id, "") != ""),
        else_=func.coalesce(Delivery.remote_id, "") != "",
    )
    known = (
        select(CommentThread.id)
        .where(
            CommentThread.platform == Delivery.channel,
            CommentThread.account == Delivery.account,
            CommentThread.target == address,
        )
        .exists()
    )
    rows = (
        (
            await session.execute(
                select(Delivery)
                .where(
                    or_(
                        *(
                            and_(Delivery.channel == channel, Delivery.action.in_(actions))
                            for channel, actions in COMMENTED_ACTIONS.items()
                        )
                    ),
                    Delivery.state == DeliveryState.DONE.value,
                    has_address,
                    ~known,
                )
                .order_by(Delivery.id)
                .limit(500)
            )
        )
        .scalars()
        .all()
    )
    added = 0
    for delivery in rows:
        target = thread_target(delivery)
        if target is None:
            continue
        result = await session.execute(
            _insert(session)(CommentThread)
            .values(
                platform=delivery.channel,
                account=delivery.account,
                target=target,
                publication_id=delivery.publication_id,
                delivery_id=delivery.id,
                published_at=delivery.done_at or now,
                cursor="0",
                polls=0,
                next_poll_at=now,
            )
            .on_conflict_do_nothing(index_elements=["platform", "account", "target"])
        )
        added += int(getattr(result, "rowcount", 0) or 0)
    return added


def thread_target(delivery: Delivery) -> str | None:
    """Where a delivery's comments live: WeChat ``msg_data_id:0`` (govcast sends one article
    per message, so always index 0), Weibo the post id."""
    receipt = delivery.receipt or {}
    if delivery.channel == "wechat":
        mdi = _digits(receipt.get("msg_data_id"))
        return f"{mdi}:0" if mdi else None
    if delivery.channel == "weibo":
        return _digits(delivery.remote_id) or None
    return None


# --- collecting --------------------------------------------------------------------------


@dataclass(frozen=True)
class PollOptions:
    """Pace of collection, from the ``[comments]`` settings."""

    often_seconds: float = 60.0
    seldom_seconds: float = 3600.0
    fresh: timedelta = timedelta(days=3)
    threads_per_tick: int = 50
    auto_answer_rules: tuple[int, ...] = ()
    # Comments older than this are purged (``[comments] retention_days``) and never stored
    # again when a re-read lists them once more; None keeps everything.
    retention: timedelta | None = None


@dataclass(frozen=True)
class Fetched:
    """What one read of a thread found, and where the next read starts."""

    remotes: list[Remote]
    cursor: str
    backfill: str | None = None


async def fetch(apis: Apis, thread: CommentThread) -> Fetched:
    """Read a thread's new comments from its platform (I/O only); returns them with the new
    cursor (and, on Weibo, an unfinished backwards read). Raises the API's typed errors."""
    api = apis(thread.platform, thread.account)
    found: list[Remote] = []
    if thread.platform == "wechat":
        mdi, _, index = thread.target.partition(":")
        seen = int(thread.cursor or 0)
        # Deleted comments shift offsets back; re-reading one page before the cursor keeps
        # nothing from being skipped (the unique key drops the repeats).
        begin = max(0, seen - WECHAT_PAGE)
        total = 0
        for _ in range(MAX_PAGES):
            data = await api.comment_list(mdi, int(index or 0), begin, WECHAT_PAGE, 0)
            page = parse_wechat(data)
            raw = data.get("comment")
            count = len(raw) if isinstance(raw, list) else 0
            found.extend(page)
            begin += count
            total = data.get("total") if isinstance(data.get("total"), int) else begin
            if count < WECHAT_PAGE or begin >= int(total):
                break
        return Fetched(found, str(begin))
    return await _fetch_weibo(api, thread)


def parse_backfill(value: str | None) -> tuple[int, int] | None:
    """``(newest id of the burst, oldest id read so far)`` of a Weibo thread, or None (pure)."""
    top, _, below = (value or "").partition(":")
    if not (_digits(top) and _digits(below)):
        return None
    return int(top), int(below)


def _raw_ids(data: Mapping[str, Any]) -> list[int]:
    """Ids of every listed comment, ours included: the pages are cut by these (pure)."""
    items = data.get("comments")
    ids: list[int] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            cid = _digits(item.get("idstr") or item.get("id"))
            if cid:
                ids.append(int(cid))
    return ids


async def _fetch_weibo(api: Any, thread: CommentThread) -> Fetched:
    """Weibo lists newest first: a burst larger than one poll's pages is read backwards
    (``max_id``) over several polls, and ``since_id`` moves past it only once the gap down
    to the cursor is closed, so that the oldest comments of a burst are never skipped."""
    since = int(thread.cursor or 0)
    gap = parse_backfill(thread.backfill)
    top: int | None = gap[0] if gap else None
    below: int | None = gap[1] if gap else None
    found: list[Remote] = []
    closed = False
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"id": thread.target, "since_id": since, "count": WEIBO_PAGE}
        if below is not None:
            if below - 1 <= since:
                closed = True
                break
            params["max_id"] = below - 1
        data = await api.call("GET", "comments/show.json", params=params)
        if not isinstance(data, Mapping):
            break  # garbage: keep what is known, the next poll resumes from here
        ids = [i for i in _raw_ids(data) if i > since and (below is None or i < below)]
        found.extend(
            r
            for r in parse_weibo(data)
            if int(r.remote_id) > since and (below is None or int(r.remote_id) < below)
        )
        raw = data.get("comments")
        if ids:
            top = max(ids) if top is None else top
            below = min(ids)
        if not isinstance(raw, list) or len(raw) < WEIBO_PAGE or not ids:
            closed = True
            break
    if closed:
        return Fetched(found, str(max(since, top or 0)), None)
    if top is None or below is None:
        return Fetched(found, str(since), None)
    return Fetched(found, str(since), f"{top}:{below}")


async def store(
    session: AsyncSession,
    thread: CommentThread,
    remotes: Sequence[Remote],
    now: datetime,
    keep_after: datetime | None = None,
) -> list[int]:
    """Insert the comments not yet stored (unique key: platform, account, remote id);
    returns the ids of the new rows. Comments written before ``keep_after`` (the retention
    cutoff) are past retention: purged already, or due to be, so they are not stored again."""
    new_ids: list[int] = []
    for remote in remotes:
        if keep_after is not None and remote.created_at < keep_after:
            continue
        values: dict[str, Any] = {
            "thread_id": thread.id,
            "publication_id": thread.publication_id,
            "platform": thread.platform,
            "account": thread.account,
            "remote_id": remote.remote_id,
            "author_id": remote.author_id,
            "author_name": remote.author_name,
            "text": remote.text,
            "remote_created_at": remote.created_at,
            "collected_at": now,
            "featured": remote.featured,
            "hidden": False,
            "reply_text": remote.reply_text,
            "replied_at": now if remote.reply_text else None,
            "updated_at": now,
            "state": CommentState.NEW.value,
        }
        result = await session.execute(
            _insert(session)(Comment)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["platform", "account", "remote_id"])
            .returning(Comment.id)
        )
        new_id = result.scalar_one_or_none()
        if new_id is None:
            continue
        comment = await session.get(Comment, new_id)
        assert comment is not None
        if thread.platform == "weibo":
            await _link_existing_case(session, comment)
        comment.state = state_of(comment)
        new_ids.append(new_id)
    return new_ids


async def _link_existing_case(session: AsyncSession, comment: Comment) -> None:
    # bot.cases.weibo may already have made this Weibo comment a case: link, never duplicate.
    from bot.cases.models import Case

    case_id = await session.scalar(
        select(Case.id).where(Case.remote_id == f"weibo:{comment.account}:{comment.remote_id}")
    )
    if case_id is not None:
        comment.case_id = case_id


async def collect(
    db: Database, apis: Apis, options: PollOptions, now: datetime | None = None
) -> int:
    """One collection round: open new threads, read the due ones; returns new comments."""
    now = now or utcnow()
    async with db.transaction() as session:
        await discover(session, now)
    async with db.sessions() as session:
        threads = (
            (
                await session.execute(
                    select(CommentThread)
                    .where(CommentThread.next_poll_at <= now)
                    .order_by(CommentThread.next_poll_at, CommentThread.id)
                    .limit(options.threads_per_tick)
                )
            )
            .scalars()
            .all()
        )
    created = 0
    for thread in threads:
        created += await poll_thread(db, apis, options, thread.id, now)
    return created


async def poll_thread(
    db: Database, apis: Apis, options: PollOptions, thread_id: int, now: datetime
) -> int:
    """Read one thread and store what is new; the cursor moves only with the rows."""
    async with db.sessions() as session:
        thread = await session.get(CommentThread, thread_id)
        if thread is None:
            return 0
        session.expunge(thread)
    wait = poll_interval(
        thread.published_at, now, options.fresh, options.often_seconds, options.seldom_seconds
    )
    try:
        fetched = await fetch(apis, thread)
    except DeliveryError as error:
        async with db.transaction() as session:
            row = await session.get(CommentThread, thread_id)
            if row is not None:
                row.last_error = str(error)[:500]
                row.last_polled_at = now
                retry = getattr(error, "retry_after", None)
                row.next_poll_at = now + (timedelta(seconds=retry) if retry else wait)
        log.warning(
            "comment collection failed",
            extra={
                "thread_id": thread_id,
                "publication_id": thread.publication_id,
                "platform": thread.platform,
                "error": type(error).__name__,
            },
        )
        return 0
    keep_after = now - options.retention if options.retention is not None else None
    remotes = [r for r in fetched.remotes if keep_after is None or r.created_at >= keep_after]
    suggestions: dict[str, str] = {}
    if options.auto_answer_rules:
        suggestions = await _auto_answers(db, thread, remotes, options.auto_answer_rules, now)
    async with db.transaction() as session:
        row = await session.get(CommentThread, thread_id)
        if row is None:
            return 0
        new_ids = await store(session, row, remotes, now, keep_after)
        if row.platform == "weibo":
            # Moved only from where this read started: another poller's progress stands.
            if (row.cursor, row.backfill) == (thread.cursor, thread.backfill):
                row.cursor, row.backfill = fetched.cursor, fetched.backfill
        elif _later(row.platform, fetched.cursor, row.cursor):
            row.cursor = fetched.cursor
        row.polls += 1
        row.last_polled_at = now
        row.last_error = None
        row.next_poll_at = now + wait
        for comment_id in new_ids:
            comment = await session.get(Comment, comment_id)
            assert comment is not None
            answer = suggestions.get(comment.remote_id)
            if (
                answer
                and comment.reply_text is None
                and not comment.hidden
                and comment.case_id is None
            ):
                await _enqueue_reply(session, comment, answer, "keyword-rules", now, True)
    if new_ids:
        log.info(
            "comments collected",
            extra={
                "thread_id": thread_id,
                "publication_id": thread.publication_id,
                "platform": thread.platform,
                "comments": len(new_ids),
            },
        )
    return len(new_ids)


def _later(platform: str, new: str, old: str) -> bool:
    if platform == "weibo":
        return int(new or 0) >= int(old or 0)
    return True  # WeChat's cursor is an offset; deletions may move it back


async def _auto_answers(
    db: Database,
    thread: CommentThread,
    remotes: Sequence[Remote],
    rule_ids: tuple[int, ...],
    now: datetime,
) -> dict[str, str]:
    """Answers of the rules the office put on automatic, by remote comment id."""
    found: dict[str, str] = {}
    if thread.platform == "weibo":
        # Weibo comments are decided by the comments/to_me poller (bot.cases.weibo): answer
        # or case, never both, and never answered from two places.
        return found
    for remote in remotes:
        if remote.reply_text:
            continue
        rule = await matching_rule(db, thread.account, remote.text, now)
        if rule is not None and rule[0] in rule_ids and rule[1]:
            found[remote.remote_id] = rule[1][: REPLY_LIMITS[thread.platform]]
    return found


# --- suggestions ---------------------------------------------------------------------------


async def matching_rule(
    db: Database, account: str, text: str, now: datetime | None = None
) -> tuple[int, str] | None:
    """The first keyword rule answering ``text`` with a text reply: (rule id, reply)."""
    from bot.keywords import compile_rule, normalize
    from bot.models import KeywordRule
    from bot.router import TextReply

    moment = now or utcnow()
    async with db.sessions() as session:
        rules = (
            await session.scalars(
                select(KeywordRule)
                .where(KeywordRule.enabled.is_(True))
                .where(or_(KeywordRule.account == "", KeywordRule.account == account))
                .order_by(KeywordRule.priority, KeywordRule.id)
                .limit(500)
            )
        ).all()
    normalized = normalize(text)
    for rule in rules:
        compiled = compile_rule(rule)
        if compiled is None or not compiled.matches(normalized, moment):
            continue
        if isinstance(compiled.reply, TextReply):
            return compiled.id, compiled.reply.content
    return None


@dataclass(frozen=True)
class Suggestion:
    """An answer staff may send: from a keyword rule or a published item."""

    source: str  # "rule" | "search"
    text: str
    automatic: bool = False


async def suggestions(
    db: Database, comment: Comment, auto_rules: tuple[int, ...] = ()
) -> list[Suggestion]:
    """Suggested answers for a comment: the matching keyword rule, then the best matches
    of the published corpus (titles with their addresses)."""
    found: list[Suggestion] = []
    rule = await matching_rule(db, comment.account, comment.text)
    if rule is not None:
        found.append(Suggestion("rule", rule[1], rule[0] in auto_rules))
    try:
        from website.search import search

        results = await search(db, comment.text[:40], limit=3)
    except Exception:  # search is a convenience: an index problem must not break the inbox
        log.warning("comment suggestion search failed", extra={"comment_id": comment.id})
        return found
    for hit in results.items:
        found.append(Suggestion("search", f"请参阅《{hit.title}》：{hit.url}"))
    return found


# --- staff actions -------------------------------------------------------------------------


async def get_comment(session: AsyncSession, comment_id: int) -> Comment:
    """One comment, or NotFound."""
    comment = await session.get(Comment, comment_id)
    if comment is None:
        raise NotFound(f"comment {comment_id} not found")
    return comment


def reply_text(platform: str, text: object) -> str:
    """A reply checked against the platform's limit (pure); ValidationError otherwise."""
    if not isinstance(text, str):
        raise ValidationError("text", "must be text")
    cleaned = _CONTROL.sub("", text).strip()
    if not cleaned:
        raise ValidationError("text", "回复内容不能为空 / the reply is empty")
    limit = REPLY_LIMITS.get(platform, 140)
    if len(cleaned) > limit:
        raise ValidationError("text", f"回复不能超过 {limit} 字 / at most {limit} characters")
    return cleaned


async def _enqueue_reply(
    session: AsyncSession,
    comment: Comment,
    text: str,
    who: str,
    now: datetime,
    automatic: bool = False,
) -> CommentReply:
    existing = await session.scalar(
        select(CommentReply).where(CommentReply.comment_id == comment.id)
    )
    if existing is not None:
        if existing.state != "failed":
            raise WorkflowError("该留言已回复或正在回复 / this comment already has a reply")
        existing.text, existing.state, existing.unknown = text, "pending", False
        existing.not_before, existing.last_error, existing.requested_by = now, None, who[:100]
        existing.automatic = automatic
        return existing
    row = CommentReply(
        comment_id=comment.id,
        text=text,
        state="pending",
        unknown=False,
        attempts=0,
        automatic=automatic,
        requested_by=who[:100],
        not_before=now,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def enqueue_automatic(
    session: AsyncSession, comment: Comment, text: str, source: str, now: datetime
) -> CommentReply | None:
    """Put an answer the office lets go out without a person in the outbox; None if the
    comment already has a reply, is hidden or is a case (a person decides then)."""
    if comment.hidden or comment.case_id is not None or comment.reply_text is not None:
        return None
    if await session.scalar(select(CommentReply.id).where(CommentReply.comment_id == comment.id)):
        return None
    try:
        cleaned = reply_text(comment.platform, text)
    except ValidationError:
        return None  # nothing postable: a person answers instead
    row = await _enqueue_reply(session, comment, cleaned, f"auto:{source}"[:100], now, True)
    audit.record(
        session,
        audit.Actor.system(f"comments-{source}"),
        "comment.auto_reply",
        "comment",
        comment.id,
        publication_id=comment.publication_id,
        source=source,
    )
    return row


def refuse_inbox_reply(comment: Comment) -> None:
    """WorkflowError when a comment's answer belongs to its case (pure).

    A Weibo comment that became a case is answered by the case's reply, posted under the
    comment itself: an inbox reply as well would answer it twice.
    """
    if comment.platform == "weibo" and comment.case_id is not None:
        raise WorkflowError(
            f"该评论已转为办件 #{comment.case_id}，请在办件中答复（答复会发布在这条评论下）"
            f" / this comment became case #{comment.case_id}: answer it through the case "
            "(its reply is posted under this comment)"
        )


async def case_answered(
    session: AsyncSession, account: str, comment_remote_id: str, text: str, now: datetime
) -> Comment | None:
    """Record a case's reply posted under a Weibo comment as that comment's answer (so it
    counts as answered and is not answered again); the comment, if it was collected."""
    comment = await session.scalar(
        select(Comment).where(
            Comment.platform == "weibo",
            Comment.account == account,
            Comment.remote_id == comment_remote_id,
        )
    )
    if comment is None:
        return None
    if comment.reply_text is None:
        comment.reply_text, comment.replied_at = clean_text(text), now
    comment.updated_at = now
    comment.state = state_of(comment)
    return comment


async def inbox_reply_of(
    session: AsyncSession, account: str, comment_remote_id: str
) -> CommentReply | None:
    """The inbox's reply (queued, being sent or sent) to a Weibo comment, or None: a case
    made of that comment must not answer it a second time."""
    return await session.scalar(
        select(CommentReply)
        .join(Comment, Comment.id == CommentReply.comment_id)
        .where(
            Comment.platform == "weibo",
            Comment.account == account,
            Comment.remote_id == comment_remote_id,
            CommentReply.state != "failed",
        )
    )


async def request_reply(
    session: AsyncSession,
    comment_id: int,
    text: object,
    actor: audit.Actor,
    now: datetime | None = None,
) -> CommentReply:
    """Put a staff member's reply in the outbox (once per comment)."""
    now = now or utcnow()
    comment = await get_comment(session, comment_id)
    cleaned = reply_text(comment.platform, text)
    if comment.hidden and comment.platform == "wechat":
        raise WorkflowError("留言已在微信删除，无法回复 / the comment was deleted on WeChat")
    refuse_inbox_reply(comment)
    row = await _enqueue_reply(session, comment, cleaned, actor.label, now)
    audit.record(
        session,
        actor,
        "comment.reply",
        "comment",
        comment.id,
        publication_id=comment.publication_id,
    )
    return row


async def send_due(db: Database, apis: Apis, now: datetime | None = None, limit: int = 20) -> int:
    """Send the outbox's due replies; returns how many were confirmed on the platform."""
    now = now or utcnow()
    async with db.sessions() as session:
        ids = list(
            (
                await session.execute(
                    select(CommentReply.id)
                    .where(
                        or_(
                            and_(CommentReply.state == "pending", CommentReply.not_before <= now),
                            and_(
                                CommentReply.state == "sending",
                                CommentReply.lease_expires_at <= now,
                            ),
                        )
                    )
                    .order_by(CommentReply.not_before, CommentReply.id)
                    .limit(limit)
                )
            ).scalars()
        )
    done = 0
    for reply_id in ids:
        if await send_one(db, apis, reply_id, now):
            done += 1
    return done


async def _claim(db: Database, reply_id: int, now: datetime) -> CommentReply | None:
    async with db.transaction() as session:
        row = await session.get(CommentReply, reply_id)
        if row is None:
            return None
        was_sending = row.state == "sending"
        # A conditional update: of two processes only one moves the row to sending.
        result = await session.execute(
            update(CommentReply)
            .where(
                CommentReply.id == reply_id,
                or_(
                    and_(CommentReply.state == "pending", CommentReply.not_before <= now),
                    and_(CommentReply.state == "sending", CommentReply.lease_expires_at <= now),
                ),
            )
            .values(
                state="sending",
                lease_expires_at=now + LEASE,
                attempts=CommentReply.attempts + 1,
                # A lease that ran out means a crash mid-call: the outcome is unknown.
                unknown=row.unknown or was_sending,
            )
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            return None
    async with db.sessions() as session:
        claimed = await session.get(CommentReply, reply_id)
        if claimed is not None:
            session.expunge(claimed)
        return claimed


async def send_one(db: Database, apis: Apis, reply_id: int, now: datetime | None = None) -> bool:
    """Claim one reply and post it, first checking the platform after an unknown outcome."""
    now = now or utcnow()
    row = await _claim(db, reply_id, now)
    if row is None:
        return False
    async with db.sessions() as session:
        comment = await session.get(Comment, row.comment_id)
        thread = await session.get(CommentThread, comment.thread_id) if comment else None
        if comment is None or thread is None:
            return False
        session.expunge_all()
    api = apis(comment.platform, comment.account)
    remote_id: str | None = None
    try:
        already = await _already_there(api, thread, comment) if row.unknown else None
        if already is None:
            if comment.platform == "wechat":
                mdi, _, index = thread.target.partition(":")
                try:
                    await api.comment_reply(mdi, int(index or 0), int(comment.remote_id), row.text)
                except DeliveryError as error:
                    if error.code != ALREADY_REPLIED:
                        raise
            else:
                result = await api.comment_reply(comment.remote_id, thread.target, row.text)
                remote_id = _digits(result.get("idstr") or result.get("id")) or None
    except TransientError as error:
        from channels.wechat_api import AmbiguousError
        from channels.weibo_api import AmbiguousWeiboError

        ambiguous = isinstance(error, AmbiguousError | AmbiguousWeiboError)
        delay = error.retry_after or min(600.0, 5.0 * 2 ** min(row.attempts, 7))
        async with db.transaction() as session:
            stored = await session.get(CommentReply, reply_id)
            if stored is not None:
                stored.state = "pending"
                stored.unknown = stored.unknown or ambiguous
                stored.not_before = now + timedelta(seconds=delay)
                stored.last_error = str(error)[:500]
                stored.lease_expires_at = None
        log.warning(
            "comment reply not confirmed; will retry",
            extra={"comment_id": comment.id, "reply_id": reply_id, "ambiguous": ambiguous},
        )
        return False
    except DeliveryError as error:
        async with db.transaction() as session:
            stored = await session.get(CommentReply, reply_id)
            if stored is not None:
                stored.state, stored.last_error = "failed", str(error)[:500]
                stored.lease_expires_at = None
        log.warning("comment reply failed", extra={"comment_id": comment.id, "reply_id": reply_id})
        return False
    async with db.transaction() as session:
        stored = await session.get(CommentReply, reply_id)
        target = await session.get(Comment, comment.id)
        if stored is not None:
            stored.state, stored.sent_at, stored.last_error = "done", now, None
            stored.remote_id = remote_id or stored.remote_id
            stored.lease_expires_at = None
        if target is not None:
            target.reply_text = row.text if already is None else (already or row.text)
            target.replied_at, target.updated_at = now, now
            target.state = state_of(target)
    log.info(
        "comment reply posted",
        extra={
            "comment_id": comment.id,
            "reply_id": reply_id,
            "publication_id": comment.publication_id,
        },
    )
    return True


async def _already_there(api: Any, thread: CommentThread, comment: Comment) -> str | None:
    """The reply text if the platform already shows our reply to ``comment``, else None."""
    if comment.platform == "wechat":
        mdi, _, index = thread.target.partition(":")
        begin = 0
        for _ in range(200):
            data = await api.comment_list(mdi, int(index or 0), begin, WECHAT_PAGE, 0)
            for remote in parse_wechat(data):
                if remote.remote_id == comment.remote_id:
                    return remote.reply_text
            raw = data.get("comment")
            count = len(raw) if isinstance(raw, list) else 0
            begin += count
            if count < WECHAT_PAGE:
                break
        return None
    for page_no in range(1, MAX_PAGES + 1):
        data = await api.call(
            "GET",
            "comments/show.json",
            params={
                "id": thread.target,
                "since_id": comment.remote_id,
                "count": WEIBO_PAGE,
                "page": page_no,
            },
        )
        if not isinstance(data, Mapping):
            return None
        found = our_weibo_replies(data).get(comment.remote_id)
        if found is not None:
            return found
        raw = data.get("comments")
        if not isinstance(raw, list) or len(raw) < WEIBO_PAGE:
            break
    return None


async def set_featured(
    db: Database, apis: Apis, comment_id: int, featured: bool, actor: audit.Actor
) -> Comment:
    """Feature (精选) or unfeature: WeChat markelect/unmarkelect; Weibo only in govcast."""
    async with db.sessions() as session:
        comment = await get_comment(session, comment_id)
        thread = await session.get(CommentThread, comment.thread_id)
        session.expunge_all()
    if comment.hidden:
        raise WorkflowError("已隐藏的留言不能精选 / a hidden comment cannot be featured")
    if comment.platform == "wechat" and thread is not None:
        mdi, _, index = thread.target.partition(":")
        address = {
            "msg_data_id": mdi,
            "index": int(index or 0),
            "user_comment_id": int(comment.remote_id),
        }
        path = "comment/markelect" if featured else "comment/unmarkelect"
        await apis("wechat", comment.account).call(path, payload=address)
    return await _update(
        db,
        comment_id,
        actor,
        "comment.feature" if featured else "comment.unfeature",
        featured=featured,
    )


async def hide(db: Database, apis: Apis, comment_id: int, actor: audit.Actor) -> Comment:
    """Hide: WeChat deletes the comment on the platform (comment/delete, not undoable);
    Weibo's open API cannot, so it is hidden in govcast only and stays on Weibo."""
    async with db.sessions() as session:
        comment = await get_comment(session, comment_id)
        thread = await session.get(CommentThread, comment.thread_id)
        session.expunge_all()
    if comment.platform == "wechat" and thread is not None and not comment.hidden:
        mdi, _, index = thread.target.partition(":")
        try:
            await apis("wechat", comment.account).comment_delete(
                mdi, int(index or 0), int(comment.remote_id)
            )
        except DeliveryError as error:
            if error.code != 88004:  # already deleted by the follower: the same end
                raise
    return await _update(db, comment_id, actor, "comment.hide", hidden=True, featured=False)


async def _update(
    db: Database, comment_id: int, actor: audit.Actor, action: str, **changes: Any
) -> Comment:
    async with db.transaction() as session:
        comment = await get_comment(session, comment_id)
        for key, value in changes.items():
            setattr(comment, key, value)
        comment.updated_at = utcnow()
        comment.state = state_of(comment)
        audit.record(
            session, actor, action, "comment", comment.id, publication_id=comment.publication_id
        )
        await session.flush()
        session.expunge(comment)
    return comment


async def to_case(
    db: Database,
    rules: Any,
    office_key: str,
    comment_id: int,
    actor: audit.Actor,
    kind: str = "consultation",
) -> int:
    """Turn a comment into a case (or link the case it already became); returns its id.

    A Weibo comment the inbox already answered may still become a case (to track the
    matter), but the case's reply is then not posted under it a second time: the case
    outbox refuses it with an alert, and staff pass the answer on otherwise.
    """
    from bot.cases import service as cases
    from bot.cases.models import Case

    async with db.transaction() as session:
        comment = await get_comment(session, comment_id)
        if comment.case_id is not None:
            return comment.case_id
        if comment.platform == "weibo":
            remote = f"weibo:{comment.account}:{comment.remote_id}"
            address: dict[str, Any] = {"comment_id": comment.remote_id}
            thread = await session.get(CommentThread, comment.thread_id)
            address["status_id"] = thread.target if thread else ""
        else:
            remote = f"wechat-comment:{comment.account}:{comment.remote_id}"
            address = {"openid": comment.author_id}
        case_id = await session.scalar(select(Case.id).where(Case.remote_id == remote))
        if case_id is None:
            calendar = await cases.load_calendar(session)
            office_id = await cases.office_id_by_key(session, office_key)
            case, _secret = await cases.receive(
                session,
                rules,
                calendar,
                office_id,
                cases.NewCase(
                    kind=kind,
                    channel=comment.platform,
                    text=comment.text[: cases.MAX_TEXT],
                    account=comment.account,
                    sender=comment.author_id,
                    remote_id=remote,
                    reply_address=address,
                    publication_id=comment.publication_id,
                ),
                actor=actor,
            )
            case_id = case.id
        comment.case_id = case_id
        comment.updated_at = utcnow()
        comment.state = state_of(comment)
        audit.record(
            session,
            actor,
            "comment.case",
            "comment",
            comment.id,
            case_id=case_id,
            publication_id=comment.publication_id,
        )
    log.info("comment became a case", extra={"comment_id": comment_id, "case_id": case_id})
    return case_id


# --- inbox, figures, retention ----------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    """Filters of the inbox page."""

    publication_id: int | None = None
    platform: str = ""
    account: str = ""
    state: str = ""


async def inbox(
    session: AsyncSession, filters: InboxFilter, limit: int = 50, offset: int = 0
) -> tuple[list[Comment], int]:
    """Comments matching the filters, newest first, and how many match."""
    where: list[Any] = []
    if filters.publication_id is not None:
        where.append(Comment.publication_id == filters.publication_id)
    if filters.platform:
        where.append(Comment.platform == filters.platform)
    if filters.account:
        where.append(Comment.account == filters.account)
    if filters.state:
        where.append(state_condition(filters.state))
    total = await session.scalar(select(func.count()).select_from(Comment).where(*where))
    rows = (
        (
            await session.execute(
                select(Comment)
                .where(*where)
                .order_by(Comment.remote_created_at.desc(), Comment.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        .scalars()
        .all()
    )
    return list(rows), int(total or 0)


@dataclass(frozen=True)
class PlatformCount:
    """Comments one publication drew on one platform."""

    total: int
    answered: int

    @property
    def unanswered(self) -> int:
        """Comments still without a reply."""
        return self.total - self.answered


async def counts_by_publication(
    session: AsyncSession, publication_ids: Sequence[int] | None = None
) -> dict[int, dict[str, PlatformCount]]:
    """Per publication and platform: comments and how many are answered (for the reports)."""
    answered = func.sum(case((Comment.reply_text.is_not(None), 1), else_=0))
    stmt = select(Comment.publication_id, Comment.platform, func.count(), answered).group_by(
        Comment.publication_id, Comment.platform
    )
    if publication_ids is not None:
        stmt = stmt.where(Comment.publication_id.in_(list(publication_ids)))
    figures: dict[int, dict[str, PlatformCount]] = {}
    for pub_id, platform, total, done in (await session.execute(stmt)).all():
        figures.setdefault(int(pub_id), {})[str(platform)] = PlatformCount(
            int(total or 0), int(done or 0)
        )
    return figures


async def purge(db: Database, retention_days: int, now: datetime | None = None) -> int:
    """Delete comments (and their replies) older than the retention period."""
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days)
    async with db.transaction() as session:
        old = select(Comment.id).where(Comment.remote_created_at < cutoff)
        await session.execute(delete(CommentReply).where(CommentReply.comment_id.in_(old)))
        result = await session.execute(delete(Comment).where(Comment.remote_created_at < cutoff))
    removed = int(getattr(result, "rowcount", 0) or 0)
    if removed:
        log.info("old comments purged", extra={"comments": removed})
    return removed


def public_text(comment: Comment) -> str:
    """The comment as it may be shown publicly (e.g. a featured comment on the website):
    personal data (phone, ID card numbers, addresses ...) masked; escaping is the template's."""
    from publisher.checks.personal import mask_personal_data

    return mask_personal_data(comment.text)
