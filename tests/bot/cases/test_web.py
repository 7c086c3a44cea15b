"""The public case form, the citizen's case page and published answers over HTTP."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.cases import service
from bot.cases import web as cases_web
from govcast import keys
from govcast.settings import Settings
from publisher.db import Database
from publisher.staff import StaffMember

NOW = datetime(2026, 2, 13, 2, 0, tzinfo=UTC)  # Friday before Spring Festival 2026


def _app(db: Database, settings: Settings, clock: list[datetime]) -> web.Application:
    app = web.Application()
    app[keys.SETTINGS] = settings
    app[keys.DB] = db
    app[cases_web.CLOCK] = lambda: clock[0]
    cases_web.setup(app)
    return app


def _answer(page: str) -> tuple[str, str]:
    question = re.search(r"（(\d) ([+−]) (\d) = \?）", page)
    assert question is not None
    a, op, b = int(question.group(1)), question.group(2), int(question.group(3))
    token = re.search(r'name="challenge" value="([^"]+)"', page)
    assert token is not None
    return str(a + b if op == "+" else a - b), token.group(1)


async def _submit(client: Any, **fields: str) -> Any:
    page = await (await client.get("/cases/new")).text()
    answer, token = _answer(page)
    data = {
        "kind": "complaint",
        "text": "小区路灯坏了一个月，我叫张伟，电话13912345678",
        "captcha": answer,
        "challenge": token,
        "consent": "1",
        "name": "张伟",
    }
    data.update(fields)
    return await client.post("/cases/new", data=data)


async def test_form_to_case_page_and_nobody_elses(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    clock = [NOW]
    client = await aiohttp_client(_app(db, settings, clock))
    form = await client.get("/cases/new")
    html = await form.text()
    assert form.status == 200 and '<label for="text">' in html and 'lang="zh-CN"' in html
    response = await _submit(client)
    page = await response.text()
    assert response.status == 200, page
    number = re.search(r"<strong>(GC\d{8}-\d{4})</strong>", page)
    secret = re.search(r"查询密码 / Secret: <strong>([^<]+)</strong>", page)
    assert number and secret
    # Due: 5 working days over Spring Festival: Sat 14 (worked), 24, 25, 26, 27 Feb.
    assert "2026-02-27" in page
    mine = await client.post(
        "/cases/track", data={"number": number.group(1), "secret": secret.group(1)}
    )
    assert mine.status == 200 and "小区路灯坏了" in await mine.text()
    # A second citizen's case and secret do not open the first, nor the other way round.
    other = await (await _submit(client, text="另一位市民的私人问题内容")).text()
    other_secret = re.search(r"查询密码 / Secret: <strong>([^<]+)</strong>", other)
    assert other_secret
    denied = await client.post(
        "/cases/track", data={"number": number.group(1), "secret": other_secret.group(1)}
    )
    assert denied.status == 404 and "小区路灯坏了" not in await denied.text()
    guessed = await client.get(f"/cases/track?number={number.group(1)}&secret=x")
    assert guessed.status == 404
    # Not published: neither in the list nor at its public address.
    assert number.group(1) not in await (await client.get("/cases/")).text()
    assert (await client.get(f"/cases/{number.group(1)}")).status == 404


async def test_captcha_and_bad_input_are_clear_4xx(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(_app(db, settings, [NOW]))
    wrong = await _submit(client, captcha="99")
    assert wrong.status == 400 and "验证问题" in await wrong.text()
    for fields in (
        {"kind": "<script>"},
        {"text": "短"},
        {"text": "长" * 6000},
        {"challenge": "1.2.3"},
        {"name": "名" * 200},
    ):
        assert (await _submit(client, **fields)).status == 400
    huge = await client.post("/cases/new", data={"text": "x" * 200_000})
    assert huge.status == 413
    assert (await client.post("/cases/rate", data={"rating": "abc"})).status == 400
    assert (
        await client.post(
            "/cases/rate", data={"rating": "5", "number": "GC20260213-0001", "secret": "nope"}
        )
    ).status == 404
    assert (await client.get("/cases/?page=x")).status == 400
    async with db.sessions() as session:
        assert await service.cases_of_citizen(session, "x") == []


async def test_rate_limit_per_ip(db: Database, settings: Settings, aiohttp_client: Any) -> None:
    limited = dataclasses.replace(
        settings, cases=dataclasses.replace(settings.cases, web_per_hour=2)
    )
    clock = [NOW]
    client = await aiohttp_client(_app(db, limited, clock))
    assert (await _submit(client)).status == 200
    assert (await _submit(client)).status == 200
    assert (await _submit(client)).status == 429
    clock[0] = NOW + timedelta(hours=2)
    assert (await _submit(client)).status == 200


async def test_published_answer_is_masked_and_rating_works(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember], aiohttp_client: Any
) -> None:
    client = await aiohttp_client(_app(db, settings, [NOW]))
    page = await (await _submit(client)).text()
    number = re.search(r"<strong>(GC\d{8}-\d{4})</strong>", page)
    secret = re.search(r"查询密码 / Secret: <strong>([^<]+)</strong>", page)
    assert number and secret
    admin = staff_members["admin"]
    async with db.transaction() as session:
        case = await service.case_by_number(session, number.group(1))
        assert case is not None
        await service.accept(session, admin, case.id, now=NOW)
        await service.reply(
            session, admin, case.id, "已修复。张伟您好，如有问题请拨打0564-3371234", now=NOW
        )
        q, a = service.proposed_publication(case)
        await service.publish_case(session, admin, case.id, q, a, now=NOW)
    listing = await (await client.get("/cases/")).text()
    assert number.group(1) in listing
    item = await (await client.get(f"/cases/{number.group(1)}")).text()
    assert "13912345678" not in item and "张伟" not in item and "139****5678" in item
    rated = await client.post(
        "/cases/rate", data={"number": number.group(1), "secret": secret.group(1), "rating": "4"}
    )
    assert rated.status == 200
    again = await client.post(
        "/cases/rate", data={"number": number.group(1), "secret": secret.group(1), "rating": "1"}
    )
    assert again.status == 400


async def test_mayor_reading_feedback_lands_as_linked_cases(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember], aiohttp_client: Any
) -> None:
    from sqlalchemy import update

    from publisher.models import Publication
    from tests.publisher.helpers import core, create_draft

    pub = await create_draft(
        db,
        core(targets=("website",)),
        staff_members["editor"],
        kind="column_item",
        column="mayor_reading",
        channels=["website"],
    )
    client = await aiohttp_client(_app(db, settings, [NOW]))
    assert (await client.get(f"/cases/new?item={pub.id}")).status == 404  # not published
    async with db.transaction() as session:
        await session.execute(
            update(Publication).where(Publication.id == pub.id).values(state="published")
        )
    page = await (await client.get(f"/cases/new?item={pub.id}")).text()
    answer, token = _answer(page)
    response = await client.post(
        f"/cases/new?item={pub.id}",
        data={
            "kind": "suggestion",
            "text": "建议在市长工作读本中增加民生数据",
            "captcha": answer,
            "challenge": token,
        },
    )
    assert response.status == 200
    assert (await client.get("/cases/new?item=abc")).status == 400
    async with db.sessions() as session:
        assert await service.feedback_count(session, pub.id) == 1


async def test_a_solved_challenge_cannot_be_replayed(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(_app(db, settings, [NOW]))
    answer, token = _answer(await (await client.get("/cases/new")).text())
    data = {
        "kind": "help",
        "text": "老人独居需要帮助联系社区",
        "captcha": answer,
        "challenge": token,
    }
    assert (await client.post("/cases/new", data=data)).status == 200
    replay = await client.post("/cases/new", data=data)
    assert replay.status == 400 and "已使用" in await replay.text()


async def test_hostile_text_is_escaped_on_the_case_page(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(_app(db, settings, [NOW]))
    page = await (await _submit(client, text="<script>alert('x')</script> 请处理")).text()
    number = re.search(r"<strong>(GC\d{8}-\d{4})</strong>", page)
    secret = re.search(r"查询密码 / Secret: <strong>([^<]+)</strong>", page)
    assert number and secret
    shown = await (
        await client.post(
            "/cases/track", data={"number": number.group(1), "secret": secret.group(1)}
        )
    ).text()
    assert "<script>alert" not in shown and "&lt;script&gt;" in shown


async def test_reminder_tick_is_wired(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember]
) -> None:
    from sqlalchemy import select

    from bot.cases.models import CaseNotification
    from tests.bot.cases.helpers import new_case

    clock = [NOW]
    app = _app(db, settings, clock)
    await new_case(db, NOW - timedelta(days=40))
    job = next(t for t in cases_web.ticks(app) if t.name == "cases_deadline_reminders")
    assert await job.run() == 1  # overdue, nobody assigned: the office admin hears of it
    assert await job.run() == 0
    async with db.sessions() as session:
        rows = list((await session.execute(select(CaseNotification))).scalars())
    assert [(r.user_id, r.stage) for r in rows] == [(staff_members["admin"].user_id, "overdue")]
