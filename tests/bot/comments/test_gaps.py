"""Collection and answering rules through the real application and its sandbox: purged
comments stay gone, a Weibo burst larger than one poll arrives whole over several polls,
one answer per Weibo comment whichever path (inbox or case), every article govcast sent
(publish, correction, mass send) is collected, inbox states overlap, and the publication
page shows its comment figures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.cases import service as cases
from bot.cases import web as cases_web
from bot.cases.models import Case, CaseMessage
from bot.cases.service import CaseRules
from bot.comments import service
from bot.comments.models import Comment, CommentReply, CommentThread
from bot.comments.web import apis_of, options_of
from govcast import keys
from publisher import audit
from publisher.db import Database
from publisher.errors import WorkflowError
from publisher.models import Delivery
from publisher.orm import utcnow
from publisher.staff import StaffMember
from sandbox.web import CLOCK as SANDBOX_CLOCK
from tests.bot.comments.helpers import (
    console_login,
    png,
    publish_both,
    running,
    tick,
    wechat_comment,
    weibo_comment,
)

ACTOR = audit.Actor(label="responder")


async def _count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _by_remote(db: Database, platform: str, remote_id: int) -> Comment:
    async with db.sessions() as session:
        row = await session.scalar(
            select(Comment).where(Comment.platform == platform, Comment.remote_id == str(remote_id))
        )
        assert row is not None
        return row


async def _replies_under(app: Any, status_id: str, comment_id: int) -> list[str]:
    """Texts the platform shows under one Weibo comment (our replies)."""
    shown = await app[keys.CHANNELS]["weibo"].api("main").comments_show(status_id, count=200)
    return [
        c["text"] for c in shown["comments"] if c.get("reply_comment", {}).get("id") == comment_id
    ]


async def _run_case_tick(app: Any, name: str) -> Any:
    for job in cases_web.ticks(app):
        if job.name == name:
            return await job.run()
    raise AssertionError(name)


async def test_purged_comments_are_not_collected_again(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with (
        running(tmp_path, database_url, **{"comments.retention_days": 30}) as (app, origin),
        aiohttp.ClientSession() as http,
    ):
        pub = await publish_both(app, origin)
        for i in range(3):
            await wechat_comment(http, origin, pub.msg_data_id, f"旧留言{i}", follower=i)
        await weibo_comment(http, origin, pub.status_id, "旧评论", follower=1)
        assert await tick(app, "comments_collect") == 4
        apis, options = apis_of(app), options_of(app)
        later = utcnow() + timedelta(days=31)
        assert await service.purge(db, 30, later) == 4
        # WeChat's list is re-read from the start (offsets move back on deletions): the
        # purged comments are listed again, and stay gone.
        for hours in (1, 2):
            assert await service.collect(db, apis, options, later + timedelta(hours=hours)) == 0
        assert await _count(db, Comment) == 0
        # Comments written after the purge are still collected, once.
        app[SANDBOX_CLOCK].advance(31 * 86400)
        fresh_wx = await wechat_comment(http, origin, pub.msg_data_id, "新留言", follower=9)
        fresh_wb = await weibo_comment(http, origin, pub.status_id, "新评论", follower=9)
        assert await service.collect(db, apis, options, later + timedelta(hours=3)) == 2
        assert await service.collect(db, apis, options, later + timedelta(hours=4)) == 0
        assert {c.remote_id for c in await _all(db)} == {str(fresh_wx), str(fresh_wb)}


async def _all(db: Database) -> list[Comment]:
    async with db.sessions() as session:
        return list((await session.execute(select(Comment).order_by(Comment.id))).scalars())


async def test_weibo_burst_arrives_whole_over_several_polls(
    tmp_path: Path,
    database_url: str,
    db: Database,
    staff_members: dict[str, StaffMember],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One poll reads 2 pages of 5: a burst of 23 takes three polls.
    monkeypatch.setattr(service, "WEIBO_PAGE", 5)
    monkeypatch.setattr(service, "MAX_PAGES", 2)
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        apis, options = apis_of(app), options_of(app)
        burst = [
            await weibo_comment(http, origin, pub.status_id, f"第{i:02d}条", follower=i)
            for i in range(23)
        ]
        # Our own reply in the middle of the burst takes a place on a page, never a row.
        channels: Any = app[keys.CHANNELS]
        await channels["weibo"].api("main").comment_reply(burst[7], pub.status_id, "收到")
        at = utcnow()
        got = []
        for hour in range(1, 4):
            got.append(await service.collect(db, apis, options, at + timedelta(hours=hour)))
            if hour == 1:
                # More arrive during the backfill: newer than the burst, read after it.
                late = [
                    await weibo_comment(http, origin, pub.status_id, f"补充{i}", follower=50 + i)
                    for i in range(3)
                ]
        async with db.sessions() as session:
            thread = await session.scalar(
                select(CommentThread).where(CommentThread.platform == "weibo")
            )
            assert thread is not None
        # The gap down to the old cursor is closed; the cursor is at the burst's newest.
        assert thread.backfill is None
        # Pages of 5 cut by every listed comment, our reply (the newest) included.
        assert got == [9, 10, 4]
        assert int(thread.cursor) >= max(burst)
        assert await service.collect(db, apis, options, at + timedelta(hours=5)) == 3
        assert await service.collect(db, apis, options, at + timedelta(hours=6)) == 0
        rows = [c for c in await _all(db) if c.platform == "weibo"]
        assert sorted(int(c.remote_id) for c in rows) == sorted(burst + late)
        assert len(rows) == len({c.remote_id for c in rows})


async def test_weibo_comment_turned_into_case_is_answered_once(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    responder = staff_members["responder"]
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        first = await weibo_comment(http, origin, pub.status_id, "小区门口路灯坏了一个月", 1)
        second = await weibo_comment(http, origin, pub.status_id, "人行道地砖松动很危险", 2)
        assert await tick(app, "comments_collect") == 2
        rules = CaseRules.from_settings(app[keys.SETTINGS])
        # 1. A comment that became a case: the inbox refuses a reply and points to the case.
        row = await _by_remote(db, "weibo", first)
        case_id = await service.to_case(db, rules, "main", row.id, ACTOR)
        async with db.transaction() as session:
            with pytest.raises(WorkflowError, match=f"#{case_id}"):
                await service.request_reply(session, row.id, "已转相关部门。", ACTOR)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
            csrf = await console_login(staff, origin, "responder")
            url = f"{origin}/console/comments/{row.id}"
            async with staff.get(url) as r:
                html = await r.text()
            assert 'id="reply-through-case"' in html and 'id="reply-form"' not in html
            async with staff.post(f"{url}/reply", data={"_csrf": csrf, "text": "已转。"}) as r:
                assert r.status == 400 and f"#{case_id}" in await r.text()
        assert await _count(db, CommentReply) == 0
        async with db.transaction() as session:
            await cases.accept(session, responder, case_id)
            await cases.reply(session, responder, case_id, "本周内修复。", base_url=origin)
        assert await _run_case_tick(app, "cases_send_messages") == 1
        under = await _replies_under(app, pub.status_id, first)
        assert len(under) == 1 and "本周内修复。" in under[0]
        # The case's reply marks the comment answered (figures, filter), and stays refused.
        answered = await _by_remote(db, "weibo", first)
        assert answered.reply_text == under[0] and answered.replied_at is not None
        async with db.sessions() as session:
            listed, _ = await service.inbox(session, service.InboxFilter(state="answered"))
            figures = await service.counts_by_publication(session, [pub.publication_id])
        assert [c.remote_id for c in listed] == [str(first)]
        assert figures[pub.publication_id]["weibo"].answered == 1
        assert figures[pub.publication_id]["weibo"].unanswered == 1
        async with db.transaction() as session:
            with pytest.raises(WorkflowError, match="case"):
                await service.request_reply(session, row.id, "again", ACTOR)
        # 2. Answered in the inbox first, then made a case: the case's reply is not posted
        # under the same comment again; staff are alerted instead.
        other = await _by_remote(db, "weibo", second)
        async with db.transaction() as session:
            reply = await service.request_reply(session, other.id, "已转交城管处理。", ACTOR)
        assert await service.send_one(db, apis_of(app), reply.id)
        # The Weibo case poller adds no case for either (a case already; answered).
        await _run_case_tick(app, "cases_weibo_comments")
        assert await _count(db, Case) == 1
        assert await _replies_under(app, pub.status_id, first) == under
        second_case = await service.to_case(db, rules, "main", other.id, ACTOR)
        async with db.transaction() as session:
            await cases.accept(session, responder, second_case)
            await cases.reply(session, responder, second_case, "已修复。", base_url=origin)
        assert await _run_case_tick(app, "cases_send_messages") == 0
        assert await _replies_under(app, pub.status_id, second) == ["已转交城管处理。"]
        async with db.sessions() as session:
            message = await session.scalar(
                select(CaseMessage).where(CaseMessage.case_id == second_case)
            )
            assert message is not None and message.state == "dead"
            assert "评论收件箱" in (message.last_error or "")
            answered_first = await session.get(Comment, other.id)
            assert answered_first is not None and answered_first.reply_text == "已转交城管处理。"
            assert await session.scalar(select(func.count()).select_from(Case)) == 2


async def test_every_article_sent_is_collected(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        channels: Any = app[keys.CHANNELS]
        wx = channels["wechat"].api("main")
        thumb = await wx.add_image_material(png(), "c.png", "image/png")
        article = {
            "title": "关于医保缴费的通知（更正）",
            "author": "医保局",
            "content": "<p>更正</p>",
            "content_source_url": f"{origin}/disclosure/x",
            "thumb_media_id": thumb,
            "need_open_comment": 1,
        }
        # A correction: a new article (its own msg_data_id); a mass send of it: another.
        media_id = await wx.draft_add([article])
        corrected = await wx.freepublish_submit(media_id)
        app[SANDBOX_CLOCK].advance(5)
        assert (await wx.freepublish_get(corrected["publish_id"]))["publish_status"] == 0
        mass = await wx.mass_sendall(await wx.draft_add([article]), "pub-push-1")
        post = await channels["weibo"].api("main").share(f"更正：关于医保缴费的通知 {origin}/x")
        now = utcnow()
        async with db.transaction() as session:
            for action, channel, remote, receipt, revision in (
                ("update", "wechat", corrected["publish_id"], corrected, 2),
                ("push", "wechat", mass["msg_id"], mass, 0),
                ("update", "weibo", post["id"], {}, 2),
                # A repeated mass send has no msg_data_id: nothing to collect, no error.
                ("push", "wechat", "pub-push-0", {"clientmsgid": "x", "repeat": True}, 1),
            ):
                session.add(
                    Delivery(
                        publication_id=pub.publication_id,
                        channel=channel,
                        account="main",
                        action=action,
                        state="done",
                        revision=revision,
                        remote_id=str(remote),
                        done_at=now,
                        receipt={k: str(v) for k, v in receipt.items()},
                    )
                )
        targets = {
            "publish": await wechat_comment(http, origin, pub.msg_data_id, "原文留言"),
            "update": await wechat_comment(
                http, origin, str(corrected["msg_data_id"]), "更正文留言"
            ),
            "push": await wechat_comment(http, origin, str(mass["msg_data_id"]), "群发留言"),
            "weibo": await weibo_comment(http, origin, pub.status_id, "原微博评论"),
            "weibo-update": await weibo_comment(http, origin, str(post["id"]), "更正微博评论"),
        }
        assert await tick(app, "comments_collect") == 5
        async with db.sessions() as session:
            threads = list((await session.execute(select(CommentThread))).scalars())
        assert sorted(t.target for t in threads) == sorted(
            [
                f"{pub.msg_data_id}:0",
                f"{corrected['msg_data_id']}:0",
                f"{mass['msg_data_id']}:0",
                pub.status_id,
                str(post["id"]),
            ]
        )
        rows = await _all(db)
        assert sorted(c.remote_id for c in rows) == sorted(str(v) for v in targets.values())
        assert {c.publication_id for c in rows} == {pub.publication_id}
        # Nothing more to open: a second round finds every address already known.
        async with db.transaction() as session:
            assert await service.discover(session) == 0


async def test_featured_and_answered_listed_under_both(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        both = await wechat_comment(http, origin, pub.msg_data_id, "请问何时缴费？", 1)
        fresh = await wechat_comment(http, origin, pub.msg_data_id, "谢谢", 2)
        assert await tick(app, "comments_collect") == 2
        row = await _by_remote(db, "wechat", both)
        async with db.transaction() as session:
            reply = await service.request_reply(session, row.id, "12月31日前。", ACTOR)
        assert await service.send_one(db, apis_of(app), reply.id)
        await service.set_featured(db, apis_of(app), row.id, True, ACTOR)

        async def listed(state: str) -> list[str]:
            async with db.sessions() as session:
                rows, total = await service.inbox(session, service.InboxFilter(state=state))
            assert total == len(rows)
            return [c.remote_id for c in rows]

        assert await listed("answered") == [str(both)]
        assert await listed("featured") == [str(both)]
        assert await listed("new") == [str(fresh)]
        assert await listed("hidden") == [] and await listed("case") == []
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
            await console_login(staff, origin, "responder")
            for state in ("answered", "featured"):
                async with staff.get(f"{origin}/console/comments?state={state}") as r:
                    html = await r.text()
                    assert r.status == 200
                assert "请问何时缴费" in html and "谢谢" not in html, state


async def test_publication_page_shows_comment_figures(
    tmp_path: Path, database_url: str, db: Database, staff_members: dict[str, StaffMember]
) -> None:
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        wx_ids = [
            await wechat_comment(http, origin, pub.msg_data_id, f"留言{i}", i) for i in range(3)
        ]
        await weibo_comment(http, origin, pub.status_id, "评论", 1)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
            await console_login(staff, origin, "editor")
            page = f"{origin}/console/publications/{pub.publication_id}"
            async with staff.get(page) as r:
                html = await r.text()
                assert r.status == 200
            assert 'id="publication-comments"' in html and 'id="comment-counts"' not in html
            assert await tick(app, "comments_collect") == 4
            row = await _by_remote(db, "wechat", wx_ids[0])
            async with db.transaction() as session:
                reply = await service.request_reply(session, row.id, "已收到。", ACTOR)
            assert await service.send_one(db, apis_of(app), reply.id)
            async with staff.get(page) as r:
                html = await r.text()
        assert 'id="comment-counts"' in html
        wechat_row = html.split('data-platform="wechat"')[1].split("</tr>")[0]
        weibo_row = html.split('data-platform="weibo"')[1].split("</tr>")[0]
        # total, answered, unanswered
        assert "<td>3</td><td>1</td><td>2</td>" in wechat_row
        assert "<td>1</td><td>0</td><td>1</td>" in weibo_row
        assert f'href="/console/comments?publication={pub.publication_id}"' in html


async def test_weibo_case_poller_takes_a_burst_over_several_polls(
    tmp_path: Path,
    database_url: str,
    db: Database,
    staff_members: dict[str, StaffMember],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cases import weibo

    monkeypatch.setattr(weibo, "PAGE", 5)
    monkeypatch.setattr(weibo, "MAX_PAGES", 2)
    async with running(tmp_path, database_url) as (app, origin), aiohttp.ClientSession() as http:
        pub = await publish_both(app, origin)
        burst = [
            await weibo_comment(http, origin, pub.status_id, f"第{i:02d}条意见：路灯坏了", i)
            for i in range(23)
        ]
        handled = [await _run_case_tick(app, "cases_weibo_comments")]
        late = [
            await weibo_comment(http, origin, pub.status_id, f"补充意见{i}：地砖松动", 50 + i)
            for i in range(3)
        ]
        for _ in range(4):
            handled.append(await _run_case_tick(app, "cases_weibo_comments"))
        assert handled == [10, 10, 3, 3, 0]
        async with db.sessions() as session:
            remote_ids = list((await session.execute(select(Case.remote_id))).scalars())
        assert sorted(r or "" for r in remote_ids) == sorted(
            f"weibo:main:{i}" for i in burst + late
        )
