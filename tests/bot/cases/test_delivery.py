"""Replies go back through the channel they came from, exactly once, across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.cases import delivery, service
from bot.cases.delivery import DeliveryOptions
from bot.cases.models import CaseMessage
from channels.wechat_api import AmbiguousError
from publisher.db import Database
from publisher.models import Alert
from publisher.outcomes import PermanentError, TransientError
from publisher.staff import StaffMember
from tests.bot.cases.helpers import FakeApi, new_case

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
OPTIONS = DeliveryOptions(base_url="http://gov.example", wechat_template_id="TPL1")


async def _replied(db: Database, member: StaffMember, at: datetime, **kwargs: object) -> int:
    case_id, _, _ = await new_case(db, T0, **kwargs)  # type: ignore[arg-type]
    async with db.transaction() as session:
        await service.accept(session, member, case_id, now=at)
        await service.reply(
            session,
            member,
            case_id,
            "已转交相关部门处理完毕。",
            now=at,
            base_url="http://gov.example",
        )
    return case_id


def _lookup(api: FakeApi):  # type: ignore[no-untyped-def]
    return lambda channel, account: api


async def test_wechat_inside_the_window_is_a_customer_service_message(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    api = FakeApi()
    await _replied(
        db,
        staff_members["admin"],
        T0 + timedelta(hours=47),
        channel="wechat",
        sender="oABC",
        address={"openid": "oABC"},
        account="main",
    )
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0 + timedelta(hours=47)) == 1
    assert [kind for kind, _ in api.sent] == ["custom"]
    assert "评价 1-5" in api.sent[0][1][1]
    # A second tick sends nothing more.
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0 + timedelta(hours=48)) == 0
    assert len(api.sent) == 1


async def test_wechat_outside_the_window_is_a_template_message(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    api = FakeApi()
    later = T0 + timedelta(hours=49)
    await _replied(
        db,
        staff_members["admin"],
        later,
        channel="wechat",
        sender="oABC",
        address={"openid": "oABC"},
        account="main",
    )
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=later) == 1
    kind, args = api.sent[0]
    assert kind == "template" and args[1] == "TPL1"
    assert args[3].startswith("http://gov.example/cases/track?number=GC20261123-")


async def test_platform_says_out_of_window_falls_back_to_template(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    api = FakeApi(script=[PermanentError("out of window", code=45015)])
    await _replied(
        db,
        staff_members["admin"],
        T0,
        channel="wechat",
        sender="o1",
        address={"openid": "o1"},
        account="main",
    )
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0) == 1
    assert [k for k, _ in api.sent] == ["template"]


async def test_weibo_reply_and_web(db: Database, staff_members: dict[str, StaffMember]) -> None:
    api = FakeApi()
    await _replied(
        db,
        staff_members["admin"],
        T0,
        channel="weibo",
        account="main",
        address={"comment_id": "c9", "status_id": "s1"},
        remote_id="weibo:main:c9",
    )
    await _replied(db, staff_members["admin"], T0, channel="web")
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0) == 2
    assert api.sent[0][0] == "weibo_reply" and api.sent[0][1][:2] == ("c9", "s1")
    assert len(api.sent[0][1][2]) <= 140
    async with db.sessions() as session:
        methods = sorted(
            m.method or "" for m in (await session.execute(select(CaseMessage))).scalars()
        )
    assert methods == ["web_page", "weibo_comment"]


async def test_transient_errors_retry_later_permanent_ones_alert(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    api = FakeApi(script=[TransientError("busy", retry_after=30)])
    await _replied(
        db,
        staff_members["admin"],
        T0,
        channel="wechat",
        sender="o1",
        address={"openid": "o1"},
        account="main",
    )
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0) == 0
    assert (
        await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0 + timedelta(seconds=10)) == 0
    )
    assert (
        await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0 + timedelta(seconds=31)) == 1
    )
    assert len(api.sent) == 1
    bad = FakeApi(script=[PermanentError("blocked", code=43004)])
    await _replied(
        db,
        staff_members["admin"],
        T0,
        channel="wechat",
        sender="o2",
        address={"openid": "o2"},
        account="main",
    )
    assert await delivery.deliver_due(db, _lookup(bad), OPTIONS, now=T0 + timedelta(minutes=5)) == 0
    async with db.sessions() as session:
        alerts = list((await session.execute(select(Alert))).scalars())
    assert [a.kind for a in alerts] == ["case_message"]


async def test_no_second_send_after_a_crash_or_an_ambiguous_answer(
    db: Database, staff_members: dict[str, StaffMember]
) -> None:
    await _replied(
        db,
        staff_members["admin"],
        T0,
        channel="wechat",
        sender="o1",
        address={"openid": "o1"},
        account="main",
    )
    # A process claims the row and dies before finishing (the row stays `sending`).
    claimed = await delivery._claim(db, OPTIONS, T0)
    assert len(claimed) == 1
    api = FakeApi()
    # After the lease: the outcome is unknown; nothing is sent again, staff are alerted.
    assert await delivery.deliver_due(db, _lookup(api), OPTIONS, now=T0 + timedelta(minutes=5)) == 0
    assert api.sent == []
    await _replied(
        db,
        staff_members["admin"],
        T0,
        channel="wechat",
        sender="o3",
        address={"openid": "o3"},
        account="main",
    )
    garbled = FakeApi(script=[AmbiguousError("garbage")])
    assert (
        await delivery.deliver_due(db, _lookup(garbled), OPTIONS, now=T0 + timedelta(minutes=6))
        == 0
    )
    assert (
        await delivery.deliver_due(db, _lookup(garbled), OPTIONS, now=T0 + timedelta(hours=6)) == 0
    )
    async with db.sessions() as session:
        states = sorted(m.state for m in (await session.execute(select(CaseMessage))).scalars())
        kinds = sorted(a.kind for a in (await session.execute(select(Alert))).scalars())
    assert states == ["unknown", "unknown"]
    assert kinds == ["case_message", "case_message_unknown"]
