"""The JSON API at /api/v1/: one table of operations drives both the routes and the
OpenAPI document, so the two cannot drift. Errors are RFC 9457 problem details."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from console.models import ApiToken, IdempotencyKey
from console.security import RateLimited, client_address, digest, digits, hit, query
from govcast import keys
from govcast.services import publication_report
from publisher import staff, workflow
from publisher.errors import NotFound, PermissionDenied, ValidationError, WorkflowError
from publisher.inputs import publication_from_fields
from publisher.models import Office, Publication, PublicationState, Role, User
from publisher.orm import utcnow
from publisher.staff import StaffMember
from publisher.views import deliveries_of

log = logging.getLogger("govcast.console.api")
MAX_BODY = 1024 * 1024
TOKEN_LIMIT = 600  # requests per token per minute
BAD_TOKEN_LIMIT = 30  # failed authentications per address per minute
MAX_LIMIT = 100
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class ApiLimits:
    """Rate limits of the API (per minute)."""

    per_token: int = TOKEN_LIMIT
    bad_token_per_address: int = BAD_TOKEN_LIMIT


# Set on the application to change the limits of one deployment (or of a load test).
API_LIMITS = web.AppKey("console_api_limits", ApiLimits)


class Problem(Exception):
    """An RFC 9457 problem: raised by handlers, rendered by the middleware."""

    def __init__(
        self, status: int, title: str, detail: str = "", *, kind: str = "", **extra: Any
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self, instance: str) -> dict[str, Any]:
        """The problem document."""
        data: dict[str, Any] = {
            "type": f"/api/v1/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class Caller:
    """The token's owner as a staff member, and the token's scopes."""

    token_id: int
    member: StaffMember
    scopes: frozenset[str]


ApiHandler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    """One API operation: route, scope and the schemas the OpenAPI document shows."""

    method: str
    path: str
    handler: ApiHandler
    scope: str
    summary: str
    operation_id: str
    request: str | None = None  # name of a component schema
    responses: dict[int, str | None] = field(default_factory=dict)
    parameters: tuple[dict[str, Any], ...] = ()


# --- helpers ------------------------------------------------------------------------------


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported Media Type", "send application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Problem(413, "Payload Too Large", f"at most {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Problem(413, "Payload Too Large", f"at most {MAX_BODY} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise Problem(400, "Bad Request", "the body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Problem(422, "Unprocessable Content", "the body must be a JSON object")
    if _has_nul(data):
        # PostgreSQL stores no NUL in text or JSON; refuse it before anything is written.
        raise Problem(422, "Unprocessable Content", "the body contains a NUL character")
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not digits(raw) or len(raw) > 18:
        raise Problem(404, "Not Found", "no such object")
    return int(raw)


async def _publication(session: Any, caller: Caller, publication_id: int) -> Publication:
    publication: Publication | None = await session.get(Publication, publication_id)
    if publication is None or publication.office_id not in caller.member.offices:
        raise Problem(404, "Not Found", f"no publication {publication_id}")
    return publication


async def _report(request: web.Request, publication_id: int) -> dict[str, Any]:
    async with request.config_dict[keys.DB].sessions() as session:
        publication = await workflow.get_publication(session, publication_id)
        deliveries = await deliveries_of(session, publication_id)
    return publication_report(publication, deliveries, request.config_dict[keys.CORE])


def _origin(request: web.Request) -> str:
    return f"api:{client_address(request)}"


def _summary(publication: Publication) -> dict[str, Any]:
    return {
        "id": publication.id,
        "state": publication.state,
        "title": publication.title,
        "kind": publication.kind,
        "category": publication.category,
        "index_number": publication.index_number,
        "updated_at": publication.updated_at.isoformat(),
    }


# --- handlers -----------------------------------------------------------------------------


async def list_publications(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Publications of the caller's offices, newest first; cursor pagination."""
    raw_limit = query(request, "limit", 100, "20")
    if not digits(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise Problem(400, "Bad Request", f"limit must be 1-{MAX_LIMIT}", field="limit")
    limit = int(raw_limit)
    cursor = query(request, "cursor", 100, "")
    state = query(request, "state", 100, "")
    stmt = select(Publication).where(Publication.office_id.in_(list(caller.member.offices)))
    if cursor:
        if not digits(cursor) or len(cursor) > 18:
            raise Problem(400, "Bad Request", "cursor is not valid", field="cursor")
        stmt = stmt.where(Publication.id < int(cursor))
    if state:
        if state not in {s.value for s in PublicationState}:
            raise Problem(400, "Bad Request", "unknown state", field="state")
        stmt = stmt.where(Publication.state == state)
    async with request.config_dict[keys.DB].sessions() as session:
        rows = list(
            (await session.execute(stmt.order_by(Publication.id.desc()).limit(limit + 1))).scalars()
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return web.json_response(
        {
            "items": [_summary(p) for p in rows],
            "next_cursor": str(rows[-1].id) if more else None,
        }
    )


async def create_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Create a draft (``"submit": true`` also submits it); honours Idempotency-Key."""
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > 200:
        raise Problem(400, "Bad Request", "Idempotency-Key is at most 200 characters")
    raw = await _json(request)
    fingerprint = hashlib.sha256(
        json.dumps(raw, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    db = request.config_dict[keys.DB]
    config = request.config_dict[keys.CORE]
    if key:
        async with db.sessions() as session:
            stored = (
                await session.execute(
                    select(IdempotencyKey).where(
                        IdempotencyKey.token_id == caller.token_id, IdempotencyKey.key == key
                    )
                )
            ).scalar_one_or_none()
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise Problem(
                    422,
                    "Idempotency Key Reused",
                    "this Idempotency-Key was used with a different body",
                )
            response = web.json_response(stored.body, status=stored.status)
            response.headers["Idempotent-Replayed"] = "true"
            return response
    fields = dict(raw)
    office_key = fields.pop("office", None)
    do_submit = fields.pop("submit", False)
    if not isinstance(do_submit, bool):
        raise Problem(422, "Unprocessable Content", "submit must be true or false", field="submit")
    for banned in ("published_at", "index_number"):
        if banned in fields:
            raise Problem(
                422, "Unprocessable Content", f"{banned} is set by the system", field=banned
            )
    data = publication_from_fields(fields, max_body_chars=config.max_body_chars)
    try:
        async with db.transaction() as session:
            if office_key is None:
                offices = sorted(caller.member.offices)
                if not offices:
                    raise PermissionDenied("the token's owner belongs to no office")
                office = await session.get(Office, offices[0])
            elif isinstance(office_key, str):
                office = await workflow.office_by_key(session, office_key)
            else:
                raise ValidationError("office", "must be an office key")
            assert office is not None
            actor = caller.member.actor(_origin(request))
            publication = await workflow.create(
                session, config, office, data, actor, member=caller.member
            )
            if do_submit:
                await workflow.submit(session, publication.id, actor, member=caller.member)
            await session.flush()
            deliveries = await deliveries_of(session, publication.id)
            body = publication_report(publication, deliveries, config)
            if key:
                session.add(
                    IdempotencyKey(
                        token_id=caller.token_id,
                        key=key,
                        request_hash=fingerprint,
                        status=201,
                        body=body,
                    )
                )
    except IntegrityError:
        # The same key raced in from a parallel request: it won; nothing of ours stays.
        raise Problem(
            409, "Conflict", "a request with this Idempotency-Key is in progress"
        ) from None
    response = web.json_response(body, status=201)
    response.headers["Location"] = f"/api/v1/publications/{body['id']}"
    return response


async def show_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """One publication with its deliveries."""
    publication_id = _id(request)
    async with request.config_dict[keys.DB].sessions() as session:
        await _publication(session, caller, publication_id)
    return web.json_response(await _report(request, publication_id))


async def update_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Replace a draft's fields (a new version)."""
    publication_id = _id(request)
    fields = await _json(request)
    config = request.config_dict[keys.CORE]
    data = publication_from_fields(fields, max_body_chars=config.max_body_chars)
    async with request.config_dict[keys.DB].transaction() as session:
        await _publication(session, caller, publication_id)
        await workflow.edit(
            session,
            config,
            publication_id,
            data,
            caller.member.actor(_origin(request)),
            member=caller.member,
        )
    return web.json_response(await _report(request, publication_id))


async def submit_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Send a draft to review."""
    publication_id = _id(request)
    async with request.config_dict[keys.DB].transaction() as session:
        await _publication(session, caller, publication_id)
        await workflow.submit(
            session, publication_id, caller.member.actor(_origin(request)), member=caller.member
        )
    return web.json_response(await _report(request, publication_id))


async def review_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Approve or reject the current review step."""
    publication_id = _id(request)
    body = await _json(request)
    decision = body.get("decision")
    comment = body.get("comment", "")
    if decision not in ("approve", "reject"):
        raise Problem(422, "Unprocessable Content", "approve or reject", field="decision")
    if not isinstance(comment, str):
        raise Problem(422, "Unprocessable Content", "must be text", field="comment")
    # A reason to approve despite blocking content-check findings (audited).
    override = body.get("checks_override", "")
    if not isinstance(override, str):
        raise Problem(422, "Unprocessable Content", "must be text", field="checks_override")
    async with request.config_dict[keys.DB].transaction() as session:
        await _publication(session, caller, publication_id)
        await workflow.review(
            session,
            request.config_dict[keys.CORE],
            publication_id,
            caller.member,
            approve=decision == "approve",
            comment=comment,
            origin=_origin(request),
            checks_override=override,
        )
    return web.json_response(await _report(request, publication_id))


async def schedule_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Set the publication time and the urgent / push flags."""
    publication_id = _id(request)
    body = await _json(request)
    unknown = set(body) - {"publish_at", "urgent", "push"}
    if unknown:
        raise Problem(422, "Unprocessable Content", "unknown field", field=sorted(unknown)[0])
    for flag in ("urgent", "push"):
        if flag in body and not isinstance(body[flag], bool):
            raise Problem(422, "Unprocessable Content", "must be true or false", field=flag)
    parsed = publication_from_fields(
        {
            "title": "-",
            "category": "service",
            "issuing_body": "-",
            "body": "-",
            "publish_at": body.get("publish_at"),
        },
        max_body_chars=100,
    )
    async with request.config_dict[keys.DB].transaction() as session:
        await _publication(session, caller, publication_id)
        await workflow.schedule(
            session,
            publication_id,
            caller.member,
            publish_at=parsed.publish_at,
            urgent=body.get("urgent"),
            push=body.get("push"),
            origin=_origin(request),
        )
    return web.json_response(await _report(request, publication_id))


async def withdraw_publication(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Withdraw a publication everywhere it went."""
    publication_id = _id(request)
    body = await _json(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise Problem(422, "Unprocessable Content", "a reason of 1-2000 characters", field="reason")
    async with request.config_dict[keys.DB].transaction() as session:
        await _publication(session, caller, publication_id)
        await workflow.withdraw(
            session,
            publication_id,
            caller.member.actor(_origin(request)),
            reason=reason,
            member=caller.member,
        )
    return web.json_response(await _report(request, publication_id))


async def search_catalog(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Search the published catalog (the website's search index)."""
    from website import search as site_search

    q = query(request, "q", 101, "").strip()
    if not q or len(q) > 100:
        raise Problem(400, "Bad Request", "q: 1-100 characters", field="q")
    raw_limit = query(request, "limit", 100, "10")
    raw_offset = query(request, "offset", 100, "0")
    if not digits(raw_limit) or not 1 <= int(raw_limit) <= 50:
        raise Problem(400, "Bad Request", "limit must be 1-50", field="limit")
    if not digits(raw_offset) or int(raw_offset) > 10_000:
        raise Problem(400, "Bad Request", "offset must be 0-10000", field="offset")
    results = await site_search.search(
        request.config_dict[keys.DB], q, limit=int(raw_limit), offset=int(raw_offset)
    )
    return web.json_response(
        {
            "query": results.query,
            "total": results.total,
            "limit": results.limit,
            "offset": results.offset,
            "items": [
                {
                    "publication_id": h.publication_id,
                    "title": h.title,
                    "url": h.url,
                    "snippet": h.snippet,
                    "published_at": h.published_at.isoformat(),
                    "index_number": h.index_number,
                    "category": h.category,
                    "kind": h.kind,
                }
                for h in results.items
            ],
        }
    )


async def list_cases(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Cases of the caller's offices, open overdue ones first; offset pagination."""
    from bot.cases import service as cases

    raw_limit = query(request, "limit", 100, "20")
    raw_offset = query(request, "offset", 100, "0")
    if not digits(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise Problem(400, "Bad Request", f"limit must be 1-{MAX_LIMIT}", field="limit")
    if not digits(raw_offset) or int(raw_offset) > 100_000:
        raise Problem(400, "Bad Request", "offset must be 0-100000", field="offset")
    state = query(request, "state", 20) or None
    if state is not None and state not in {
        "received",
        "accepted",
        "rejected",
        "assigned",
        "replied",
        "rated",
        "closed",
    }:
        raise Problem(400, "Bad Request", "unknown state", field="state")
    limit, offset = int(raw_limit), int(raw_offset)
    offices = [o for o in sorted(caller.member.offices) if caller.member.has(o, Role.RESPONDER)]
    if not offices:
        raise PermissionDenied("the token's owner is not a responder")
    from sqlalchemy import case as sql_case

    from bot.cases.models import Case

    # One query over every office: open overdue cases first, then by deadline, so that the
    # order and the offsets hold across offices (not one office's list after another's).
    overdue = sql_case(
        (Case.state.in_(cases.OPEN_STATES) & (Case.deadline_at <= utcnow()), 0), else_=1
    )
    stmt = select(Case).where(Case.office_id.in_(offices))
    if state is not None:
        stmt = stmt.where(Case.state == state)
    stmt = stmt.order_by(overdue, Case.deadline_at, Case.id).offset(offset).limit(limit + 1)
    async with request.config_dict[keys.DB].sessions() as session:
        rows = list((await session.execute(stmt)).scalars())
    return web.json_response(
        {
            "items": [_case(c) for c in rows[:limit]],
            "next_offset": offset + limit if len(rows) > limit else None,
        }
    )


def _case(case: Any) -> dict[str, Any]:
    return {
        "id": case.id,
        "number": case.number,
        "kind": case.kind,
        "channel": case.channel,
        "state": case.state,
        "title": case.title,
        "text": case.text,
        "department": case.department,
        "received_at": case.received_at.isoformat(),
        "deadline_at": case.deadline_at.isoformat(),
        "reply_text": case.reply_text,
        "replied_at": case.replied_at.isoformat() if case.replied_at else None,
    }


async def reply_case(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Answer a case; the answer goes out through the channel it came from."""
    from bot.cases import service as cases

    case_id = _id(request)
    body = await _json(request)
    text = body.get("text")
    if not isinstance(text, str):
        raise Problem(422, "Unprocessable Content", "must be text", field="text")
    settings = request.config_dict[keys.SETTINGS]
    async with request.config_dict[keys.DB].transaction() as session:
        case = await cases.reply(
            session,
            caller.member,
            case_id,
            text,
            base_url=settings.website.base_url,
            origin=_origin(request),
        )
        data = _case(case)
    return web.json_response(data)


_ID = ({"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},)
_PAGE = (
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
    {
        "name": "state",
        "in": "query",
        "schema": {"type": "string", "enum": [s.value for s in PublicationState]},
    },
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/publications",
        list_publications,
        "publications:read",
        "List publications",
        "listPublications",
        responses={200: "PublicationList"},
        parameters=_PAGE,
    ),
    Operation(
        "POST",
        "/publications",
        create_publication,
        "publications:write",
        "Create a publication (draft)",
        "createPublication",
        request="PublicationInput",
        responses={201: "Publication"},
        parameters=(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "schema": {"type": "string", "maxLength": 200},
            },
        ),
    ),
    Operation(
        "GET",
        "/publications/{id}",
        show_publication,
        "publications:read",
        "Show a publication with its deliveries",
        "showPublication",
        responses={200: "Publication"},
        parameters=_ID,
    ),
    Operation(
        "PUT",
        "/publications/{id}",
        update_publication,
        "publications:write",
        "Replace a draft's fields",
        "updatePublication",
        request="PublicationInput",
        responses={200: "Publication"},
        parameters=_ID,
    ),
    Operation(
        "POST",
        "/publications/{id}/submit",
        submit_publication,
        "publications:write",
        "Submit a draft for review",
        "submitPublication",
        responses={200: "Publication"},
        parameters=_ID,
    ),
    Operation(
        "POST",
        "/publications/{id}/review",
        review_publication,
        "publications:review",
        "Decide the current review step",
        "reviewPublication",
        request="ReviewInput",
        responses={200: "Publication"},
        parameters=_ID,
    ),
    Operation(
        "POST",
        "/publications/{id}/schedule",
        schedule_publication,
        "publications:write",
        "Schedule a publication",
        "schedulePublication",
        request="ScheduleInput",
        responses={200: "Publication"},
        parameters=_ID,
    ),
    Operation(
        "POST",
        "/publications/{id}/withdraw",
        withdraw_publication,
        "publications:review",
        "Withdraw a publication everywhere",
        "withdrawPublication",
        request="WithdrawInput",
        responses={200: "Publication"},
        parameters=_ID,
    ),
    Operation(
        "GET",
        "/cases",
        list_cases,
        "cases:read",
        "List cases, overdue first",
        "listCases",
        responses={200: "CaseList"},
        parameters=(
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            {
                "name": "offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 100000},
            },
            {"name": "state", "in": "query", "schema": {"type": "string"}},
        ),
    ),
    Operation(
        "POST",
        "/cases/{id}/reply",
        reply_case,
        "cases:write",
        "Reply to a case",
        "replyCase",
        request="CaseReply",
        responses={200: "Case"},
        parameters=_ID,
    ),
    Operation(
        "GET",
        "/search",
        search_catalog,
        "search",
        "Search the published catalog",
        "searchCatalog",
        responses={200: "SearchResults"},
        parameters=(
            {
                "name": "q",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 100},
            },
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            {
                "name": "offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 10000},
            },
        ),
    ),
)


# --- authentication, rate limits, problems ------------------------------------------------


async def _authenticate(request: web.Request, scope: str) -> Caller:
    db = request.config_dict[keys.DB]
    limits = request.config_dict.get(API_LIMITS) or ApiLimits()
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    now = utcnow()
    row = None
    if token and len(token) <= 200:
        async with db.sessions() as session:
            row = (
                await session.execute(select(ApiToken).where(ApiToken.token_hash == digest(token)))
            ).scalar_one_or_none()
    if (
        row is None
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
    ):
        try:
            # Only guesses count against the address: a request without a token costs
            # nothing to refuse and guesses nothing.
            if token:
                async with db.transaction() as session:
                    await hit(
                        session,
                        f"apiauth:{client_address(request)}",
                        limits.bad_token_per_address,
                        timedelta(minutes=1),
                    )
        except RateLimited as exc:
            problem = Problem(429, "Too Many Requests", "too many failed authentications")
            problem.headers["Retry-After"] = str(exc.retry_after)
            raise problem from None
        problem = Problem(401, "Unauthorized", "a valid bearer token is required")
        problem.headers["WWW-Authenticate"] = 'Bearer realm="govcast"'
        raise problem
    try:
        async with db.transaction() as session:
            await hit(session, f"token:{row.id}", limits.per_token, timedelta(minutes=1))
            user = await session.get(User, row.user_id)
            if user is None or not user.is_active:
                raise Problem(401, "Unauthorized", "the token's owner is not active")
            fresh = await session.get(ApiToken, row.id)
            if fresh is not None and (
                fresh.last_used_at is None or now - fresh.last_used_at > timedelta(minutes=1)
            ):
                fresh.last_used_at = now
            member = staff.member_of(user)
    except RateLimited as exc:
        problem = Problem(429, "Too Many Requests", f"at most {limits.per_token} requests a minute")
        problem.headers["Retry-After"] = str(exc.retry_after)
        raise problem from None
    if scope not in row.scopes:
        raise Problem(403, "Forbidden", f"the token lacks the {scope} scope", kind="scope")
    return Caller(token_id=row.id, member=member, scopes=frozenset(row.scopes))


def _bind(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        caller = await _authenticate(request, operation.scope)
        return await operation.handler(request, caller)

    handler.__name__ = operation.operation_id
    handler.__doc__ = operation.summary
    handler.operation = operation  # type: ignore[attr-defined]
    return handler


def _problem_response(problem: Problem, request: web.Request) -> web.Response:
    response = web.json_response(
        problem.body(request.path), status=problem.status, content_type=PROBLEM
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every refusal as problem+json: never an HTML page, never a traceback."""
    try:
        response = await handler(request)
    except Problem as problem:
        response = _problem_response(problem, request)
    except ValidationError as exc:
        response = _problem_response(
            Problem(422, "Unprocessable Content", exc.message, kind="validation", field=exc.field),
            request,
        )
    except WorkflowError as exc:
        response = _problem_response(Problem(409, "Conflict", str(exc), kind="state"), request)
    except PermissionDenied as exc:
        response = _problem_response(Problem(403, "Forbidden", str(exc)), request)
    except NotFound as exc:
        response = _problem_response(Problem(404, "Not Found", str(exc)), request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        http_problem = Problem(exc.status, exc.reason, "")
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                http_problem.headers[name] = exc.headers[name]
        response = _problem_response(http_problem, request)
    except Exception:  # logged, never shown
        log.exception("api error", extra={"path": request.path})
        response = _problem_response(Problem(500, "Internal Server Error", ""), request)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def openapi(request: web.Request) -> web.StreamResponse:
    """The OpenAPI 3.1 description of this API."""
    return web.json_response(openapi_document(request.config_dict[keys.SETTINGS].website.base_url))


def build_api() -> web.Application:
    """The API sub-application, its routes taken from OPERATIONS."""
    api = web.Application(middlewares=[problem_middleware])
    for operation in OPERATIONS:
        api.router.add_route(operation.method, operation.path, _bind(operation))
    api.router.add_get("/openapi.json", openapi)
    return api


# --- the OpenAPI document -----------------------------------------------------------------

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_DT = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "properties": {
            "type": _STR,
            "title": _STR,
            "status": {"type": "integer"},
            "detail": _STR,
            "instance": _STR,
            "field": _STR,
        },
        "required": ["type", "title", "status"],
    },
    "PublicationInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "category", "issuing_body"],
        "anyOf": [{"required": ["body"]}, {"required": ["body_html"]}],
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 300},
            "title_en": _STR,
            "kind": {
                "type": "string",
                "enum": [
                    "disclosure",
                    "press_release",
                    "press_conference",
                    "solicitation",
                    "column_item",
                ],
            },
            "category": {
                "type": "string",
                "enum": [
                    "decision",
                    "implementation",
                    "management",
                    "service",
                    "results",
                    "key_area",
                ],
            },
            "issuing_body": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string", "description": "Markdown (or give body_html)"},
            "body_html": _STR,
            "body_en": _STR,
            "body_html_en": _STR,
            "document_number": _STR,
            "written_on": {"type": "string", "format": "date"},
            "subject": _STR,
            "genre": _STR,
            "audience": _STR,
            "keywords": {"type": "array", "items": _STR, "maxItems": 20},
            "summary": _STR,
            "channels": {"type": "array", "items": _STR},
            "publish_at": {"type": "string", "format": "date-time"},
            "urgent": {"type": "boolean"},
            "push": {"type": "boolean"},
            "validity": {"type": "string", "enum": ["in_force", "amended", "repealed", "expired"]},
            "source": _STR,
            "column": _STR,
            "explanation_url": {"type": "string", "format": "uri"},
            "solicitation_opens_at": {"type": "string", "format": "date-time"},
            "solicitation_closes_at": {"type": "string", "format": "date-time"},
            "solicitation_basis": {"type": "string", "enum": ["major_decision", "normative"]},
            "office": {"type": "string", "description": "office key (create only)"},
            "submit": {"type": "boolean", "description": "also submit for review (create only)"},
        },
    },
    "ReviewInput": {
        "type": "object",
        "required": ["decision"],
        "properties": {
            "decision": {"type": "string", "enum": ["approve", "reject"]},
            "comment": {"type": "string", "maxLength": 2000},
            "checks_override": {
                "type": "string",
                "maxLength": 2000,
                "description": "final approval only: the reason to approve despite blocking "
                "content-check findings (written to the audit log)",
            },
        },
    },
    "ScheduleInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "publish_at": {"type": ["string", "null"], "format": "date-time"},
            "urgent": {"type": "boolean"},
            "push": {"type": "boolean"},
        },
    },
    "WithdrawInput": {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000}},
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "channel": _STR,
            "account": _STR,
            "action": _STR,
            "revision": {"type": "integer"},
            "state": _STR,
            "attempts": {"type": "integer"},
            "not_before": _DT,
            "remote_id": _NSTR,
            "remote_url": _NSTR,
            "last_error": _NSTR,
        },
    },
    "Publication": {
        "type": "object",
        "required": ["id", "state", "title", "deliveries"],
        "properties": {
            "id": {"type": "integer"},
            "state": _STR,
            "index_number": _NSTR,
            "url": _NSTR,
            "kind": _STR,
            "title": _STR,
            "version": {"type": "integer"},
            "category": _STR,
            "issuing_body": _STR,
            "document_number": _NSTR,
            "written_on": _NSTR,
            "subject": _NSTR,
            "keywords": {"type": "array", "items": _STR},
            "summary": _STR,
            "validity": _STR,
            "channels": {"type": "array", "items": _STR},
            "publish_at": _DT,
            "published_at": _DT,
            "urgent": {"type": "boolean"},
            "push": {"type": "boolean"},
            "review_step": {"type": "integer"},
            "review_steps": {"type": "integer"},
            "rejection_reason": _NSTR,
            "created_at": _DT,
            "approved_at": _DT,
            "withdrawn_at": _DT,
            "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}},
        },
    },
    "PublicationSummary": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "state": _STR,
            "title": _STR,
            "kind": _STR,
            "category": _STR,
            "index_number": _NSTR,
            "updated_at": _DT,
        },
    },
    "PublicationList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/PublicationSummary"},
            },
            "next_cursor": _NSTR,
        },
    },
    "Case": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "number": _STR,
            "kind": _STR,
            "channel": _STR,
            "state": _STR,
            "title": _STR,
            "text": _STR,
            "department": _NSTR,
            "received_at": _DT,
            "deadline_at": _DT,
            "reply_text": _NSTR,
            "replied_at": _DT,
        },
    },
    "CaseList": {
        "type": "object",
        "required": ["items", "next_offset"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}},
            "next_offset": {"type": ["integer", "null"]},
        },
    },
    "CaseReply": {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 10000}},
    },
    "SearchResults": {
        "type": "object",
        "properties": {
            "query": _STR,
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    },
}

_ERRORS = {
    400: "Bad request",
    401: "No valid token",
    403: "Missing scope or role",
    404: "Not found",
    409: "State conflict",
    413: "Body too large",
    415: "Not JSON",
    422: "Invalid field",
    429: "Rate limited",
}


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document, built from OPERATIONS and SCHEMAS."""
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {}
        for status, schema in op.responses.items():
            content = (
                {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
                if schema
                else None
            )
            responses[str(status)] = {
                "description": "OK",
                **({"content": content} if content else {}),
            }
        for status, text in _ERRORS.items():
            responses[str(status)] = {
                "description": text,
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "security": [{"bearer": [op.scope]}],
            "parameters": list(op.parameters),
            "responses": responses,
            "x-scope": op.scope,
        }
        if op.request:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{op.request}"}}
                },
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "govcast API",
            "version": "1.0.0",
            "description": "Publications, review and search for integration with office systems. "
            "Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": f"{server_url.rstrip('/')}/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal access token created in the console (gct_...).",
                }
            },
        },
    }
