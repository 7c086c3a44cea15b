"""The inspection checklist finds each single-veto problem and says what to fix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.cases.models import Case
from publisher.config import CoreConfig
from publisher.db import Database
from publisher.models import Delivery, Office, Publication
from publisher.orm import utcnow
from reports import inspect
from reports.lists import add_entry

NOW = utcnow()


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        if request.path in ("/", "/ok.png"):
            return web.Response(text="ok")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/")).rstrip("/")
    finally:
        await server.close()


async def _publication(
    db: Database,
    title: str,
    body: str,
    *,
    created: timedelta,
    published: timedelta,
    approved: timedelta | None = None,
    targets: tuple[tuple[str, timedelta], ...] = (),
) -> int:
    async with db.transaction() as session:
        office = (await session.execute(select(Office).where(Office.key == "main"))).scalar_one()
        row = Publication(
            office_id=office.id,
            kind="disclosure",
            state="published",
            title=title,
            body_html=body,
            summary="",
            category="service",
            issuing_body="示例市政府办公室",
            channels=["website"],
            created_at=NOW - created,
            updated_at=NOW - created,
            approved_at=NOW - (approved if approved is not None else published),
            published_at=NOW - published,
            index_number=f"X/{title}",
        )
        session.add(row)
        await session.flush()
        for target, ago in targets:
            channel, account = target.split(":")
            session.add(
                Delivery(
                    publication_id=row.id,
                    channel=channel,
                    account=account,
                    state="done",
                    done_at=NOW - ago,
                )
            )
        return row.id


def _config(base_url: str) -> CoreConfig:
    return CoreConfig(
        website_base_url=base_url,
        timezone=ZoneInfo("Asia/Shanghai"),
        targets_by_office={"main": ("website", "wechat:main", "weibo:main")},
    )


async def test_each_single_veto_problem_is_found(db: Database, site: str) -> None:
    async with db.transaction() as session:
        await add_entry(session, "leader", "张建国", "市长")
        office = (await session.execute(select(Office).where(Office.key == "main"))).scalar_one()
        session.add(
            Case(
                office_id=office.id,
                number="C1",
                kind="consultation",
                channel="wechat",
                text="问",
                state="assigned",
                received_at=NOW - timedelta(days=100),
                deadline_at=NOW,
            )
        )
        session.add(
            Case(
                office_id=office.id,
                number="C2",
                kind="consultation",
                channel="wechat",
                text="问",
                state="replied",
                received_at=NOW - timedelta(days=30),
                replied_at=NOW - timedelta(days=10),
                deadline_at=NOW,
            )
        )
    leader = await _publication(
        db,
        "市领导调研",
        "<p>副市长张建国到企业调研。</p>",
        created=timedelta(days=3),
        published=timedelta(days=2),
    )
    leak = await _publication(
        db,
        "处罚决定",
        "<p>当事人身份证号341502198503120019。</p>",
        created=timedelta(days=3),
        published=timedelta(days=1),
        targets=(("wechat:main", timedelta(days=20)),),
    )
    backdated = await _publication(
        db, "补发通知", "<p>通知。</p>", created=timedelta(days=5), published=timedelta(days=9)
    )
    broken = await _publication(
        db,
        "图片新闻",
        f'<p>见图</p><img src="{site}/gone.png" alt="图"><img src="/ok.png" alt="好">',
        created=timedelta(days=2),
        published=timedelta(days=1),
    )
    async with aiohttp.ClientSession() as http:
        result = await inspect.run_inspection(db, _config(site), http, now=NOW)
    items = {i.code: i for i in result.items}
    assert result.vetoed
    # Single-veto items come first.
    vetoes = [i.veto for i in result.items]
    assert vetoes == sorted(vetoes, reverse=True)
    assert [p.url for p in items["leader_titles"].problems] == [f"/console/publications/{leader}"]
    assert "张建国现任市长" in items["leader_titles"].problems[0].text
    assert [p.url for p in items["personal_data"].problems] == [f"/console/publications/{leak}"]
    assert [p.url for p in items["backdated"].problems] == [f"/console/publications/{backdated}"]
    assert items["home_stale"].passed
    assert sorted(p.text for p in items["accounts_silent"].problems) == [
        "账号 wechat:main 最近一次发布："
        + (NOW - timedelta(days=20))
        .astimezone(ZoneInfo("Asia/Shanghai"))
        .strftime("%Y-%m-%d %H:%M"),
        "账号 weibo:main 最近一次发布：从未发布",
    ]
    assert [p.text[:5] for p in items["cases_overdue"].problems] == ["留言 C1"]
    assert [p.text for p in items["cases_slow"].problems] and "C2" in items["cases_slow"].problems[
        0
    ].text
    assert [p.text for p in items["site_unreachable"].problems] == [
        f"{site}/disclosure/ 返回 HTTP 404"
    ]
    assert [p.url for p in items["broken_links"].problems] == [f"/console/publications/{broken}"]
    assert all(i.fix for i in result.items)
    text = inspect.render_text(result)
    assert text.index("一、单项否决指标") < text.index("二、扣分指标")
    assert "整改：" in text and f"/console/publications/{leak}" in text
    html = inspect.render_html(result)
    assert f'<a href="/console/publications/{leak}">' in html


async def test_offline_run_marks_probes_skipped_never_passed(db: Database) -> None:
    result = await inspect.run_inspection(db, _config("http://127.0.0.1:1"), None, now=NOW)
    items = {i.code: i for i in result.items}
    assert not items["site_unreachable"].passed and items["site_unreachable"].skipped
    assert not items["home_stale"].passed  # nothing ever published
    assert items["leader_titles"].passed and items["personal_data"].passed
    # No website entries at all: every column is empty, named in Chinese.
    assert "栏目“新闻动态”没有内容" in [p.text for p in items["columns_empty"].problems]
    assert len(items["columns_empty"].problems) >= 5 and result.vetoed


async def test_unreachable_site(db: Database) -> None:
    async with aiohttp.ClientSession() as http:
        result = await inspect.run_inspection(db, _config("http://127.0.0.1:1"), http, now=NOW)
    reach = next(i for i in result.items if i.code == "site_unreachable")
    assert len(reach.problems) == 2 and "无法连接" in reach.problems[0].text


def test_stale_columns_are_named_in_chinese() -> None:
    from reports.figures import ColumnFigure

    last = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    problems = inspect.stale_column_problems(
        [
            ColumnFigure("news", 3, last, stale=True, empty=False),
            ColumnFigure("unheard_of", 1, None, stale=True, empty=False),
        ],
        ZoneInfo("Asia/Shanghai"),
    )
    assert [p.text for p in problems] == [
        "栏目“新闻动态”最近更新：2026-05-01 10:00",
        "栏目“unheard_of”最近更新：—",
    ]
