"""Weibo comments answered by the WeChat bot's keyword rules and corpus search, through the
real application and its sandbox: a matching comment gets one comment reply and no case, a
non-matching one becomes a case, the office's switches decide what goes out alone, and a
reply is posted once through restarts, a platform timeout after the effect, a crash between
posting and recording, and two pollers at once. Hostile comment text is handled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from bot.cases import web as cases_web
from bot.cases import weibo
from bot.cases.models import Case, CaseEvent, CaseMessage
from bot.cases.service import CaseRules
from bot.comments import service as inbox
from bot.comments import web as comments_web
from bot.comments.answers import WEIBO_LIMIT, Answerer
from bot.comments.models import Comment, CommentReply
from bot.keywords import RuleCache, add_rule
from govcast import keys
from publisher.db import Database
from publisher.orm import utcnow
from tests.bot.comments.helpers import Published, publish_both, running, weibo_comment
from tests.website.helpers import add_item

RULE_REPLY = "医保缴费 & 查询请见 <官网>：{origin}/disclosure/yibao"
PENSION_TITLE = '关于调整城乡居民养老保险待遇的通知 <b>&"第2号"'


async def _tick(app: web.Application, name: str) -> Any:
    for job in [*cases_web.ticks(app), *comments_web.ticks(app)]:
        if job.name == name:
            return await job.run()
    raise AssertionError(name)


async def _rule(db: Database, pattern: str, reply: str) -> int:
    async with db.transaction() as session:
        rule = await add_rule(session, match="contains", pattern=pattern, reply_text=reply)
        return rule.id


async def _faults(http: aiohttp.ClientSession, origin: str, spec: dict[str, Any] | None) -> None:
    if spec is None:
        async with http.delete(f"{origin}/sandbox/_faults") as r:
            assert r.status in (200, 204), await r.text()
        return
    async with http.post(f"{origin}/sandbox/_faults", json=spec) as r:
        assert r.status in (200, 204), await r.text()


async def _replies_to(app: web.Application, status_id: str, comment_id: int) -> list[str]:
    """Our account's replies to one comment, as Weibo shows them."""
    channels: Any = app[keys.CHANNELS]
    shown = await channels["weibo"].api("main").comments_show(status_id, count=200)
    return [
        str(c["text"])
        for c in shown["comments"]
        if isinstance(c.get("reply_comment"), dict) and c["reply_comment"]["id"] == comment_id
    ]


async def _count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _cases(db: Database) -> list[Case]:
    async with db.sessions() as session:
        return list((await session.execute(select(Case).order_by(Case.id))).scalars())


async def _comment(db: Database, remote_id: int) -> Comment:
    async with db.sessions() as session:
        row = await session.scalar(
            select(Comment).where(Comment.platform == "weibo", Comment.remote_id == str(remote_id))
        )
        assert row is not None
        return row


