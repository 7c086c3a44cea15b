"""The cases inbox: hostile citizens' text escaped, accept and reply, filters."""

from __future__ import annotations

from typing import Any

from bot.cases import service
from bot.cases.models import Case
from publisher import workflow

HOSTILE = '<script>alert("case")</script>请问医保怎么缴费？'


async def _case(db: Any, settings: Any) -> int:
    rules = service.CaseRules.from_settings(settings)
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, settings.office.key)
        calendar = await service.load_calendar(session)
        case, _secret = await service.receive(
            session,
            rules,
            calendar,
            office.id,
            service.NewCase(kind="consultation", channel="web", text=HOSTILE, title="医保<b>"),
        )
        return case.id


async def test_inbox_accept_and_reply(signed_in: Any, db: Any, settings: Any) -> None:
    case_id = await _case(db, settings)
    responder = await signed_in("responder")
    inbox = await responder.get("/console/cases")
    html = await inbox.text()
    assert f'data-case="{case_id}"' in html
    assert "<b>" not in html.split("<main", 1)[1]
    page = await (await responder.get(f"/console/cases/{case_id}")).text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert (await responder.post(f"/console/cases/{case_id}/accept")).status == 303
    empty = await responder.post(f"/console/cases/{case_id}/reply", {"text": "  "})
    assert empty.status == 400
    replied = await responder.post(
        f"/console/cases/{case_id}/reply", {"text": "请通过医保APP缴费。"}
    )
    assert replied.status == 303
    async with db.sessions() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.state == "replied"
    filtered = await (await responder.get("/console/cases?state=received")).text()
    assert f'data-case="{case_id}"' not in filtered
    for bad in ("?state=<x>", "?due_days=abc", "?due_days=99999999999", "?due_days=%C2%B2"):
        assert (await responder.get("/console/cases" + bad)).status == 200
    assert (await responder.get("/console/cases?department=%00")).status == 400


async def test_editors_cannot_see_cases(signed_in: Any, db: Any, settings: Any) -> None:
    case_id = await _case(db, settings)
    editor = await signed_in("editor")
    assert (await editor.get("/console/cases")).status == 403
    assert (await editor.get(f"/console/cases/{case_id}")).status == 403
    assert (await editor.post(f"/console/cases/{case_id}/accept")).status == 403
