"""The review queue, the dashboard's alert count, the API's case list across offices, and
the hourly clean-up of sessions, idempotency keys and rate counters."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from console.models import ApiToken, ConsoleSession, IdempotencyKey, RateBucket
from govcast.settings import ExtraOfficeSettings, SandboxSettings
from publisher import audit, workflow
from publisher.models import Alert, Membership, User
from publisher.orm import utcnow
from tests.console.helpers import compose_form
from tests.console.test_api import auth, token_for


async def test_the_queue_leaves_out_what_the_member_already_approved(signed_in: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf))
    publication_id = int(response.headers["Location"].rsplit("/", 1)[1])
    await editor.post(f"/console/publications/{publication_id}/submit")
    link = f'href="/console/publications/{publication_id}"'
    first = await signed_in("reviewer1")
    assert link in await (await first.get("/console/review")).text()
    decided = await first.post(
        f"/console/publications/{publication_id}/review", {"decision": "approve"}
    )
    assert decided.status == 303
    # Step two is a reviewer's step; reviewer1 is a reviewer but decided step one.
    assert link not in await (await first.get("/console/review")).text()
    assert (
        'id="approve"'
        not in await (await first.get(f"/console/publications/{publication_id}")).text()
    )
    assert '<strong id="queue-size">0</strong>' in await (await first.get("/console/")).text()
    second = await signed_in("reviewer2")
    assert link in await (await second.get("/console/review")).text()
    assert '<strong id="queue-size">1</strong>' in await (await second.get("/console/")).text()


async def _two_offices(settings: Any, db: Any) -> Any:
    from govcast import runtime

    two = dataclasses.replace(
        settings,
        offices={"health": ExtraOfficeSettings(name="卫健委", org_code="11340000MB0000001X")},
        sandbox=SandboxSettings(enabled=False),
    )
    await runtime.sync_offices(db, two)
    return two


async def _client(aiohttp_client: Any, settings: Any, name: str) -> Any:
    from aiohttp.test_utils import TestClient, TestServer

    from govcast.app import create_app
    from tests.console.conftest import Staff

    server = TestServer(create_app(settings, roles={"web"}))
    client = TestClient(server)
    await client.start_server()
    member = Staff(client, name)
    assert (await member.login()).status == 303
    return member


def _alert_count(html: str) -> int:
    match = re.search(r"未确认告警: <strong>(\d+)</strong>", html)
    assert match, html
    return int(match.group(1))


async def test_the_dashboard_counts_only_the_members_alerts(
    aiohttp_client: Any, settings: Any, staff_members: Any, db: Any
) -> None:
    from govcast import runtime
    from tests.publisher.helpers import sample

    two = await _two_offices(settings, db)
    async with db.transaction() as session:
        config = runtime.core_config(two)
        ids = {}
        for key in ("main", "health"):
            office = await workflow.office_by_key(session, key)
            created = await workflow.create(
                session, config, office, sample(channels=["website"]), audit.CLI
            )
            ids[key] = created.id
        session.add(Alert(kind="dead_letter", message="主办", publication_id=ids["main"]))
        session.add(Alert(kind="dead_letter", message="卫健", publication_id=ids["health"]))
        session.add(Alert(kind="dead_letter", message="卫健2", publication_id=ids["health"]))
        session.add(Alert(kind="config", message="全局"))
    approver = await _client(aiohttp_client, two, "approver")
    try:
        home = await (await approver.get("/console/")).text()
        board = await (await approver.get("/console/deliveries")).text()
    finally:
        await approver.client.close()
    # The count is what the delivery board lists for this member: main office + global.
    assert _alert_count(home) == 2
    assert board.count('class="alert ') == 2 and "卫健" not in board


async def test_api_cases_are_ordered_and_paged_across_offices(
    aiohttp_client: Any, settings: Any, staff_members: Any, db: Any
) -> None:
    from bot.cases import service
    from bot.cases.models import Case

    two = await _two_offices(settings, db)
    rules = service.CaseRules.from_settings(two)
    now = utcnow()
    plan = [  # office, deadline offset (days), text
        ("main", 10, "主办未到期"),
        ("main", -2, "主办超期两天"),
        ("health", -1, "卫健超期一天"),
        ("health", 5, "卫健未到期"),
    ]
    async with db.transaction() as session:
        calendar = await service.load_calendar(session)
        health = await workflow.office_by_key(session, "health")
        responder = (
            await session.execute(select(User).where(User.name == "responder"))
        ).scalar_one()
        session.add(Membership(user_id=responder.id, office_id=health.id, role="responder"))
        for key, days, text in plan:
            office = await workflow.office_by_key(session, key)
            case, _ = await service.receive(
                session,
                rules,
                calendar,
                office.id,
                service.NewCase(kind="consultation", channel="web", text=text),
            )
            row = await session.get(Case, case.id)
            assert row is not None
            row.deadline_at = now + timedelta(days=days)
    member = await _client(aiohttp_client, two, "responder")
    try:
        token = await token_for(member, "cases:read")
        everything = await member.client.get("/api/v1/cases?limit=10", headers=auth(token))
        assert everything.status == 200, await everything.text()
        texts = [item["text"] for item in (await everything.json())["items"]]
        pages = []
        offset: int | None = 0
        while offset is not None:
            page = await member.client.get(
                f"/api/v1/cases?limit=1&offset={offset}", headers=auth(token)
            )
            data = await page.json()
            pages += [item["text"] for item in data["items"]]
            offset = data["next_offset"]
    finally:
        await member.client.close()
    assert texts == ["主办超期两天", "卫健超期一天", "卫健未到期", "主办未到期"]
    assert pages == texts


async def test_housekeeping_removes_only_what_has_ended(
    signed_in: Any, db: Any, staff_members: Any
) -> None:
    from console.jobs import purge_expired
    from govcast.app import _extra_ticks

    member = await signed_in("editor")  # a live session that must survive
    now = utcnow()
    async with db.transaction() as session:
        user_id = staff_members["editor"].user_id
        for name, created, seen, expires in (
            ("absolute", now - timedelta(hours=13), now, now - timedelta(minutes=1)),
            (
                "idle",
                now - timedelta(hours=1),
                now - timedelta(minutes=31),
                now + timedelta(hours=11),
            ),
            ("live", now, now, now + timedelta(hours=12)),
        ):
            session.add(
                ConsoleSession(
                    id=name.ljust(64, "0"),
                    user_id=user_id,
                    csrf_token="x",
                    created_at=created,
                    last_seen_at=seen,
                    expires_at=expires,
                )
            )
        token = ApiToken(user_id=user_id, name="OA", prefix="gct_x", token_hash="h" * 64)
        session.add(token)
        await session.flush()
        for key, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=1))):
            session.add(
                IdempotencyKey(
                    token_id=token.id,
                    key=key,
                    request_hash="r" * 64,
                    status=201,
                    body={},
                    created_at=now - age,
                )
            )
        session.add(RateBucket(key="login:old", window_start=now - timedelta(hours=2), count=3))
        session.add(RateBucket(key="login:new", window_start=now - timedelta(minutes=2), count=3))
    removed = await purge_expired(db)
    assert removed == {"sessions": 2, "idempotency_keys": 1, "rate_buckets": 1}
    async with db.sessions() as session:
        sessions = set((await session.execute(select(ConsoleSession.id))).scalars())
        keys = set((await session.execute(select(IdempotencyKey.key))).scalars())
        buckets = set((await session.execute(select(RateBucket.key))).scalars())
    assert "live".ljust(64, "0") in sessions and len(sessions) == 2  # + the signed-in one
    assert keys == {"new"} and "login:new" in buckets and "login:old" not in buckets
    assert (await member.get("/console/")).status == 200
    assert await purge_expired(db) == {"sessions": 0, "idempotency_keys": 0, "rate_buckets": 0}
    # It runs hourly with the application's other ticks.
    app = member.client.server.app
    hourly = [t for t in _extra_ticks(app) if t.name == "console_housekeeping"]
    assert len(hourly) == 1 and hourly[0].seconds == 3600.0