async def test_matching_comments_answered_once_others_become_cases(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    await add_item(db, 1, title=PENSION_TITLE, body="城乡居民养老保险基础养老金每人每月提高20元。")
    rule_id = await _rule(db, "医保", "placeholder")
    switches = {"comments.auto_answer_rules": [rule_id], "comments.weibo_search_answers": True}
    async with (
        running(tmp_path, database_url, **switches) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        async with db.transaction() as session:
            from bot.models import KeywordRule

            rule = await session.get(KeywordRule, rule_id)
            assert rule is not None
            rule.reply_text = RULE_REPLY.format(origin=origin)
        pub = await publish_both(app, origin)
        # A post the office wrote on Weibo by hand: no inbox thread, so no automatic reply.
        channels: Any = app[keys.CHANNELS]
        manual = await channels["weibo"].api("main").share(f"今日停水通知 {origin}/disclosure/w")
        asks = await weibo_comment(
            http, origin, pub.status_id, "请问今年医保怎么缴费？我的电话13812345678", 1
        )
        street = await weibo_comment(http, origin, pub.status_id, "小区门口的路灯坏了一个月了", 2)
        pension = await weibo_comment(http, origin, pub.status_id, "城乡居民养老保险", 3)
        elsewhere = await weibo_comment(http, origin, str(manual["id"]), "医保卡丢了怎么补办", 4)

        assert await _tick(app, "cases_weibo_comments") == 4
        assert await _tick(app, "comments_send_replies") == 2
        # The keyword rule's answer, exactly as the office wrote it: no escaping, no quote
        # of the citizen's words (the phone number stays out of the public reply).
        assert await _replies_to(app, pub.status_id, asks) == [RULE_REPLY.format(origin=origin)]
        pension_reply = await _replies_to(app, pub.status_id, pension)
        assert len(pension_reply) == 1
        assert pension_reply[0].startswith(f"请参阅《{PENSION_TITLE}》：http")
        assert "/disclosure/" in pension_reply[0] and len(pension_reply[0]) <= WEIBO_LIMIT
        assert await _replies_to(app, pub.status_id, street) == []
        assert await _replies_to(app, str(manual["id"]), elsewhere) == []
        for text in [*pension_reply, RULE_REPLY]:
            assert "13812345678" not in text and "&amp;" not in text and "&lt;" not in text
        cases = await _cases(db)
        assert sorted(c.reply_address["comment_id"] for c in cases) == sorted(
            [str(street), str(elsewhere)]
        )
        # The case whose rule could not answer on its own post carries the suggestion.
        async with db.sessions() as session:
            notes = list(
                (
                    await session.execute(
                        select(CaseEvent.text).where(
                            CaseEvent.case_id.in_(
                                [
                                    c.id
                                    for c in cases
                                    if c.reply_address["comment_id"] == str(elsewhere)
                                ]
                            )
                        )
                    )
                ).scalars()
            )
        assert any("查询请见" in n for n in notes)
        assert (await _comment(db, asks)).state == "answered"
        assert (await _comment(db, street)).state == "case"
        assert (await _count(db, CaseMessage)) == 0  # no reply went through the case outbox

        # The inbox collector reads the same thread: nothing new to answer, nothing doubled.
        later = utcnow() + timedelta(hours=1)
        await inbox.collect(db, comments_web.apis_of(app), comments_web.options_of(app), later)
        assert await _tick(app, "cases_weibo_comments") == 0
        assert await inbox.send_due(db, comments_web.apis_of(app), later) == 0

    # A restart: a new application and poller over the same database.
    async with running(tmp_path, database_url, **switches) as (app, origin):
        assert await _tick(app, "cases_weibo_comments") == 0
        assert await inbox.send_due(db, comments_web.apis_of(app), later + timedelta(hours=1)) == 0
        assert len(await _replies_to(app, pub.status_id, asks)) == 1
        assert len(await _replies_to(app, pub.status_id, pension)) == 1
        assert len(await _cases(db)) == 2
        assert await _count(db, CommentReply) == 2


async def test_office_switches_off_make_suggestions_and_cases(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    await add_item(db, 1, title=PENSION_TITLE, body="城乡居民养老保险基础养老金每人每月提高20元。")
    await _rule(db, "医保", "医保缴费请见 http://127.0.0.1/yibao")
    # Defaults: no rule on automatic, search answers off.
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        asks = await weibo_comment(http, origin, pub.status_id, "请问今年医保怎么缴费？", 1)
        pension = await weibo_comment(http, origin, pub.status_id, "城乡居民养老保险", 2)
        assert await _tick(app, "cases_weibo_comments") == 2
        assert await _tick(app, "comments_send_replies") == 0
        assert await _replies_to(app, pub.status_id, asks) == []
        assert await _replies_to(app, pub.status_id, pension) == []
        cases = await _cases(db)
        assert len(cases) == 2 and all(c.publication_id == pub.publication_id for c in cases)
        async with db.sessions() as session:
            notes = list(
                (
                    await session.execute(select(CaseEvent.text).where(CaseEvent.action == "note"))
                ).scalars()
            )
        assert any("医保缴费请见" in n for n in notes)
        assert any(f"《{PENSION_TITLE}》" in n for n in notes)
        # The inbox shows them as cases; a person may still answer from the console.
        assert (await _comment(db, asks)).state == "case"


async def _auto_setup(
    tmp_path: Path, database_url: str, db: Database
) -> tuple[dict[str, Any], int]:
    rule_id = await _rule(db, "医保", "医保缴费请见 http://127.0.0.1/disclosure/yibao")
    return {"comments.auto_answer_rules": [rule_id]}, rule_id


async def test_timeout_after_posting_reconciles_to_one_reply(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    switches, _ = await _auto_setup(tmp_path, database_url, db)
    async with (
        running(tmp_path, database_url, **switches) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        pub = await publish_both(app, origin)
        asks = await weibo_comment(http, origin, pub.status_id, "医保在哪里缴费", 1)
        assert await _tick(app, "cases_weibo_comments") == 1
        channels: Any = app[keys.CHANNELS]
        channels["weibo"].api("main").timeout = 1.0
        apis = comments_web.apis_of(app)
        # Weibo takes the reply, then the answer never comes back.
        await _faults(
            http, origin, {"platform": "weibo", "timeout_rate": 1.0, "timeout_phase": "after"}
        )
        assert await inbox.send_due(db, apis) == 0
        await _faults(http, origin, None)
        async with db.sessions() as session:
            row = (await session.execute(select(CommentReply))).scalar_one()
        assert row.state == "pending" and row.unknown
        assert len(await _replies_to(app, pub.status_id, asks)) == 1
        # The retry reads the post's comments first, finds the reply, and does not repost.
        later = utcnow() + timedelta(hours=1)
        assert await inbox.send_due(db, apis, later) == 1
        assert await inbox.send_due(db, apis, later + timedelta(hours=1)) == 0
        assert await _replies_to(app, pub.status_id, asks) == [
            "医保缴费请见 http://127.0.0.1/disclosure/yibao"
        ]
        assert (await _comment(db, asks)).state == "answered"
        assert await _cases(db) == []


async def test_crash_between_posting_and_recording(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    switches, _ = await _auto_setup(tmp_path, database_url, db)
    async with (
        running(tmp_path, database_url, **switches) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        pub = await publish_both(app, origin)
        asks = await weibo_comment(http, origin, pub.status_id, "医保在哪里缴费", 1)
        assert await _tick(app, "cases_weibo_comments") == 1
        async with db.sessions() as session:
            reply = (await session.execute(select(CommentReply))).scalar_one()
        # A sender claims the row and posts; the process dies before it records anything.
        now = utcnow()
        claimed = await inbox._claim(db, reply.id, now)
        assert claimed is not None
        channels: Any = app[keys.CHANNELS]
        await channels["weibo"].api("main").comment_reply(asks, pub.status_id, claimed.text)
        # Within the lease nobody else may send it.
        assert await inbox.send_due(db, comments_web.apis_of(app), now) == 0
    async with running(tmp_path, database_url, **switches) as (app, origin):
        # After the lease: outcome unknown, reconciled against Weibo, not posted again.
        later = now + inbox.LEASE + timedelta(seconds=1)
        assert await inbox.send_due(db, comments_web.apis_of(app), later) == 1
        assert len(await _replies_to(app, pub.status_id, asks)) == 1
        async with db.sessions() as session:
            done = (await session.execute(select(CommentReply))).scalar_one()
        assert done.state == "done" and done.attempts == 2


async def test_two_pollers_and_two_senders_at_once(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    switches, _ = await _auto_setup(tmp_path, database_url, db)
    async with (
        running(tmp_path, database_url, **switches) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        pub = await publish_both(app, origin)
        ids = [
            await weibo_comment(http, origin, pub.status_id, f"医保在哪里缴费{i}", i)
            for i in range(3)
        ]
        street = await weibo_comment(http, origin, pub.status_id, "路灯坏了一个月没人修", 9)
        apis = comments_web.apis_of(app)
        settings = app[keys.SETTINGS]
        rules = CaseRules.from_settings(settings)

        def answerer(database: Database) -> Answerer:
            return Answerer(
                database,
                RuleCache(database, 0.0),
                base_url=origin,
                auto_rules=settings.comments.auto_answer_rules,
            )

        # Two processes: the application's database pool and the test's own.
        app_db: Database = app[keys.DB]
        results = await asyncio.gather(
            weibo.poll_account(app_db, rules, apis, "main", "main", answers=answerer(app_db)),
            weibo.poll_account(db, rules, apis, "main", "main", answers=answerer(db)),
        )
        assert sum(results) == 4  # each comment decided once, by one of them
        assert await _count(db, CommentReply) == 3
        assert len(await _cases(db)) == 1
        sent = await asyncio.gather(inbox.send_due(app_db, apis), inbox.send_due(db, apis))
        assert sum(sent) == 3
        for remote in ids:
            assert len(await _replies_to(app, pub.status_id, remote)) == 1
        assert await _replies_to(app, pub.status_id, street) == []


async def test_hostile_comment_text(tmp_path: Path, database_url: str, db: Database) -> None:
    switches, _ = await _auto_setup(tmp_path, database_url, db)
    async with (
        running(tmp_path, database_url, **switches) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        pub = await publish_both(app, origin)
        html = await weibo_comment(
            http,
            origin,
            pub.status_id,
            "<script>alert(1)</script>\x07\x1b\u202e医保<img src=x onerror=alert(2)>",
            1,
        )
        huge = await weibo_comment(http, origin, pub.status_id, "路灯坏了" + "啊" * 595, 2)
        junk = await weibo_comment(http, origin, pub.status_id, "\x01\x02\x03 ", 3)
        mention = await weibo_comment(http, origin, pub.status_id, "回复@某人:@某人 @某人", 4)
        assert await _tick(app, "cases_weibo_comments") == 2
        assert await _tick(app, "comments_send_replies") == 1
        assert await _replies_to(app, pub.status_id, html) == [
            "医保缴费请见 http://127.0.0.1/disclosure/yibao"
        ]
        cases = await _cases(db)
        assert len(cases) == 1 and cases[0].reply_address["comment_id"] == str(huge)
        assert cases[0].text.startswith("路灯坏了") and len(cases[0].text) == 599
        stored = await _comment(db, html)
        assert "\x07" not in stored.text and "\x1b" not in stored.text
        assert "<script>" in stored.text  # kept as written; every page escapes it
        for remote in (junk, mention):
            assert await _replies_to(app, pub.status_id, remote) == []
        assert stored.state == "answered"


async def test_more_comments_than_one_page(tmp_path: Path, database_url: str, db: Database) -> None:
    count = weibo.PAGE + 30
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub: Published = await publish_both(app, origin)
        for i in range(count):
            await weibo_comment(http, origin, pub.status_id, f"第{i:03d}条意见：路灯坏了", i)
        assert await _tick(app, "cases_weibo_comments") == count
        assert await _tick(app, "cases_weibo_comments") == 0
        assert len(await _cases(db)) == count
