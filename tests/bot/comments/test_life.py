"""Comments through the real application and its sandbox, on both platforms: collected
once across restarts, replies posted once through platform timeouts, featured and hidden
states round-trip, a comment turned into a case (and not again by the Weibo case poller),
per-publication figures, retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.cases import web as cases_web
from bot.cases.models import Case
from bot.cases.service import CaseRules
from bot.comments import service
from bot.comments.models import Comment, CommentReply
from bot.comments.web import apis_of, options_of
from govcast import keys
from publisher import audit
from publisher.db import Database
from publisher.errors import WorkflowError
from publisher.orm import utcnow
from publisher.staff import StaffMember
from tests.bot.comments.helpers import (
    publish_both,
    running,
    tick,
    wechat_comment,
    weibo_comment,
)

ACTOR = audit.Actor(label="responder")


async def _comments(db: Database) -> list[Comment]:
    async with db.sessions() as session:
        return list((await session.execute(select(Comment).order_by(Comment.id))).scalars())


async def _by_remote(db: Database, platform: str, remote_id: int) -> Comment:
    async with db.sessions() as session:
        row = await session.scalar(
            select(Comment).where(Comment.platform == platform, Comment.remote_id == str(remote_id))
        )
        assert row is not None
        return row


async def _faults(http: aiohttp.ClientSession, origin: str, spec: dict[str, Any] | None) -> None:
    if spec is None:
        async with http.delete(f"{origin}/sandbox/_faults") as r:
            assert r.status in (200, 204), await r.text()
        return
    async with http.post(f"{origin}/sandbox/_faults", json=spec) as r:
        assert r.status in (200, 204), await r.text()


async def test_collected_once_across_restarts(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        for i in range(3):
            await wechat_comment(http, origin, pub.msg_data_id, f"微信留言{i}", follower=i)
        for i in range(2):
            await weibo_comment(http, origin, pub.status_id, f"微博评论{i}", follower=i)
        assert await tick(app, "comments_collect") == 5
        # Threads are not due again at once; forcing a poll finds nothing new either.
        assert await tick(app, "comments_collect") == 0
        later = utcnow() + timedelta(hours=1)
        assert await service.collect(db, apis_of(app), options_of(app), later) == 0
    # A second application over the same database: nothing is collected twice.
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        later = utcnow() + timedelta(hours=2)
        assert await service.collect(db, apis_of(app), options_of(app), later) == 0
        await wechat_comment(http, origin, pub.msg_data_id, "重启后的新留言", follower=7)
        await weibo_comment(http, origin, pub.status_id, "重启后的新评论", follower=7)
        later = utcnow() + timedelta(hours=3)
        assert await service.collect(db, apis_of(app), options_of(app), later) == 2
    rows = await _comments(db)
    assert len(rows) == 7
    assert len({(c.platform, c.account, c.remote_id) for c in rows}) == 7
    assert {c.publication_id for c in rows} == {pub.publication_id}
    assert {c.platform for c in rows} == {"wechat", "weibo"}
    async with db.sessions() as session:
        figures = await service.counts_by_publication(session, [pub.publication_id])
    assert figures[pub.publication_id]["wechat"].total == 4
    assert figures[pub.publication_id]["weibo"].unanswered == 3


async def test_replies_posted_once_through_timeouts(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        wx_id = await wechat_comment(http, origin, pub.msg_data_id, "请问何时缴费？")
        wb_id = await weibo_comment(http, origin, pub.status_id, "请问何时缴费？")
        assert await tick(app, "comments_collect") == 2
        apis = apis_of(app)
        channels: Any = app[keys.CHANNELS]
        for platform in ("wechat", "weibo"):
            channels[platform].api("main").timeout = 1.0
        wx = await _by_remote(db, "wechat", wx_id)
        wb = await _by_remote(db, "weibo", wb_id)
        async with db.transaction() as session:
            first = await service.request_reply(session, wx.id, "12月31日前缴费。", ACTOR)
            second = await service.request_reply(session, wb.id, "12月31日前缴费。", ACTOR)
        # The platform takes the reply, then the answer never comes back.
        await _faults(
            http, origin, {"platform": "all", "timeout_rate": 1.0, "timeout_phase": "after"}
        )
        assert not await service.send_one(db, apis, first.id)
        assert not await service.send_one(db, apis, second.id)
        await _faults(http, origin, None)
        async with db.sessions() as session:
            rows = list((await session.execute(select(CommentReply))).scalars())
        assert all(r.state == "pending" and r.unknown for r in rows)
        # The retry looks before it posts, sees the reply, and does not post again.
        later = utcnow() + timedelta(hours=1)
        assert await service.send_due(db, apis, later) == 2
        assert await service.send_due(db, apis, later + timedelta(hours=1)) == 0
        listed = await channels["wechat"].api("main").comment_list(pub.msg_data_id, 0, 0, 49)
        mine = [c for c in listed["comment"] if c["user_comment_id"] == wx_id]
        assert mine[0]["reply"]["content"] == "12月31日前缴费。"
        shown = await channels["weibo"].api("main").comments_show(pub.status_id)
        replies = [c for c in shown["comments"] if c.get("reply_comment", {}).get("id") == wb_id]
        assert len(replies) == 1
        # Our own reply is not collected as a follower's comment.
        later = utcnow() + timedelta(hours=3)
        assert await service.collect(db, apis, options_of(app), later) == 0
        for remote, platform in ((wx_id, "wechat"), (wb_id, "weibo")):
            row = await _by_remote(db, platform, remote)
            assert row.state == "answered" and row.reply_text == "12月31日前缴费。"
        # A second reply to the same comment is refused.
        async with db.transaction() as session:
            with pytest.raises(WorkflowError, match="already"):
                await service.request_reply(session, wx.id, "again", ACTOR)


async def test_timeout_before_effect_is_retried(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        wb_id = await weibo_comment(http, origin, pub.status_id, "路灯坏了")
        assert await tick(app, "comments_collect") == 1
        channels: Any = app[keys.CHANNELS]
        channels["weibo"].api("main").timeout = 1.0
        wb = await _by_remote(db, "weibo", wb_id)
        async with db.transaction() as session:
            reply = await service.request_reply(session, wb.id, "已转相关部门。", ACTOR)
        await _faults(
            http, origin, {"platform": "weibo", "timeout_rate": 1.0, "timeout_phase": "before"}
        )
        assert not await service.send_one(db, apis_of(app), reply.id)
        await _faults(http, origin, None)
        assert await service.send_due(db, apis_of(app), utcnow() + timedelta(hours=1)) == 1
        shown = await channels["weibo"].api("main").comments_show(pub.status_id)
        replies = [c for c in shown["comments"] if c.get("reply_comment", {}).get("id") == wb_id]
        assert [c["text"] for c in replies] == ["已转相关部门。"]


async def test_feature_hide_and_case(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        wx_ids = [
            await wechat_comment(http, origin, pub.msg_data_id, f"留言{i}", i) for i in range(2)
        ]
        wb_id = await weibo_comment(http, origin, pub.status_id, "小区门口路灯坏了一个月")
        assert await tick(app, "comments_collect") == 3
        apis = apis_of(app)
        channels: Any = app[keys.CHANNELS]
        wx = channels["wechat"].api("main")
        first = await _by_remote(db, "wechat", wx_ids[0])
        await service.set_featured(db, apis, first.id, True, ACTOR)
        elected = await wx.comment_list(pub.msg_data_id, 0, 0, 49, 2)
        assert [c["user_comment_id"] for c in elected["comment"]] == [wx_ids[0]]
        assert (await _by_remote(db, "wechat", wx_ids[0])).state == "featured"
        await service.set_featured(db, apis, first.id, False, ACTOR)
        assert (await wx.comment_list(pub.msg_data_id, 0, 0, 49, 2))["comment"] == []
        assert (await _by_remote(db, "wechat", wx_ids[0])).state == "new"
        # Hiding on WeChat deletes it there.
        second = await _by_remote(db, "wechat", wx_ids[1])
        await service.hide(db, apis, second.id, ACTOR)
        listed = await wx.comment_list(pub.msg_data_id, 0, 0, 49)
        assert [c["user_comment_id"] for c in listed["comment"]] == [wx_ids[0]]
        assert (await _by_remote(db, "wechat", wx_ids[1])).state == "hidden"
        # Deletion moves WeChat's offsets back; nothing is lost or doubled later.
        await wechat_comment(http, origin, pub.msg_data_id, "删除后的新留言", 5)
        assert await service.collect(db, apis, options_of(app), utcnow() + timedelta(hours=1)) == 1
        # Weibo: hidden in govcast only, still on Weibo.
        weibo_row = await _by_remote(db, "weibo", wb_id)
        await service.hide(db, apis, weibo_row.id, ACTOR)
        shown = await channels["weibo"].api("main").comments_show(pub.status_id)
        assert wb_id in [c["id"] for c in shown["comments"]]
        # A comment becomes a case, keeping the link; the Weibo case poller does not add one.
        rules = CaseRules.from_settings(app[keys.SETTINGS])
        case_id = await service.to_case(db, rules, "main", weibo_row.id, ACTOR)
        assert await service.to_case(db, rules, "main", weibo_row.id, ACTOR) == case_id
        for job in cases_web.ticks(app):
            if job.name == "cases_weibo_comments":
                await job.run()
        async with db.sessions() as session:
            cases = list((await session.execute(select(Case))).scalars())
        assert len(cases) == 1 and cases[0].id == case_id
        assert cases[0].publication_id == pub.publication_id
        assert cases[0].reply_address["comment_id"] == str(wb_id)
        assert (await _by_remote(db, "weibo", wb_id)).case_id == case_id
        wx_case = await service.to_case(db, rules, "main", first.id, ACTOR, "suggestion")
        assert wx_case != case_id
        assert (await _by_remote(db, "wechat", wx_ids[0])).state == "case"


async def test_retention_purge(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with (
        running(tmp_path, database_url, **{"comments.retention_days": 30}) as (
            app,
            origin,
        ),
        aiohttp.ClientSession() as http,
    ):
        pub = await publish_both(app, origin)
        await wechat_comment(http, origin, pub.msg_data_id, "旧留言")
        assert await tick(app, "comments_collect") == 1
        async with db.transaction() as session:
            reply_row = await service.request_reply(
                session, (await _comments(db))[0].id, "答复", ACTOR
            )
            assert reply_row.id
        assert await tick(app, "comments_purge") == 0
        assert await service.purge(db, 30, utcnow() + timedelta(days=31)) == 1
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Comment)) == 0
            assert await session.scalar(select(func.count()).select_from(CommentReply)) == 0
