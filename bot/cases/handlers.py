"""The cases router for the bot's dispatcher: guided intake (留言 or the menu key), "my
cases", a case number -> its status, "评价 1-5", opinions on solicitations.

``bot/web.py`` includes it with ``dispatcher.include_router(router)``. The conversation
itself is the pure state machine in :mod:`bot.cases.intake`; this module only loads and
stores its state per (account, OpenID) and carries out the actions.
"""

from __future__ import annotations

import logging
import weakref
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update

from bot.cases import intake, service, solicitations
from bot.cases.models import Case, CaseState, IntakeConversation
from bot.dedup import CONVERSATION_KEY
from bot.router import Context, Event, MenuKey, MsgType, Router, SkipHandler, TextReply
from publisher.batching import GroupCommit
from publisher.db import Database
from publisher.errors import NotFound, ValidationError, WorkflowError
from publisher.orm import utcnow

log = logging.getLogger("govcast.bot.cases")

router = Router(name="cases")
MY_CASES_KEY = "my_cases"


def _now(ctx: Context) -> datetime:
    from bot.cases.web import CLOCK

    app = ctx.app
    if app is not None and CLOCK in app:
        moment: datetime = app[CLOCK]()
        return moment
    return utcnow()


@router.event(Event("CLICK"), MenuKey(intake.MENU_KEY))
async def menu_intake(ctx: Context) -> TextReply:
    """The menu button starts the guided intake."""
    return await converse(ctx, "", menu_key=intake.MENU_KEY)


@router.event(Event("CLICK"), MenuKey(MY_CASES_KEY))
async def menu_my_cases(ctx: Context) -> TextReply:
    """The menu button lists the citizen's cases."""
    return await converse(ctx, "我的留言")


class ConversationReader:
    """Reads the intake state of many citizens in one query (group read).

    The fallback where the callback did not prefetch the state with its dedup claim
    (SQLite, dispatchers fed directly). The cases filter runs for every text message, so
    one read per message would cost a pooled session and a round trip each (measured:
    534 -> 76 messages/s). Concurrent messages instead share one
    ``SELECT ... WHERE (account, openid) IN (...)``. The state
    stays in the shared database, read when the message arrives, so a conversation begun
    in another process is seen exactly as before; nothing is cached between messages.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: GroupCommit[tuple[str, str], datetime | None] = GroupCommit(self._read)

    async def live_since(self, account: str, openid: str) -> datetime | None:
        """When the citizen's unfinished conversation was last updated; None if none."""
        return await self._reads.submit((account, openid))

    async def _read(self, keys: list[tuple[str, str]]) -> list[datetime | None]:
        # GroupCommit caps a batch at 200 keys: 400 bound parameters, fine for SQLite too.
        conv = IntakeConversation
        query = select(conv.account, conv.openid, conv.state, conv.updated_at).where(
            tuple_(conv.account, conv.openid).in_(list(dict.fromkeys(keys)))
        )
        async with self.db.read_engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        # An emptied state is a finished conversation (the row is kept).
        found = {(r.account, r.openid): r.updated_at for r in rows if r.state}
        return [found.get(key) for key in keys]


_readers: weakref.WeakKeyDictionary[Database, ConversationReader] = weakref.WeakKeyDictionary()


def conversation_reader(db: Database) -> ConversationReader:
    """The group reader of this database (one per database, i.e. per process)."""
    reader = _readers.get(db)
    if reader is None:
        reader = _readers[db] = ConversationReader(db)
    return reader


async def in_conversation_or_command(ctx: Context) -> bool:
    """A case command, or a citizen in the middle of an intake.

    The state comes with the dedup claim where the callback prefetched it, otherwise from
    the group read above; either way from the shared database as the message arrives.
    """
    text = ctx.message.text
    if not text:
        return False
    if intake.is_command(text):
        return True
    if CONVERSATION_KEY in ctx.data:
        # Read with the dedup claim, in the same statement (PostgreSQL callback).
        since: datetime | None = ctx.data[CONVERSATION_KEY]
    else:
        reader = conversation_reader(ctx.db)
        since = await reader.live_since(ctx.message.account, ctx.message.openid)
    return since is not None and _now(ctx) - since <= timedelta(seconds=intake.IDLE_SECONDS)


@router.message(MsgType("text", "voice"), in_conversation_or_command)
async def intake_step(ctx: Context) -> TextReply:
    """Intake steps and case commands; other texts go on to keywords and search."""
    return await converse(ctx, ctx.message.text)


