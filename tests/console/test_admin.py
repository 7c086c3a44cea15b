"""Users and roles, the audit log, tokens, the delivery board's retry and alerts,
the calendar, and offices: a member acts only within their own."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from console.models import ApiToken, PasswordReset
from govcast.settings import ExtraOfficeSettings, SandboxSettings
from publisher import workflow
from publisher.models import Alert, AuditEntry, Delivery, Publication, User
from publisher.orm import utcnow
from tests.console.conftest import csrf_of
from tests.console.helpers import compose_form


async def test_admin_adds_deactivates_and_unlocks_users(signed_in: Any, db: Any) -> None:
    admin = await signed_in("admin")
    bad = [
        {"name": "a b", "password": "long enough pass", "roles": ["editor"], "office": "main"},
        {"name": "newbie", "password": "short", "roles": ["editor"], "office": "main"},
        {"name": "newbie", "password": "long enough pass", "roles": [], "office": "main"},
        {"name": "newbie", "password": "long enough pass", "roles": ["king"], "office": "main"},
        {"name": "newbie", "password": "long enough pass", "roles": ["editor"], "office": "x"},
        {"name": "editor", "password": "long enough pass", "roles": ["editor"], "office": "main"},
    ]
    for form in bad:
        response = await admin.post("/console/users", form)
        assert response.status == 400, form
    made = await admin.post(
        "/console/users",
        {
            "name": "newbie",
            "password": "long enough pass",
            "roles": ["editor", "reviewer"],
            "office": "main",
            "display_name": "<i>新人</i>",
        },
    )
    assert made.status == 303
    page = await (await admin.get("/console/users")).text()
    assert "newbie" in page and "<i>新人" not in page
    async with db.sessions() as session:
        user = (await session.execute(select(User).where(User.name == "newbie"))).scalar_one()
    newbie = await signed_in("")
    newbie.name = "newbie"
    assert (await newbie.login("long enough pass")).status == 303
    assert (await admin.post(f"/console/users/{user.id}/active")).status == 303
    assert (await newbie.get("/console/")).status == 303  # the session ended with the account
    async with db.transaction() as session:
        row = await session.get(User, user.id)
        assert row is not None and not row.is_active
        row.is_active = True
        row.locked_until = utcnow() + timedelta(minutes=10)
    assert "解锁" in await (await admin.get("/console/users")).text()
    assert (await admin.post(f"/console/users/{user.id}/unlock")).status == 303
    assert (await newbie.login("long enough pass")).status == 303
    audit = await (await admin.get("/console/audit?q=user.")).text()
    assert "user.add" in audit and "user.deactivate" in audit and "user.unlock" in audit
    admin_self = (await (await admin.get("/console/users")).text()).count("/active")
    assert admin_self >= 2


async def test_tokens_store_only_a_hash_and_refuse_bad_input(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    for form in (
        {"name": "", "scopes": ["search"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": ["search"], "days": "0"},
        {"name": "x", "scopes": ["search"], "days": "abc"},
    ):
        assert (await editor.post("/console/tokens", form)).status == 400, form
    created = await editor.post("/console/tokens", {"name": "OA", "scopes": ["search"]})
    html = await created.text()
    secret = html.split('id="new-token">', 1)[1].split("<", 1)[0]
    async with db.sessions() as session:
        token = (await session.execute(select(ApiToken))).scalar_one()
    assert secret not in (token.token_hash, token.prefix) and len(token.token_hash) == 64
    other = await signed_in("approver")
    assert (await other.post(f"/console/tokens/{token.id}/revoke")).status == 404


async def _approved(signed_in: Any, settings: Any) -> tuple[int, Any]:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf))
    publication_id = int(response.headers["Location"].rsplit("/", 1)[1])
    await editor.post(f"/console/publications/{publication_id}/submit")
    for name in ("reviewer1", "reviewer2", "approver"):
        member = await signed_in(name)
        decided = await member.post(
            f"/console/publications/{publication_id}/review", {"decision": "approve"}
        )
        assert decided.status == 303
    return publication_id, member


async def test_dead_delivery_retry_and_alert_acknowledgement(
    signed_in: Any, db: Any, settings: Any
) -> None:
    publication_id, approver = await _approved(signed_in, settings)
    async with db.transaction() as session:
        delivery = (
            await session.execute(select(Delivery).where(Delivery.publication_id == publication_id))
        ).scalar_one()
        delivery.state = "dead"
        delivery.last_error = "<b>errcode 45009</b> quota"
        session.add(
            Alert(
                kind="dead_letter",
                message="<script>x</script>投递失败",
                publication_id=publication_id,
                delivery_id=delivery.id,
            )
        )
    board = await (await approver.get("/console/deliveries")).text()
    assert 'class="dead"' in board and "&lt;b&gt;errcode" in board
    assert "<script>x" not in board
    reviewer = await signed_in("reviewer1")
    assert (await reviewer.post(f"/console/deliveries/{delivery.id}/retry")).status == 403
    assert (await approver.post(f"/console/deliveries/{delivery.id}/retry")).status == 303
    again = await approver.post(f"/console/deliveries/{delivery.id}/retry")
    assert again.status == 400  # no longer dead
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery.id)
        alert = (await session.execute(select(Alert))).scalar_one()
    assert row is not None and row.state == "pending"
    assert (await approver.post(f"/console/alerts/{alert.id}/ack")).status == 303
    async with db.sessions() as session:
        acked = await session.get(Alert, alert.id)
    assert acked is not None and acked.acknowledged_at is not None
    assert (await approver.post("/console/alerts/99999/ack")).status == 404
    calendar = await (await approver.get("/console/calendar")).text()
    assert f"/console/publications/{publication_id}" in calendar
    scheduled = await approver.post(
        f"/console/publications/{publication_id}/schedule", {"publish_at": "2099-01-01T09:00"}
    )
    assert scheduled.status == 400  # already queued: too late to reschedule


async def test_schedule_in_the_office_zone(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf))
    publication_id = int(response.headers["Location"].rsplit("/", 1)[1])
    done = await editor.post(
        f"/console/publications/{publication_id}/schedule",
        {"publish_at": "2099-03-01T09:30", "urgent": "on"},
    )
    assert done.status == 303
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
    assert publication is not None and publication.urgent
    assert publication.publish_at is not None
    assert publication.publish_at.isoformat() == "2099-03-01T01:30:00+00:00"
    for bad in ("tomorrow", "2000-01-01T09:00", "9" * 50):
        response = await editor.post(
            f"/console/publications/{publication_id}/schedule", {"publish_at": bad}
        )
        assert response.status == 400, bad
    page = await (await editor.get("/console/calendar?month=2099-03")).text()
    assert f"/console/publications/{publication_id}" not in page  # drafts do not go out
    assert (await editor.post(f"/console/publications/{publication_id}/submit")).status == 303
    page = await (await editor.get("/console/calendar?month=2099-03")).text()
    assert f"/console/publications/{publication_id}" in page and "09:30" in page


async def test_members_act_only_within_their_offices(
    aiohttp_client: Any, settings: Any, staff_members: Any, db: Any
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from govcast import runtime
    from govcast.app import create_app
    from tests.console.conftest import Staff
    from tests.publisher.helpers import sample

    two = dataclasses.replace(
        settings,
        offices={"health": ExtraOfficeSettings(name="卫健委", org_code="11340000MB0000001X")},
        sandbox=SandboxSettings(enabled=False),
    )
    await runtime.sync_offices(db, two)
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "health")
        from publisher import audit

        config = runtime.core_config(two)
        other = await workflow.create(
            session, config, office, sample(channels=["website"]), audit.CLI
        )
        other_id = other.id
    server = TestServer(create_app(two, roles={"web"}))
    client = TestClient(server)
    await client.start_server()
    try:
        admin = Staff(client, "admin")
        assert (await admin.login()).status == 303
        for path in (
            f"/console/publications/{other_id}",
            f"/console/publications/{other_id}/edit",
            f"/console/publications/{other_id}/diff",
        ):
            assert (await admin.get(path)).status == 404, path
        listing = await (await admin.get("/console/publications")).text()
        assert f"/console/publications/{other_id}" not in listing
        withdrawn = await admin.post(f"/console/publications/{other_id}/withdraw", {"reason": "x"})
        assert withdrawn.status == 404
    finally:
        await client.close()


async def test_keyword_rules_holidays_and_columns(signed_in: Any, db: Any) -> None:
    from bot.cases.models import CalendarDay
    from bot.models import KeywordRule

    admin = await signed_in("admin")
    for form in (
        {"match": "regex", "pattern": "(a+)+$", "reply_text": "x"},
        {"match": "fuzzy", "pattern": "医保", "reply_text": "x"},
        {"match": "exact", "pattern": "", "reply_text": "x"},
        {"match": "exact", "pattern": "医保", "reply_text": ""},
        {"match": "exact", "pattern": "医保", "reply_text": "x", "priority": "-1"},
        {"match": "exact", "pattern": "医保", "reply_text": "x", "account": "nowhere"},
    ):
        response = await admin.post("/console/admin/keywords", form)
        assert response.status == 400, form
    added = await admin.post(
        "/console/admin/keywords",
        {
            "match": "contains",
            "pattern": "<b>医保</b>",
            "reply_text": "请见<script>",
            "priority": "5",
        },
    )
    assert added.status == 303
    page = await (await admin.get("/console/admin/keywords")).text()
    assert "&lt;b&gt;医保" in page and "<script>" not in page.split("<main", 1)[1]
    async with db.sessions() as session:
        rule = (await session.execute(select(KeywordRule))).scalar_one()
    assert (await admin.post(f"/console/admin/keywords/{rule.id}/toggle")).status == 303
    async with db.sessions() as session:
        toggled = await session.get(KeywordRule, rule.id)
        assert toggled is not None and not toggled.enabled
    assert (await admin.post(f"/console/admin/keywords/{rule.id}/delete")).status == 303
    assert (await admin.post(f"/console/admin/keywords/{rule.id}/delete")).status == 404

    bad = await admin.post("/console/admin/holidays", {"lines": "2026-10-01,holiday\n2026-13-01,x"})
    assert bad.status == 400 and "line 2" in await bad.text()
    async with db.sessions() as session:
        assert (
            await session.execute(select(CalendarDay).where(CalendarDay.name == "国庆"))
        ).first() is None
    good = await admin.post(
        "/console/admin/holidays?year=2026",
        {"lines": "2026-10-01,holiday,国庆\n2026-10-11,workday,调休"},
    )
    assert good.status == 303
    listing = await (await admin.get("/console/admin/holidays?year=2026")).text()
    assert "国庆" in listing and "调休" in listing
    columns = await admin.get("/console/admin/columns")
    assert columns.status == 200
    editor = await signed_in("editor")
    for path in ("/console/admin/keywords", "/console/admin/holidays", "/console/admin/columns"):
        assert (await editor.get(path)).status == 403


async def test_bulk_import_shows_progress(signed_in: Any, db: Any) -> None:
    import asyncio
    import json

    from aiohttp import FormData

    lines = []
    for n in range(3):
        lines.append(
            json.dumps(
                {
                    "title": f"历史信息{n}",
                    "category": "service",
                    "issuing_body": "示例市人民政府",
                    "body": "正文",
                    "published_at": f"2020-01-0{n + 1}T09:00:00+08:00",
                },
                ensure_ascii=False,
            )
        )
    lines.append("{not json")
    admin = await signed_in("admin")
    form = FormData()
    form.add_field("_csrf", admin.csrf)
    form.add_field("file", ("\n".join(lines) + "\n").encode(), filename="old.jsonl")
    started = await admin.post("/console/admin/import", form)
    assert started.status == 303, await started.text()
    for _ in range(100):
        page = await (await admin.get("/console/admin/import")).text()
        if "4/4" in page and "进行中" not in page:
            break
        await asyncio.sleep(0.1)
    assert "<progress" in page and "4/4" in page
    async with db.sessions() as session:
        imported = (
            (await session.execute(select(Publication).where(Publication.imported.is_(True))))
            .scalars()
            .all()
        )
    assert len(imported) == 3
    empty = FormData()
    empty.add_field("_csrf", admin.csrf)
    empty.add_field("file", b"", filename="empty.jsonl")
    assert (await admin.post("/console/admin/import", empty)).status == 400
    assert (await admin.post("/console/admin/import", {"file": "not a file"})).status == 400


async def _user_id(db: Any, name: str) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(User.id).where(User.name == name))).scalar_one())


async def test_admin_changes_roles_audited_and_effective_at_once(signed_in: Any, db: Any) -> None:
    admin = await signed_in("admin")
    editor = await signed_in("editor")
    editor_id = await _user_id(db, "editor")
    assert (await editor.get("/console/review")).status == 403
    # Non-admins are refused, whatever they ask for.
    for member in (editor, await signed_in("approver")):
        response = await member.post(
            f"/console/users/{editor_id}/roles", {"office": "main", "roles": ["admin"]}
        )
        assert response.status == 403
    bad = [
        {"office": "main", "roles": ["king"]},
        {"office": "nowhere", "roles": ["editor"]},
        {"office": "main"},  # no role left anywhere: deactivate instead
    ]
    for form in bad:
        assert (await admin.post(f"/console/users/{editor_id}/roles", form)).status == 400, form
    admin_id = await _user_id(db, "admin")
    own = await admin.post(
        f"/console/users/{admin_id}/roles", {"office": "main", "roles": ["editor"]}
    )
    assert own.status == 400
    done = await admin.post(
        f"/console/users/{editor_id}/roles", {"office": "main", "roles": ["editor", "reviewer"]}
    )
    assert done.status == 303
    # The editor's open session has the new role on its next request.
    assert (await editor.get("/console/review")).status == 200
    page = await (await admin.get("/console/users")).text()
    assert f'id="roles-{editor_id}-main"' in page
    async with db.sessions() as session:
        user = await session.get(User, editor_id)
        assert user is not None
        assert {m.role for m in user.memberships} == {"editor", "reviewer"}
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "user.roles"))
        ).scalar_one()
    assert entry.actor == "admin" and entry.object_id == str(editor_id)
    assert entry.detail["before"] == ["editor"]
    assert entry.detail["after"] == ["editor", "reviewer"]
    # And back: the role is taken away as promptly.
    taken = await admin.post(
        f"/console/users/{editor_id}/roles", {"office": "main", "roles": ["editor"]}
    )
    assert taken.status == 303
    assert (await editor.get("/console/review")).status == 403


async def test_admin_resets_a_password_and_the_holder_must_change_it(
    signed_in: Any, db: Any
) -> None:
    admin = await signed_in("admin")
    editor = await signed_in("editor")
    editor_id = await _user_id(db, "editor")
    refused = await (await signed_in("approver")).post(f"/console/users/{editor_id}/password")
    assert refused.status == 403
    weak = await admin.post(f"/console/users/{editor_id}/password", {"password": "short"})
    assert weak.status == 400
    response = await admin.post(f"/console/users/{editor_id}/password")
    assert response.status == 200
    page = await response.text()
    match = re.search(r'<code id="temporary-password">([^<]+)</code>', page)
    assert match, page
    temporary = match.group(1)
    assert len(temporary) == 14
    assert response.headers["Cache-Control"] == "no-store"
    # The editor's session ended; the old password is gone.
    assert (await editor.get("/console/")).status == 303
    assert (await editor.login()).status == 401
    assert (await editor.login(temporary)).status == 303
    # Signed in with the temporary password, only the password form is open.
    home = await editor.get("/console/")
    assert home.status == 303 and home.headers["Location"] == "/console/password"
    form_page = await editor.get("/console/password")
    assert "重置" in await form_page.text()
    editor.csrf = csrf_of(await form_page.text())
    assert (await editor.post("/console/publications/new", compose_form(editor.csrf))).status == 403
    changed = await editor.post(
        "/console/password",
        {"current": temporary, "new": "my very own secret", "again": "my very own secret"},
    )
    assert changed.status == 303
    assert (await editor.get("/console/")).status == 200
    async with db.sessions() as session:
        assert await session.get(PasswordReset, editor_id) is None
        entries = list(
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.action == "user.password_reset")
                )
            ).scalars()
        )
    assert len(entries) == 1 and entries[0].detail == {"generated": True}
    assert temporary not in str(entries[0].detail)
    # A typed temporary password is not echoed back.
    typed = await admin.post(
        f"/console/users/{editor_id}/password", {"password": "typed temporary pw"}
    )
    assert typed.status == 200
    assert "typed temporary pw" not in await typed.text()
    # An admin cannot reset their own password here.
    admin_id = await _user_id(db, "admin")
    assert (await admin.post(f"/console/users/{admin_id}/password")).status == 400
