"""The cases inbox: citizens' questions and opinions, overdue first, with the reply
composer. Every rule lives in the cases service (bot.cases.service); this is its page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.cases import service
from bot.cases.models import CaseState
from console.pages import _current, _int, _origin, _text, flash, render
from console.security import digits, query, requires
from govcast import keys
from publisher.models import Role
from publisher.orm import utcnow

routes = web.RouteTableDef()
CASE_STATES = [s.value for s in CaseState]
STATE_LABELS = {
    "received": ("待受理", "Received"),
    "accepted": ("已受理", "Accepted"),
    "rejected": ("不予受理", "Rejected"),
    "assigned": ("已分派", "Assigned"),
    "replied": ("已答复", "Replied"),
    "rated": ("已评价", "Rated"),
    "closed": ("已办结", "Closed"),
}


@routes.get("/cases")
@requires(Role.RESPONDER)
async def inbox(request: web.Request) -> web.StreamResponse:
    """Cases of the member's offices, filtered by state, department and deadline."""
    current = _current(request)
    state = query(request, "state", 100, "")
    if state not in CASE_STATES:
        state = ""
    department = query(request, "department", 100)
    due = query(request, "due_days", 100, "")
    due_before = None
    if digits(due) and int(due) <= 365:
        due_before = utcnow() + timedelta(days=int(due))
    rows: list[Any] = []
    async with request.config_dict[keys.DB].sessions() as session:
        for office_id in current.offices_with(Role.RESPONDER):
            rows.extend(
                await service.list_cases(
                    session,
                    current.member,
                    office_id,
                    state=state or None,
                    department=department or None,
                    due_before=due_before,
                    limit=200,
                )
            )
    now = utcnow()
    return await render(
        request,
        "cases.html",
        rows=rows,
        state=state,
        department=department,
        due=due,
        states=CASE_STATES,
        CASE_STATE=STATE_LABELS,
        now=now,
        open_states=service.OPEN_STATES,
    )


@routes.get("/cases/{id}")
@requires(Role.RESPONDER)
async def case_page(request: web.Request) -> web.StreamResponse:
    """One case: the citizen's text (escaped), its timeline, and the reply composer."""
    current = _current(request)
    case_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].sessions() as session:
        case = await service.get_case(session, current.member, case_id)
        events = await service.events_of(session, current.member, case_id)
    rules = service.CaseRules.from_settings(request.config_dict[keys.SETTINGS])
    return await render(
        request,
        "case.html",
        case=case,
        events=events,
        CASE_STATE=STATE_LABELS,
        reasons=rules.reject_reasons,
        now=utcnow(),
    )


@routes.post("/cases/{id}/accept")
@requires(Role.RESPONDER)
async def accept(request: web.Request) -> web.StreamResponse:
    """Accept a received case for handling."""
    current = _current(request)
    case_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].transaction() as session:
        await service.accept(session, current.member, case_id, origin=_origin(request))
    await flash(request, "success", "已受理。", "Accepted.")
    raise web.HTTPSeeOther(f"/console/cases/{case_id}")


@routes.post("/cases/{id}/reject")
@requires(Role.RESPONDER)
async def reject(request: web.Request) -> web.StreamResponse:
    """Reject a case with one of the stated reasons."""
    current = _current(request)
    case_id = _int(request.match_info["id"])
    form = dict(await request.post())
    rules = service.CaseRules.from_settings(request.config_dict[keys.SETTINGS])
    async with request.config_dict[keys.DB].transaction() as session:
        await service.reject(
            session,
            current.member,
            rules,
            case_id,
            _text(form, "reason", 200),
            origin=_origin(request),
        )
    await flash(request, "success", "已不予受理并告知。", "Rejected; the citizen is told.")
    raise web.HTTPSeeOther(f"/console/cases/{case_id}")


@routes.post("/cases/{id}/reply")
@requires(Role.RESPONDER)
async def reply(request: web.Request) -> web.StreamResponse:
    """Answer the case; the answer goes out through the channel it came from."""
    current = _current(request)
    case_id = _int(request.match_info["id"])
    form = dict(await request.post())
    text = _text(form, "text", service.MAX_REPLY)
    settings = request.config_dict[keys.SETTINGS]
    async with request.config_dict[keys.DB].transaction() as session:
        await service.reply(
            session,
            current.member,
            case_id,
            text,
            base_url=settings.website.base_url,
            origin=_origin(request),
        )
    await flash(request, "success", "答复已发送。", "Reply sent.")
    raise web.HTTPSeeOther(f"/console/cases/{case_id}")