async def converse(ctx: Context, text: str, *, menu_key: str = "") -> TextReply:
    """Run one step of the conversation and carry out its action."""
    now = _now(ctx)
    account, openid = ctx.message.account, ctx.message.openid
    key = service.citizen_key("wechat", account, openid)
    async with ctx.db.transaction() as session:
        row = await session.get(IntakeConversation, (account, openid))
        state: dict[str, Any] = dict(row.state) if row is not None else {}
        if row is not None and now - row.updated_at > timedelta(seconds=intake.IDLE_SECONDS):
            state = {}
        # A message to us reopens WeChat's 48-hour window for customer-service replies
        # (other messages do not update it: delivery then falls back to a template message).
        await session.execute(
            update(Case)
            .where(Case.citizen_key == key, Case.channel == "wechat")
            .values(last_citizen_message_at=now)
        )
        outcome = intake.step(state, text, menu_key=menu_key)
        if isinstance(outcome.action, intake.NotMine):
            raise SkipHandler()
        reply, new_state = await _act(ctx, session, outcome, key, now)
        if row is None:
            if new_state:
                session.add(
                    IntakeConversation(
                        account=account, openid=openid, state=new_state, updated_at=now
                    )
                )
        else:
            row.state, row.updated_at = new_state, now
    return TextReply(reply)


async def _act(
    ctx: Context, session: Any, outcome: intake.Outcome, key: str, now: datetime
) -> tuple[str, dict[str, Any]]:
    action = outcome.action
    rules = service.CaseRules.from_settings(ctx.settings)
    if isinstance(action, intake.Say):
        return action.text, outcome.state
    if isinstance(action, intake.CreateCase):
        calendar = await service.load_calendar(session)
        office_key = ctx.settings.wechat.accounts.get(ctx.message.account)
        office = (office_key.office if office_key else "") or ctx.settings.office.key
        case, secret = await service.receive(
            session,
            rules,
            calendar,
            await service.office_id_by_key(session, office),
            service.NewCase(
                kind=action.kind,
                channel="wechat",
                text=action.text,
                account=ctx.message.account,
                sender=ctx.message.openid,
                reply_address={"openid": ctx.message.openid},
                consent_publish=action.consent,
            ),
            now=now,
        )
        due = service.due_date(case, rules.zone).isoformat()
        return (
            f"留言已收到，编号 {case.number}，我们将于 {due} 前答复。发送编号可查询进度；"
            f"网页查询密码：{secret}。"
            f"Received as {case.number}; reply due by {due}; web secret {secret}.",
            {},
        )
    if isinstance(action, intake.ListMine):
        mine = await service.cases_of_citizen(session, key)
        if not mine:
            return "您还没有留言。回复“留言”开始。You have no cases yet.", {}
        lines = [f"{c.number} {service.STATE_NAMES[CaseState(c.state)][0]}" for c in mine]
        return "您的留言 / Your cases:\n" + "\n".join(lines), {}
    if isinstance(action, intake.ShowStatus):
        found = await service.case_by_number(session, action.number)
        # Another citizen's number looks exactly like an unknown one.
        if found is None or found.citizen_key != key:
            return f"未找到您的留言 {action.number}。No case of yours with that number.", {}
        return service.status_text(found, await service.load_calendar(session), rules), {}
    if isinstance(action, intake.Rate):
        replied = (
            await session.execute(
                select(Case)
                .where(Case.citizen_key == key, Case.state == CaseState.REPLIED.value)
                .order_by(Case.replied_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if replied is None:
            return "没有待评价的答复。Nothing to rate.", {}
        await service.rate(session, replied, action.rating, now=now)
        return f"感谢评价！{replied.number}：{action.rating} 分。Thank you.", {}
    if isinstance(action, intake.StartOpinion):
        try:
            pub = await solicitations.open_solicitation(session, action.publication_id, now)
        except (NotFound, WorkflowError):
            return "该意见征集不存在或不在征集期内。This solicitation is not open.", {}
        return intake.opinion_prompt(pub.title), {"step": "opinion", "publication_id": pub.id}
    if isinstance(action, intake.CreateOpinion):
        try:
            await solicitations.add_opinion(
                session, action.publication_id, action.text, "wechat", now=now
            )
        except (NotFound, WorkflowError, ValidationError):
            return "该意见征集已结束，未能记录。This solicitation is closed.", {}
        return "感谢您的意见，已记录。Thank you, your opinion is recorded.", {}
    raise SkipHandler()  # pragma: no cover - every action is handled above
