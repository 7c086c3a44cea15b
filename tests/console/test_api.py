"""The JSON API: tokens and scopes, problem details, idempotency, pagination, OpenAPI."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select

from console.api import OPERATIONS, openapi_document
from publisher.models import Publication

BODY = {
    "title": "关于开展2026年度消防安全检查的通告",
    "category": "implementation",
    "issuing_body": "示例市消防救援支队",
    "body": "为做好冬春火灾防控工作……",
    "channels": ["website"],
}


async def token_for(member: Any, *scopes: str) -> str:
    response = await member.post(
        "/console/tokens", {"name": "OA 系统", "scopes": list(scopes), "days": "30"}
    )
    assert response.status == 200, await response.text()
    match = re.search(r'id="new-token">(gct_[A-Za-z0-9_\-]+)<', await response.text())
    assert match
    listing = await (await member.get("/console/tokens")).text()
    assert match.group(1) not in listing  # shown once only
    return match.group(1)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_openapi_document_validates_and_matches_the_routes(signed_in: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)
    assert document == openapi_document(document["servers"][0]["url"].removesuffix("/api/v1"))
    documented = {
        (method.upper(), "/api/v1" + path)
        for path, item in document["paths"].items()
        for method in item
    }
    app = editor.client.server.app
    served = set()
    for resource in app.router.resources():
        prefix = resource.canonical
        if prefix != "/api/v1":
            continue
        for route in resource._app.router.routes():  # type: ignore[attr-defined]
            info = route.resource.get_info()
            path = info.get("path") or info.get("formatter")
            if route.method != "HEAD" and not path.endswith("/openapi.json"):
                served.add((route.method, path))
    assert served == documented
    assert len(OPERATIONS) == len(documented)


async def test_every_operation_refuses_missing_token_and_scope(signed_in: Any) -> None:
    editor = await signed_in("editor")
    token = await token_for(editor, "search")
    for op in OPERATIONS:
        path = "/api/v1" + op.path.replace("{id}", "1")
        anonymous = await editor.client.request(op.method, path)
        assert anonymous.status == 401, (op.path, anonymous.status)
        assert anonymous.headers["Content-Type"].startswith("application/problem+json")
        problem = await anonymous.json()
        assert problem["status"] == 401 and problem["title"]
        if op.scope == "search":
            continue
        scoped = await editor.client.request(op.method, path, headers=auth(token))
        assert scoped.status == 403, (op.path, scoped.status)


async def test_create_show_list_submit_and_idempotency(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    token = await token_for(editor, "publications:read", "publications:write")
    headers = {**auth(token), "Idempotency-Key": "oa-2026-0001"}
    created = await editor.client.post("/api/v1/publications", json=BODY, headers=headers)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["state"] == "draft" and body["deliveries"] == []
    assert created.headers["Location"] == f"/api/v1/publications/{body['id']}"
    again = await editor.client.post("/api/v1/publications", json=BODY, headers=headers)
    assert again.status == 201 and (await again.json())["id"] == body["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = await editor.client.post(
        "/api/v1/publications", json={**BODY, "title": "另一个"}, headers=headers
    )
    assert changed.status == 422
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Publication))).scalar() == 1

    for _ in range(2):
        made = await editor.client.post("/api/v1/publications", json=BODY, headers=auth(token))
        assert made.status == 201
    page1 = await (
        await editor.client.get("/api/v1/publications?limit=2", headers=auth(token))
    ).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = await (
        await editor.client.get(
            f"/api/v1/publications?limit=2&cursor={page1['next_cursor']}", headers=auth(token)
        )
    ).json()
    assert len(page2["items"]) == 1 and page2["next_cursor"] is None

    shown = await editor.client.get(f"/api/v1/publications/{body['id']}", headers=auth(token))
    assert (await shown.json())["title"] == BODY["title"]
    submitted = await editor.client.post(
        f"/api/v1/publications/{body['id']}/submit", headers=auth(token)
    )
    assert (await submitted.json())["state"] == "in_review"
    twice = await editor.client.post(
        f"/api/v1/publications/{body['id']}/submit", headers=auth(token)
    )
    assert twice.status == 409
    assert (await twice.json())["type"].endswith("/state")


async def test_review_and_withdraw_through_the_api(signed_in: Any) -> None:
    editor = await signed_in("editor")
    writer = await token_for(editor, "publications:write")
    created = await editor.client.post(
        "/api/v1/publications", json={**BODY, "submit": True}, headers=auth(writer)
    )
    publication_id = (await created.json())["id"]
    for name in ("reviewer1", "reviewer2", "approver"):
        member = await signed_in(name)
        token = await token_for(member, "publications:review")
        decided = await member.client.post(
            f"/api/v1/publications/{publication_id}/review",
            json={"decision": "approve", "comment": "同意"},
            headers=auth(token),
        )
        assert decided.status == 200, await decided.text()
    report = await decided.json()
    assert report["state"] in ("queued", "scheduled") and report["index_number"]
    assert {d["channel"] for d in report["deliveries"]} == {"website"}
    no_reason = await member.client.post(
        f"/api/v1/publications/{publication_id}/withdraw", json={}, headers=auth(token)
    )
    assert no_reason.status == 422 and (await no_reason.json())["field"] == "reason"
    withdrawn = await member.client.post(
        f"/api/v1/publications/{publication_id}/withdraw",
        json={"reason": "发布有误"},
        headers=auth(token),
    )
    assert (await withdrawn.json())["state"] == "withdrawn"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'{"title": 5}', "application/json", 422),
        (
            b'{"title": "x", "category": "nope", "issuing_body": "y", "body": "z"}',
            "application/json",
            422,
        ),
        (b'{"unknown_field": 1}', "application/json", 422),
        (
            b'{"title":"x","category":"service","issuing_body":"y","body":"z","keywords":["\\u0000"]}',
            "application/json",
            422,
        ),
        (b"[" * 100000, "application/json", 400),
        (b'{"title": "x"}', "text/plain", 415),
        (b"\xff\xfe", "application/json", 400),
        (b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}', "application/json", 413),
        (
            b'{"title":"x","category":"service","issuing_body":"y","body":"z","office":"nowhere"}',
            "application/json",
            404,
        ),
        (
            b'{"title":"x","category":"service","issuing_body":"y","body":"z","index_number":"1"}',
            "application/json",
            422,
        ),
    ],
)
async def test_bad_bodies_are_problem_details(
    signed_in: Any, db: Any, body: bytes, content_type: str, status: int
) -> None:
    editor = await signed_in("editor")
    token = await token_for(editor, "publications:write")
    response = await editor.client.post(
        "/api/v1/publications",
        data=body,
        headers={**auth(token), "Content-Type": content_type},
    )
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Publication))).scalar() == 0


async def test_revoked_and_garbage_tokens_are_refused(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    token = await token_for(editor, "publications:read")
    ok = await editor.client.get("/api/v1/publications", headers=auth(token))
    assert ok.status == 200
    tokens = await (await editor.get("/console/tokens")).text()
    token_id = re.search(r"/console/tokens/(\d+)/revoke", tokens)
    assert token_id
    await editor.post(f"/console/tokens/{token_id.group(1)}/revoke")
    revoked = await editor.client.get("/api/v1/publications", headers=auth(token))
    assert revoked.status == 401
    for header in ("Bearer ", "Basic abc", "Bearer " + "x" * 5000, "Bearer gct_bogus", "bearer"):
        response = await editor.client.get(
            "/api/v1/publications", headers={"Authorization": header}
        )
        assert response.status in (400, 401, 429), header


async def test_cases_and_search_through_the_api(signed_in: Any, db: Any, settings: Any) -> None:
    from bot.cases import service
    from publisher import workflow

    rules = service.CaseRules.from_settings(settings)
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, settings.office.key)
        calendar = await service.load_calendar(session)
        case, _ = await service.receive(
            session,
            rules,
            calendar,
            office.id,
            service.NewCase(kind="consultation", channel="web", text="医保怎么缴费？"),
        )
        await service.accept(session, (await _member(session, "responder")), case.id)
    responder = await signed_in("responder")
    token = await token_for(responder, "cases:read", "cases:write", "search")
    listing = await responder.client.get("/api/v1/cases?limit=1", headers=auth(token))
    assert listing.status == 200, await listing.text()
    data = await listing.json()
    assert data["items"][0]["id"] == case.id and data["next_offset"] is None
    for bad in ("?limit=0", "?limit=x", "?offset=-1", "?state=<x>"):
        response = await responder.client.get("/api/v1/cases" + bad, headers=auth(token))
        assert response.status == 400, bad
    empty = await responder.client.post(
        f"/api/v1/cases/{case.id}/reply", json={"text": ""}, headers=auth(token)
    )
    assert empty.status == 422
    replied = await responder.client.post(
        f"/api/v1/cases/{case.id}/reply", json={"text": "请通过医保APP缴费。"}, headers=auth(token)
    )
    assert replied.status == 200 and (await replied.json())["state"] == "replied"
    missing = await responder.client.post(
        "/api/v1/cases/999999/reply", json={"text": "x"}, headers=auth(token)
    )
    assert missing.status == 404
    found = await responder.client.get("/api/v1/search?q=医保", headers=auth(token))
    assert found.status == 200 and (await found.json())["total"] == 0
    for bad in ("", "?q=", "?q=" + "x" * 101, "?q=a&limit=0", "?q=a&offset=x"):
        response = await responder.client.get("/api/v1/search" + bad, headers=auth(token))
        assert response.status == 400, bad


async def _member(session: Any, name: str) -> Any:
    from publisher import staff

    return await staff.load_member(session, name)


async def test_token_rate_limit(
    aiohttp_client: Any, settings: Any, staff_members: Any, db: Any
) -> None:
    import dataclasses

    from console.api import API_LIMITS, ApiLimits
    from console.models import ApiToken
    from console.security import digest
    from govcast.app import create_app
    from govcast.settings import SandboxSettings
    from publisher.models import User

    app = create_app(
        dataclasses.replace(settings, sandbox=SandboxSettings(enabled=False)), roles={"web"}
    )
    app[API_LIMITS] = ApiLimits(per_token=3, bad_token_per_address=2)
    client = await aiohttp_client(app)
    async with db.transaction() as session:
        user = (await session.execute(select(User).where(User.name == "editor"))).scalar_one()
        session.add(
            ApiToken(
                user_id=user.id,
                name="t",
                prefix="gct_x",
                token_hash=digest("gct_x"),
                scopes=["publications:read"],
            )
        )
    statuses = [
        (await client.get("/api/v1/publications", headers=auth("gct_x"))).status for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = await client.get("/api/v1/publications", headers=auth("gct_x"))
    assert int(limited.headers["Retry-After"]) >= 1
    guesses = [
        (await client.get("/api/v1/publications", headers=auth("gct_guess"))).status
        for _ in range(3)
    ]
    assert guesses == [401, 401, 429]
