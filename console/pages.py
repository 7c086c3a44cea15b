"""The console's pages: sign-in, compose, review, schedule, deliveries, admin, tokens.

Every handler carries its roles (``@requires``); the object's office is checked again
against the member's offices (and by the core for every state change).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.comments.service import counts_by_publication
from console.forms import (
    diff_versions,
    form_to_fields,
    iso_to_local,
    month_grid,
    parse_month,
    publication_to_form,
)
from console.keys import JINJA
from console.models import ApiToken, ConsoleSession
from console.security import (
    CURRENT,
    LOGIN_CSRF_COOKIE,
    LOGIN_LIMIT,
    LOGIN_WINDOW,
    SESSION_COOKIE,
    Current,
    RateLimited,
    client_address,
    digest,
    digits,
    hit,
    is_https,
    new_token,
    open_session,
    public,
    query,
    requires,
    same,
)
from govcast import keys
from publisher import audit, queue, staff, workflow
from publisher.config import CoreConfig
from publisher.errors import NotFound, PermissionDenied, ValidationError, WorkflowError
from publisher.inputs import PublicationInput, publication_from_fields
from publisher.models import (
    Alert,
    AuditEntry,
    Category,
    Delivery,
    DeliveryState,
    Kind,
    Media,
    Membership,
    Office,
    Publication,
    PublicationMedia,
    PublicationState,
    PublicationVersion,
    Review,
    Role,
    User,
    Validity,
)
from publisher.orm import utcnow
from publisher.views import deliveries_of, media_url, snapshot_of

log = logging.getLogger("govcast.console")
routes = web.RouteTableDef()

STAFF_VIEW = (Role.EDITOR, Role.REVIEWER, Role.APPROVER)
API_SCOPES = (
    "publications:read",
    "publications:write",
    "publications:review",
    "cases:read",
    "cases:write",
    "search",
)
KIND_LABELS = {
    "disclosure": ("政府信息公开", "Disclosure"),
    "press_release": ("新闻发布", "Press release"),
    "press_conference": ("新闻发布会", "Press conference"),
    "solicitation": ("意见征集", "Solicitation"),
    "column_item": ("栏目信息", "Column item"),
}
CATEGORY_LABELS = {
    "decision": ("决策公开", "Decision"),
    "implementation": ("执行公开", "Implementation"),
    "management": ("管理公开", "Management"),
    "service": ("服务公开", "Service"),
    "results": ("结果公开", "Results"),
    "key_area": ("重点领域信息", "Key area"),
}
STATE_LABELS = {
    "draft": ("草稿", "Draft"),
    "in_review": ("审核中", "In review"),
    "scheduled": ("已排期", "Scheduled"),
    "queued": ("发布中", "Publishing"),
    "published": ("已发布", "Published"),
    "withdrawn": ("已撤回", "Withdrawn"),
    "pending": ("待发送", "Pending"),
    "sending": ("发送中", "Sending"),
    "confirming": ("待确认", "Confirming"),
    "done": ("完成", "Done"),
    "dead": ("失败", "Dead"),
    "cancelled": ("已取消", "Cancelled"),
}
VALIDITY_LABELS = {
    "in_force": ("有效", "In force"),
    "amended": ("已修改", "Amended"),
    "repealed": ("已废止", "Repealed"),
    "expired": ("已失效", "Expired"),
}
ROLE_LABELS = {
    "editor": ("编辑", "Editor"),
    "reviewer": ("审核", "Reviewer"),
    "approver": ("终审", "Approver"),
    "responder": ("答复", "Responder"),
    "admin": ("管理员", "Administrator"),
}
STEP_LABELS = {
    "first review": ("初审", "First review"),
    "second review": ("复审", "Second review"),
    "final approval": ("终审", "Final approval"),
}
PAGE = 50
BOARD_PAGE = 100


def translator(lang: str) -> Callable[..., str]:
    """``t("中文", "English")``: the text in the session's language."""

    def t(zh: str, en: str = "") -> str:
        return en if lang == "en" and en else zh

    return t


def static_url(name: str) -> str:
    """Address of a console static file."""
    return f"/console/static/{name}"


def _current(request: web.Request) -> Current:
    current: Current | None = request.get(CURRENT)
    if current is None:
        raise web.HTTPUnauthorized()
    return current


def _config(request: web.Request) -> CoreConfig:
    return request.config_dict[keys.CORE]


def _origin(request: web.Request) -> str:
    # Behind a trusted proxy, the client it names (per-client sign-in limit, audit).
    return client_address(request)


async def flash(request: web.Request, level: str, zh: str, en: str = "") -> None:
    """Queue a message for the next page this session shows."""
    current = request.get(CURRENT)
    if current is None:
        return
    text = translator(current.lang)(zh, en)
    async with request.config_dict[keys.DB].transaction() as session:
        row = await session.get(ConsoleSession, current.session_id)
        if row is not None:
            row.flash = [*(row.flash or []), [level, text[:2000]]][-10:]


async def render(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    """Render a page with the common context (user, CSRF token, messages, language)."""
    current: Current | None = request.get(CURRENT)
    flashes: list[Any] = []
    lang = current.lang if current else query(request, "lang", 100, "zh")
    lang = lang if lang in ("zh", "en") else "zh"
    if current is not None:
        async with request.config_dict[keys.DB].transaction() as session:
            row = await session.get(ConsoleSession, current.session_id)
            if row is not None and row.flash:
                flashes = list(row.flash)
                row.flash = []
    t = translator(lang)

    def label(table: dict[str, tuple[str, str]], value: str) -> str:
        pair = table.get(value)
        return t(*pair) if pair else value

    config = _config(request)
    context.update(
        current=current,
        csrf=current.csrf_token if current else "",
        flashes=flashes,
        t=t,
        lang=lang,
        label=label,
        KIND=KIND_LABELS,
        CATEGORY=CATEGORY_LABELS,
        STATE=STATE_LABELS,
        VALIDITY=VALIDITY_LABELS,
        ROLE=ROLE_LABELS,
        STEP=STEP_LABELS,
        static=static_url,
        local=lambda value: _local(value, config),
        Role=Role,
        request_path=request.path,
    )
    html = aiohttp_jinja2.render_string(template, request, context, app_key=JINJA)
    return web.Response(status=status, text=html, content_type="text/html")


def _local(value: datetime | None, config: CoreConfig) -> str:
    if value is None:
        return "—"
    return value.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M")


def _see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def _int(value: str, name: str = "id") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None
    if not 0 < number < 2**62:
        raise web.HTTPNotFound()
    return number


async def _form(request: web.Request) -> dict[str, Any]:
    data = await request.post()
    return {k: data.getall(k) if len(data.getall(k)) > 1 else data.get(k) for k in data}


def _text(form: dict[str, Any], name: str, limit: int = 2000) -> str:
    value = form.get(name, "")
    if isinstance(value, list):
        value = value[0]
    if not isinstance(value, str):
        raise ValidationError(name, "must be text")
    if len(value) > limit:
        raise ValidationError(name, f"at most {limit} characters")
    if "\x00" in value:
        raise ValidationError(name, "contains a NUL character")
    return value.strip()


def _list(form: dict[str, Any], name: str) -> list[str]:
    value = form.get(name)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def _safe_next(value: str) -> str:
    # Only local console paths: never an open redirect.
    if value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


def _cookie_kwargs(request: web.Request) -> dict[str, Any]:
    settings = request.config_dict[keys.SETTINGS]
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": is_https(settings.website.base_url),
        "path": "/console/",
    }


# --- sign-in ------------------------------------------------------------------------------


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (with a double-submit CSRF cookie, since there is no session yet)."""
    if request.get(CURRENT) is not None:
        raise _see_other("/console/")
    token = new_token(24)
    response = await render(
        request,
        "login.html",
        login_csrf=token,
        next=_safe_next(query(request, "next", 500, "/console/")),
        error="",
        name="",
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **_cookie_kwargs(request))
    return response


@routes.post("/login")
@public
async def login(request: web.Request) -> web.StreamResponse:
    """Check the password (counting failures), then open a server-side session."""
    form = await _form(request)
    sent = form.get("_csrf")
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not isinstance(sent, str) or not same(sent, cookie):
        raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the sign-in page")
    name = _text(form, "name", 64)
    password = form.get("password")
    lang = _text(form, "lang", 8) or "zh"
    t = translator(lang)
    target = _safe_next(_text(form, "next", 500) or "/console/")
    db = request.config_dict[keys.DB]
    try:
        async with db.transaction() as session:
            await hit(session, f"login:{_origin(request)}", LOGIN_LIMIT, LOGIN_WINDOW)
    except RateLimited as exc:
        response = await render(
            request,
            "login.html",
            status=429,
            login_csrf=cookie,
            next=target,
            name=name,
            error=t("登录尝试过多，请稍后再试。", "Too many sign-in attempts; try again later."),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    user = None
    if isinstance(password, str) and name and 0 < len(password) <= 512:
        async with db.transaction() as session:
            user = await staff.authenticate(session, name, password)
            if user is not None:
                token = await open_session(session, user, _origin(request), lang)
                audit.record(
                    session,
                    audit.Actor(user.name, user.id, _origin(request)),
                    "console.login",
                    "user",
                    user.id,
                )
    if user is None:
        return await render(
            request,
            "login.html",
            status=401,
            login_csrf=cookie,
            next=target,
            name=name,
            error=t(
                "用户名或密码错误。连续失败5次后账号将锁定15分钟。",
                "Wrong name or password. After 5 failures the account is locked for 15 minutes.",
            ),
        )
    response = web.HTTPSeeOther(target)
    response.set_cookie(SESSION_COOKIE, token, **_cookie_kwargs(request))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/console/")
    raise response


@routes.post("/logout")
@requires()
async def logout(request: web.Request) -> web.StreamResponse:
    """End this session."""
    current = _current(request)
    async with request.config_dict[keys.DB].transaction() as session:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.id == current.session_id))
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie(SESSION_COOKIE, path="/console/")
    raise response


@routes.post("/lang")
@requires()
async def set_lang(request: web.Request) -> web.StreamResponse:
    """Switch the session's language (中文 / English)."""
    current = _current(request)
    form = await _form(request)
    lang = _text(form, "lang", 8)
    if lang not in ("zh", "en"):
        raise ValidationError("lang", "must be zh or en")
    async with request.config_dict[keys.DB].transaction() as session:
        row = await session.get(ConsoleSession, current.session_id)
        if row is not None:
            row.lang = lang
    raise _see_other(_safe_next(_text(form, "next", 500)))


@routes.get("/password")
@requires()
async def password_page(request: web.Request) -> web.StreamResponse:
    """The password change form."""
    return await render(request, "password.html", errors={})


@routes.post("/password")
@requires()
async def change_password(request: web.Request) -> web.StreamResponse:
    """Change one's own password; every other session of the account ends."""
    current = _current(request)
    t = translator(current.lang)
    form = await _form(request)
    old, new, again = (form.get(k) for k in ("current", "new", "again"))
    if not all(isinstance(v, str) for v in (old, new, again)):
        raise ValidationError("password", "missing")
    assert isinstance(old, str) and isinstance(new, str) and isinstance(again, str)
    errors: dict[str, str] = {}
    if new != again:
        errors["again"] = t("两次输入的新密码不一致。", "The new passwords differ.")
    else:
        try:
            staff.check_password_strength(new)
        except ValidationError:
            errors["new"] = t(
                "新密码至少10位且不能过于简单。",
                "The new password needs at least 10 characters and must not be too simple.",
            )
    db = request.config_dict[keys.DB]
    if not errors:
        async with db.transaction() as session:
            user = await staff.authenticate(session, current.user.name, old[:512])
            if user is None:
                errors["current"] = t("当前密码错误。", "The current password is wrong.")
            else:
                now = utcnow()
                user.password_hash = staff.hash_password(new)
                user.password_changed_at = now
                await session.execute(
                    delete(ConsoleSession).where(ConsoleSession.user_id == user.id)
                )
                token = await open_session(session, user, _origin(request), current.lang)
                audit.record(
                    session,
                    current.member.actor(_origin(request)),
                    "user.password",
                    "user",
                    user.id,
                )
    if errors:
        return await render(request, "password.html", status=400, errors=errors)
    response = web.HTTPSeeOther("/console/")
    response.set_cookie(SESSION_COOKIE, token, **_cookie_kwargs(request))
    async with db.transaction() as session:
        row = await session.get(ConsoleSession, digest(token))
        if row is not None:
            row.flash = [
                [
                    "success",
                    t("密码已修改，其他会话已退出。", "Password changed; other sessions ended."),
                ]
            ]
    raise response


# --- dashboard and lists ------------------------------------------------------------------


@routes.get("/")
@requires()
async def dashboard(request: web.Request) -> web.StreamResponse:
    """What needs attention: drafts, the review queue, dead deliveries, alerts."""
    current = _current(request)
    offices = list(current.member.offices)
    async with request.config_dict[keys.DB].sessions() as session:
        counts = dict(
            (
                await session.execute(
                    select(Publication.state, func.count())
                    .where(Publication.office_id.in_(offices))
                    .group_by(Publication.state)
                )
            ).all()
        )
        dead = (
            await session.execute(
                select(func.count())
                .select_from(Delivery)
                .join(Publication, Publication.id == Delivery.publication_id)
                .where(Delivery.state == "dead", Publication.office_id.in_(offices))
            )
        ).scalar_one()
        # The same alerts as the delivery board shows this member: their offices' and
        # those that belong to no publication.
        alerts = (
            await session.execute(
                select(func.count())
                .select_from(Alert)
                .outerjoin(Publication, Publication.id == Alert.publication_id)
                .where(
                    Alert.acknowledged_at.is_(None),
                    or_(Alert.publication_id.is_(None), Publication.office_id.in_(offices)),
                )
            )
        ).scalar_one()
        queue_size = len(await _review_queue(session, current, _config(request)))
    return await render(
        request, "dashboard.html", counts=counts, dead=dead, alerts=alerts, queue_size=queue_size
    )


@routes.get("/publications")
@requires(*STAFF_VIEW)
async def publications(request: web.Request) -> web.StreamResponse:
    """Publications of the member's offices, newest first, filterable by state and title."""
    current = _current(request)
    state = query(request, "state", 100, "")
    q = query(request, "q", 100)
    before = query(request, "before", 100, "")
    stmt = select(Publication).where(Publication.office_id.in_(list(current.member.offices)))
    if state in {s.value for s in PublicationState}:
        stmt = stmt.where(Publication.state == state)
    if q:
        stmt = stmt.where(Publication.title.contains(q, autoescape=True))
    if digits(before):
        stmt = stmt.where(Publication.id < int(before))
    async with request.config_dict[keys.DB].sessions() as session:
        rows = list(
            (await session.execute(stmt.order_by(Publication.id.desc()).limit(PAGE + 1))).scalars()
        )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_url = ""
    if more:
        next_url = "?" + urlencode({"state": state, "q": q, "before": rows[-1].id})
    return await render(
        request, "publications.html", rows=rows, state=state, q=q, next_url=next_url
    )


# --- compose ------------------------------------------------------------------------------


def _available_targets(request: web.Request, office_key: str) -> list[str]:
    configured = _config(request).targets_by_office.get(office_key, ("website",))
    registry = request.config_dict.get(keys.CHANNELS)
    registered = set(registry.targets()) if hasattr(registry, "targets") else {"website"}
    return [t for t in configured if t in registered]


async def _editor_offices(session: AsyncSession, current: Current) -> list[Office]:
    ids = current.offices_with(Role.EDITOR)
    if not ids:
        return []
    return list(
        (
            await session.execute(select(Office).where(Office.id.in_(ids)).order_by(Office.id))
        ).scalars()
    )


def _files(form: dict[str, Any], name: str) -> list[web.FileField]:
    value = form.get(name)
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, web.FileField) and v.filename]


async def _store_uploads(
    request: web.Request, session: AsyncSession, office_id: int, form: dict[str, Any]
) -> list[tuple[str, Media, str]]:
    """Store the uploaded images and attachments: (role, media, alt text) in upload order."""
    store = request.config_dict[keys.MEDIA]
    alt = _text(form, "image_alt", 300)
    stored: list[tuple[str, Media, str]] = []
    for role, name in (("image", "images"), ("attachment", "attachments")):
        for upload in _files(form, name):
            content = upload.file.read(store.max_bytes + 1)
            media = await store.save(
                session, office_id, upload.filename, content, image_only=role == "image"
            )
            text = (alt or upload.filename)[:300] if role == "image" else ""
            stored.append((role, media, text))
    return stored


async def _link_media(
    session: AsyncSession,
    publication: Publication,
    stored: list[tuple[str, Media, str]],
    form: dict[str, Any],
) -> int:
    """Link stored uploads to the publication; drop the links the form asks to remove."""
    position = (
        await session.execute(
            select(func.count())
            .select_from(PublicationMedia)
            .where(PublicationMedia.publication_id == publication.id)
        )
    ).scalar_one()
    added = 0
    for role, media, alt in stored:
        exists = await session.get(PublicationMedia, (publication.id, media.id))
        if exists is None:
            session.add(
                PublicationMedia(
                    publication_id=publication.id,
                    media_id=media.id,
                    role=role,
                    position=position,
                    alt=alt,
                )
            )
            position += 1
            added += 1
    for media_id in _list(form, "remove_media"):
        if digits(media_id):
            link = await session.get(PublicationMedia, (publication.id, int(media_id)))
            if link is not None:
                await session.delete(link)
    return added


_MD_ESCAPE = re.compile(r"([\\\[\]*_`<>!])")


def image_snippet(config: CoreConfig, media: Media, alt: str) -> str:
    """Markdown that places a stored image in a body (website page and WeChat article)."""
    url = media_url(config, media).rsplit("/", 1)[0] + "/" + quote(media.filename)
    text = _MD_ESCAPE.sub(r"\\\1", " ".join(alt.split()))[:300]
    return f"![{text}](<{url}>)"


async def _place_images(
    request: web.Request,
    session: AsyncSession,
    publication_id: int | None,
    form: dict[str, Any],
    stored: list[tuple[str, Media, str]],
) -> dict[str, Any]:
    """The form with the images chosen for the body appended to it (the no-script path).

    "images_in_body" places every image uploaded now; "insert_media" places images already
    linked to the draft. An image whose address is already in the body is not added twice.
    """
    config = _config(request)
    chosen: list[tuple[Media, str]] = []
    if form.get("images_in_body"):
        chosen += [(media, alt) for role, media, alt in stored if role == "image"]
    ids = [int(v) for v in _list(form, "insert_media") if digits(v)][:50]
    if ids and publication_id is not None:
        rows = await session.execute(
            select(PublicationMedia, Media)
            .join(Media, Media.id == PublicationMedia.media_id)
            .where(
                PublicationMedia.publication_id == publication_id,
                PublicationMedia.media_id.in_(ids),
                PublicationMedia.role == "image",
            )
            .order_by(PublicationMedia.position)
        )
        chosen += [(media, link.alt or media.filename) for link, media in rows.all()]
    body = form.get("body")
    if not chosen or not isinstance(body, str):
        return form
    snippets = []
    for media, alt in chosen:
        snippet = image_snippet(config, media, alt)
        if media.sha256 not in body and snippet not in snippets:
            snippets.append(snippet)
    if not snippets:
        return form
    return {**form, "body": body.rstrip() + "\n\n" + "\n\n".join(snippets) + "\n"}


def _input(request: web.Request, form: dict[str, Any], office_key: str) -> PublicationInput:
    config = _config(request)
    channels = _list(form, "channels")
    allowed = _available_targets(request, office_key)
    unknown = [c for c in channels if c not in allowed]
    if unknown:
        raise ValidationError("channels", f"{', '.join(unknown)} is not available")
    fields = form_to_fields(form, channels, config.timezone)
    return publication_from_fields(fields, max_body_chars=config.max_body_chars)


async def _compose_page(
    request: web.Request,
    *,
    offices: list[Office],
    values: dict[str, Any],
    publication: Publication | None,
    mode: str,
    error: ValidationError | None = None,
    media: list[Any] | None = None,
    status: int = 200,
) -> web.Response:
    office_key = values.get("office") or (offices[0].key if offices else "")
    config = _config(request)
    media = media or []
    snippets = {
        m.id: image_snippet(config, m, link.alt or m.filename)
        for link, m in media
        if link.role == "image"
    }
    return await render(
        request,
        "compose.html",
        status=status,
        offices=offices,
        values=values,
        publication=publication,
        mode=mode,
        error=error,
        targets=_available_targets(request, office_key),
        kinds=[k.value for k in Kind],
        categories=[c.value for c in Category],
        validities=[v.value for v in Validity],
        media=media,
        snippets=snippets,
        findings=await _form_findings(request, values, mode),
        quiet=(config.quiet_hours_start, config.quiet_hours_end),
    )


async def _form_findings(
    request: web.Request, values: dict[str, Any], mode: str
) -> list[Any] | None:
    """The content checks over the form as filled in (saved or not); None on an empty form."""
    title, summary, body = (values.get(k) for k in ("title", "summary", "body"))
    if mode == "new" and not title and not body:
        return None
    try:
        from publisher.checks.run import CheckSubject
        from publisher.markup import markdown_to_html

        subject = CheckSubject(
            title=title if isinstance(title, str) else "",
            summary=summary if isinstance(summary, str) else "",
            body_html=markdown_to_html(body) if isinstance(body, str) else "",
            channels=tuple(c for c in values.get("channels") or () if isinstance(c, str)),
        )
    except ImportError:
        return None
    publication: Any = subject
    return await _findings(request, publication)


@routes.get("/publications/new")
@requires(Role.EDITOR)
async def compose_page(request: web.Request) -> web.StreamResponse:
    """An empty compose form."""
    current = _current(request)
    async with request.config_dict[keys.DB].sessions() as session:
        offices = await _editor_offices(session, current)
    values: dict[str, Any] = {
        "kind": "disclosure",
        "validity": "in_force",
        "office": offices[0].key,
    }
    values["channels"] = _available_targets(request, offices[0].key)
    return await _compose_page(
        request, offices=offices, values=values, publication=None, mode="new"
    )


@routes.post("/publications/new")
@requires(Role.EDITOR)
async def compose(request: web.Request) -> web.StreamResponse:
    """Store a new draft with its images and attachments (one transaction)."""
    current = _current(request)
    form = await _form(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        offices = await _editor_offices(session, current)
    office_key = _text(form, "office", 64) or offices[0].key
    office = next((o for o in offices if o.key == office_key), None)
    if office is None:
        raise PermissionDenied("you are not an editor of that office")
    try:
        data = _input(request, form, office.key)
        async with db.transaction() as session:
            stored = await _store_uploads(request, session, office.id, form)
            placed = await _place_images(request, session, None, form, stored)
            if placed is not form:
                data = _input(request, placed, office.key)
            publication = await workflow.create(
                session,
                _config(request),
                office,
                data,
                current.member.actor(_origin(request)),
                member=current.member,
            )
            await _link_media(session, publication, stored, form)
            publication_id = publication.id
    except ValidationError as exc:
        values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        values["channels"] = _list(form, "channels")
        return await _compose_page(
            request,
            offices=offices,
            values=values,
            publication=None,
            mode="new",
            error=exc,
            status=400,
        )
    await flash(request, "success", "草稿已保存。", "Draft saved.")
    raise _see_other(f"/console/publications/{publication_id}")


async def _publication(request: web.Request, session: AsyncSession) -> Publication:
    current = _current(request)
    publication_id = _int(request.match_info["id"])
    publication = await session.get(Publication, publication_id)
    if publication is None or publication.office_id not in current.member.offices:
        # Outside the member's offices it does not exist, as far as they can tell.
        raise NotFound(f"no publication {publication_id}")
    return publication


async def _media_of(session: AsyncSession, publication_id: int) -> list[Any]:
    return list(
        (
            await session.execute(
                select(PublicationMedia, Media)
                .join(Media, Media.id == PublicationMedia.media_id)
                .where(PublicationMedia.publication_id == publication_id)
                .order_by(PublicationMedia.position)
            )
        ).all()
    )


@routes.get("/publications/{id}/edit")
@requires(Role.EDITOR)
async def edit_page(request: web.Request) -> web.StreamResponse:
    """The compose form filled with a draft."""
    current = _current(request)
    async with request.config_dict[keys.DB].sessions() as session:
        publication = await _publication(request, session)
        current.member.require(publication.office_id, Role.EDITOR)
        office = await session.get(Office, publication.office_id)
        media = await _media_of(session, publication.id)
    assert office is not None
    values: dict[str, Any] = publication_to_form(publication, _config(request).timezone)
    values["office"] = office.key
    values["channels"] = list(publication.channels)
    return await _compose_page(
        request, offices=[office], values=values, publication=publication, mode="edit", media=media
    )


@routes.post("/publications/{id}/edit")
@requires(Role.EDITOR)
async def edit(request: web.Request) -> web.StreamResponse:
    """Save a new version of a draft."""
    current = _current(request)
    form = await _form(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
        office = await session.get(Office, publication.office_id)
        media = await _media_of(session, publication.id)
    assert office is not None
    try:
        data = _input(request, form, office.key)
        async with db.transaction() as session:
            stored = await _store_uploads(request, session, office.id, form)
            placed = await _place_images(request, session, publication.id, form, stored)
            if placed is not form:
                data = _input(request, placed, office.key)
            saved = await workflow.edit(
                session,
                _config(request),
                publication.id,
                data,
                current.member.actor(_origin(request)),
                member=current.member,
            )
            await _link_media(session, saved, stored, form)
    except ValidationError as exc:
        values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        values["channels"] = _list(form, "channels")
        values["office"] = office.key
        return await _compose_page(
            request,
            offices=[office],
            values=values,
            publication=publication,
            mode="edit",
            error=exc,
            media=media,
            status=400,
        )
    await flash(request, "success", "已保存新版本。", "New version saved.")
    raise _see_other(f"/console/publications/{publication.id}")


@routes.get("/publications/{id}/correct")
@requires(Role.APPROVER)
async def correct_page(request: web.Request) -> web.StreamResponse:
    """The compose form for a correction of a published item."""
    current = _current(request)
    async with request.config_dict[keys.DB].sessions() as session:
        publication = await _publication(request, session)
        current.member.require(publication.office_id, Role.APPROVER)
        office = await session.get(Office, publication.office_id)
    assert office is not None
    values: dict[str, Any] = publication_to_form(publication, _config(request).timezone)
    values["office"] = office.key
    values["channels"] = list(publication.channels)
    return await _compose_page(
        request, offices=[office], values=values, publication=publication, mode="correct"
    )


@routes.post("/publications/{id}/correct")
@requires(Role.APPROVER)
async def correct(request: web.Request) -> web.StreamResponse:
    """Save a correction; every channel the item reached gets the update."""
    current = _current(request)
    form = await _form(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
        office = await session.get(Office, publication.office_id)
    assert office is not None
    try:
        data = _input(request, {**form, "channels": list(publication.channels)}, office.key)
        async with db.transaction() as session:
            await workflow.correct(
                session,
                _config(request),
                publication.id,
                data,
                current.member,
                reason=_text(form, "reason", 2000),
                origin=_origin(request),
            )
    except ValidationError as exc:
        values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        values["channels"] = list(publication.channels)
        values["office"] = office.key
        return await _compose_page(
            request,
            offices=[office],
            values=values,
            publication=publication,
            mode="correct",
            error=exc,
            status=400,
        )
    await flash(
        request,
        "success",
        "更正已保存，将同步到各渠道。",
        "Correction saved; channels will be updated.",
    )
    raise _see_other(f"/console/publications/{publication.id}")


# --- one publication ----------------------------------------------------------------------


async def _findings(request: web.Request, publication: Publication) -> list[Any] | None:
    try:
        from publisher.checks import run as checks_run
    except ImportError:
        return None
    hook = _config(request).content_checks
    try:
        if hook is None:
            return list(checks_run.run_checks(publication))
        # The approval hook itself (the office's stored lists and severities): the page
        # shows exactly what final approval will refuse.
        async with request.config_dict[keys.DB].sessions() as session:
            return list(await hook(session, publication))
    except Exception:  # a failing check must not hide the page; it is logged
        log.exception(
            "content checks failed", extra={"publication_id": getattr(publication, "id", None)}
        )
        return None


def _can_review(current: Current, publication: Publication, earlier: list[int]) -> bool:
    if publication.state != PublicationState.IN_REVIEW.value:
        return False
    step = publication.review_step + 1
    roles = workflow.STEP_ROLES.get(publication.review_steps)
    if roles is None or step > len(roles):
        return False
    return (
        current.member.has(publication.office_id, roles[step - 1])
        and current.user.id != publication.author_id
        and current.user.id not in earlier
    )


@routes.get("/publications/{id}")
@requires(*STAFF_VIEW)
async def publication_page(request: web.Request) -> web.StreamResponse:
    """Metadata, checks, previews, reviews, versions, deliveries and the actions allowed."""
    current = _current(request)
    config = _config(request)
    async with request.config_dict[keys.DB].sessions() as session:
        publication = await _publication(request, session)
        media = await _media_of(session, publication.id)
        deliveries = await deliveries_of(session, publication.id)
        reviews = list(
            (
                await session.execute(
                    select(Review, User.name)
                    .join(User, User.id == Review.reviewer_id)
                    .where(Review.publication_id == publication.id)
                    .order_by(Review.id)
                )
            ).all()
        )
        comment_counts = (await counts_by_publication(session, [publication.id])).get(
            publication.id, {}
        )
        versions = list(
            (
                await session.execute(
                    select(
                        PublicationVersion.version,
                        PublicationVersion.edited_by_label,
                        PublicationVersion.edited_at,
                    )
                    .where(PublicationVersion.publication_id == publication.id)
                    .order_by(PublicationVersion.version)
                )
            ).all()
        )
    earlier = [
        r.reviewer_id
        for r, _ in reviews
        if r.version == publication.version and r.decision == "approve"
    ]
    step = publication.review_step + 1
    roles = workflow.STEP_ROLES.get(publication.review_steps, ())
    step_label = workflow.step_name(step, publication.review_steps) if step <= len(roles) else ""
    m = current.member
    office = publication.office_id
    state = publication.state
    actions = {
        "edit": state == "draft" and m.has(office, Role.EDITOR),
        "submit": state == "draft" and m.has(office, Role.EDITOR),
        "review": _can_review(current, publication, earlier),
        "schedule": (state in ("draft", "in_review") and m.has(office, Role.EDITOR, Role.APPROVER))
        or (state == "scheduled" and m.has(office, Role.APPROVER)),
        "withdraw": state in ("scheduled", "queued", "published") and m.has(office, Role.APPROVER),
        "correct": state in ("queued", "published") and m.has(office, Role.APPROVER),
    }
    return await render(
        request,
        "publication.html",
        p=publication,
        media=[(link, m_, media_url(config, m_)) for link, m_ in media],
        deliveries=deliveries,
        reviews=reviews,
        versions=versions,
        findings=await _findings(request, publication),
        previews=_available_targets_for(request, publication),
        actions=actions,
        step_label=step_label,
        publish_at_local=iso_to_local(publication.publish_at, config.timezone),
        quiet=(config.quiet_hours_start, config.quiet_hours_end),
        item_url=config.item_url(publication.index_number) if publication.index_number else "",
        comment_counts=dict(sorted(comment_counts.items())),
    )


def _available_targets_for(request: web.Request, publication: Publication) -> list[str]:
    registry = request.config_dict.get(keys.CHANNELS)
    registered = set(registry.targets()) if hasattr(registry, "targets") else {"website"}
    return [t for t in publication.channels if t in registered]


@routes.get(r"/publications/{id}/preview/{target:[a-z0-9_]+(:[a-z0-9_\-]+)?}/frame")
@requires(*STAFF_VIEW)
async def preview_frame(request: web.Request) -> web.StreamResponse:
    """One channel's rendition, as a self-contained page for a sandboxed frame."""
    config = _config(request)
    target = request.match_info["target"]
    registry: Any = request.config_dict.get(keys.CHANNELS)
    name, _, account = target.partition(":")
    if registry is None or name not in registry:
        raise web.HTTPNotFound(text="no such channel")
    async with request.config_dict[keys.DB].sessions() as session:
        publication = await _publication(request, session)
        snapshot = await snapshot_of(
            session, config, request.config_dict[keys.MEDIA], publication.id
        )
    channel = registry[name]
    try:
        rendition = channel.render(snapshot, account or "main")
        body = rendition.preview_html
        notes = list(getattr(rendition, "notes", ()))
    except Exception as exc:  # a rendering refusal is shown to staff, not a 500
        log.warning("preview failed", extra={"publication_id": publication.id, "channel": name})
        from html import escape

        body = f"<p>{escape(str(exc))}</p>"
        notes = []
    from html import escape as esc

    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{esc(target)}</title></head><body>{body}"
        + (f'<ul class="notes">{notes_html}</ul>' if notes_html else "")
        + "</body></html>"
    )
    return web.Response(text=html, content_type="text/html")


@routes.get("/publications/{id}/diff")
@requires(*STAFF_VIEW)
async def diff_page(request: web.Request) -> web.StreamResponse:
    """Field-by-field changes between two versions (default: the last two)."""
    async with request.config_dict[keys.DB].sessions() as session:
        publication = await _publication(request, session)
        rows = {
            v.version: v
            for v in (
                await session.execute(
                    select(PublicationVersion).where(
                        PublicationVersion.publication_id == publication.id
                    )
                )
            ).scalars()
        }
    new_v = query(request, "to", 20, str(publication.version))
    old_v = query(request, "from", 20, str(max(1, int(new_v) - 1) if digits(new_v) else 1))
    if not (digits(new_v) and digits(old_v)) or int(new_v) not in rows or int(old_v) not in rows:
        raise web.HTTPBadRequest(text="unknown version")
    diffs = diff_versions(rows[int(old_v)].snapshot, rows[int(new_v)].snapshot)
    return await render(
        request,
        "diff.html",
        p=publication,
        diffs=diffs,
        old=int(old_v),
        new=int(new_v),
        versions=sorted(rows),
    )


@routes.post("/publications/{id}/submit")
@requires(Role.EDITOR)
async def submit(request: web.Request) -> web.StreamResponse:
    """Send a draft to review."""
    current = _current(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
    async with db.transaction() as session:
        await workflow.submit(
            session, publication.id, current.member.actor(_origin(request)), member=current.member
        )
    await flash(request, "success", "已提交审核。", "Submitted for review.")
    raise _see_other(f"/console/publications/{publication.id}")


@routes.post("/publications/{id}/mask")
@requires(Role.EDITOR)
async def mask_personal_data(request: web.Request) -> web.StreamResponse:
    """Mask the personal data in a draft's title, summary and body (one click, audited)."""
    from publisher.checks.masking import mask_draft

    current = _current(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
    async with db.transaction() as session:
        result = await mask_draft(session, publication.id, current.member, _origin(request))
    if result.masked:
        await flash(
            request,
            "success",
            f"已对{result.masked}处个人信息脱敏，保存为第{result.version}版。",
            f"Masked {result.masked} piece(s) of personal data; saved as version {result.version}.",
        )
    else:
        await flash(request, "warning", "未发现需要脱敏的个人信息。", "No personal data to mask.")
    raise _see_other(f"/console/publications/{publication.id}")


_REVIEW_HAS_OVERRIDE = "checks_override" in inspect.signature(workflow.review).parameters


@routes.post("/publications/{id}/review")
@requires(Role.REVIEWER, Role.APPROVER)
async def review(request: web.Request) -> web.StreamResponse:
    """Approve or reject the current review step, with a comment."""
    current = _current(request)
    form = await _form(request)
    decision = _text(form, "decision", 16)
    if decision not in ("approve", "reject"):
        raise ValidationError("decision", "must be approve or reject")
    comment = _text(form, "comment", 2000)
    extra: dict[str, Any] = {}
    override = _text(form, "checks_override", 2000)
    if override and _REVIEW_HAS_OVERRIDE:
        extra["checks_override"] = override
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
    async with db.transaction() as session:
        result = await workflow.review(
            session,
            _config(request),
            publication.id,
            current.member,
            approve=decision == "approve",
            comment=comment,
            origin=_origin(request),
            **extra,
        )
        state = result.state
    if decision == "reject":
        await flash(request, "success", "已退回修改。", "Sent back to the author.")
    elif state in ("scheduled", "queued"):
        await flash(request, "success", "终审通过，已进入发布队列。", "Approved; delivery queued.")
    else:
        await flash(request, "success", "审核通过，进入下一步。", "Approved; on to the next step.")
    raise _see_other(f"/console/publications/{publication.id}")


@routes.post("/publications/{id}/schedule")
@requires(Role.EDITOR, Role.APPROVER)
async def schedule(request: web.Request) -> web.StreamResponse:
    """Set the publication time (office zone), the urgent and push flags."""
    current = _current(request)
    config = _config(request)
    form = await _form(request)
    fields = form_to_fields(
        {
            "publish_at": _text(form, "publish_at", 40),
            "urgent": form.get("urgent"),
            "push": form.get("push"),
        },
        [],
        config.timezone,
    )
    publish_at = publication_from_fields(
        {
            "title": "x",
            "category": "service",
            "issuing_body": "x",
            "body": "x",
            "publish_at": fields.get("publish_at"),
        },
        max_body_chars=10,
    ).publish_at
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
    async with db.transaction() as session:
        await workflow.schedule(
            session,
            publication.id,
            current.member,
            publish_at=publish_at,
            urgent=fields["urgent"],
            push=fields["push"],
            origin=_origin(request),
        )
    await flash(request, "success", "发布时间已更新。", "Schedule updated.")
    raise _see_other(f"/console/publications/{publication.id}")


@routes.post("/publications/{id}/withdraw")
@requires(Role.APPROVER)
async def withdraw(request: web.Request) -> web.StreamResponse:
    """Withdraw a publication from every channel it reached."""
    current = _current(request)
    form = await _form(request)
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        publication = await _publication(request, session)
    async with db.transaction() as session:
        await workflow.withdraw(
            session,
            publication.id,
            current.member.actor(_origin(request)),
            reason=_text(form, "reason", 2000),
            member=current.member,
        )
    await flash(
        request, "success", "已撤回，各渠道将删除。", "Withdrawn; channels will retract it."
    )
    back = _text(form, "next", 500)
    # From the delivery board: back to the same page of the board.
    raise _see_other(_safe_next(back) if back else f"/console/publications/{publication.id}")


# --- review queue, calendar, deliveries ---------------------------------------------------


async def _review_queue(
    session: AsyncSession, current: Current, config: CoreConfig
) -> list[tuple[str, Publication]]:
    rows = (
        await session.execute(
            select(Publication)
            .where(
                Publication.state == PublicationState.IN_REVIEW.value,
                Publication.office_id.in_(list(current.member.offices)),
            )
            .order_by(Publication.urgent.desc(), Publication.updated_at)
            .limit(500)
        )
    ).scalars()
    publications = list(rows)
    # What this member already approved at an earlier step of the same version: the same
    # person cannot decide two steps, so those items are not theirs to act on.
    mine = set(
        (
            await session.execute(
                select(Review.publication_id, Review.version).where(
                    Review.reviewer_id == current.user.id,
                    Review.decision == "approve",
                    Review.publication_id.in_([p.id for p in publications]),
                )
            )
        ).all()
    )
    result = []
    for publication in publications:
        earlier = [current.user.id] if (publication.id, publication.version) in mine else []
        if _can_review(current, publication, earlier):
            step = publication.review_step + 1
            result.append((workflow.step_name(step, publication.review_steps), publication))
    return result


@routes.get("/review")
@requires(Role.REVIEWER, Role.APPROVER)
async def review_queue(request: web.Request) -> web.StreamResponse:
    """What waits for this member's decision, by review step."""
    current = _current(request)
    async with request.config_dict[keys.DB].sessions() as session:
        items = await _review_queue(session, current, _config(request))
    steps: dict[str, list[Publication]] = {}
    for name, publication in items:
        steps.setdefault(name, []).append(publication)
    return await render(request, "review.html", steps=steps)


@routes.get("/calendar")
@requires(*STAFF_VIEW)
async def calendar_page(request: web.Request) -> web.StreamResponse:
    """A month of what goes out when, in the office's zone."""
    current = _current(request)
    config = _config(request)
    today = utcnow().astimezone(config.timezone).date()
    year, month = parse_month(query(request, "month", 100, ""), today)
    start_local = datetime(year, month, 1, tzinfo=config.timezone)
    end_local = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=config.timezone)
    start, end = start_local.astimezone(UTC), end_local.astimezone(UTC)
    when = func.coalesce(Publication.published_at, Publication.publish_at)
    async with request.config_dict[keys.DB].sessions() as session:
        rows = list(
            (
                await session.execute(
                    select(Publication)
                    .where(
                        Publication.office_id.in_(list(current.member.offices)),
                        Publication.state != PublicationState.DRAFT.value,
                        when >= start,
                        when < end,
                    )
                    .order_by(when)
                    .limit(2000)
                )
            ).scalars()
        )
    items = []
    for publication in rows:
        moment = publication.published_at or publication.publish_at
        assert moment is not None
        local = moment.astimezone(config.timezone)
        items.append((local.date(), (local.strftime("%H:%M"), publication)))
    prev_month = f"{year - (month == 1)}-{(month - 2) % 12 + 1:02d}"
    next_month = f"{year + (month == 12)}-{month % 12 + 1:02d}"
    return await render(
        request,
        "calendar.html",
        weeks=month_grid(year, month, items),
        year=year,
        month=month,
        prev_month=prev_month,
        next_month=next_month,
        quiet=(config.quiet_hours_start, config.quiet_hours_end),
        today=today,
    )


@routes.get("/deliveries")
@requires(*STAFF_VIEW)
async def deliveries_page(request: web.Request) -> web.StreamResponse:
    """Every publication x channel x account: state, attempts, errors, remote links."""
    current = _current(request)
    offices = list(current.member.offices)
    state = query(request, "state", 100, "")
    channel = query(request, "channel", 16)
    stmt = (
        select(Delivery, Publication)
        .join(Publication, Publication.id == Delivery.publication_id)
        .where(Publication.office_id.in_(offices))
    )
    if state in {s.value for s in DeliveryState}:
        stmt = stmt.where(Delivery.state == state)
    if channel:
        stmt = stmt.where(Delivery.channel == channel)
    page_text = query(request, "page", 10, "1")
    page = int(page_text) if digits(page_text) and 0 < int(page_text) < 100_000 else 1
    # Dead letters first, then newest; offset paging keeps that order across pages.
    stmt = (
        stmt.order_by((Delivery.state == "dead").desc(), Delivery.id.desc())
        .offset((page - 1) * BOARD_PAGE)
        .limit(BOARD_PAGE + 1)
    )
    async with request.config_dict[keys.DB].sessions() as session:
        rows = list((await session.execute(stmt)).all())
        alerts = list(
            (
                await session.execute(
                    select(Alert)
                    .outerjoin(Publication, Publication.id == Alert.publication_id)
                    .where(
                        Alert.acknowledged_at.is_(None),
                        or_(Alert.publication_id.is_(None), Publication.office_id.in_(offices)),
                    )
                    .order_by(Alert.id.desc())
                    .limit(100)
                )
            ).scalars()
        )
    more = len(rows) > BOARD_PAGE
    rows = rows[:BOARD_PAGE]
    can_act = current.any_role(Role.APPROVER)

    def page_url(number: int) -> str:
        shown_query = {"state": state, "channel": channel, "page": number}
        return "/console/deliveries?" + urlencode(shown_query)

    # The publication's actions (as on its own page) on its first row of this page.
    actions: dict[int, dict[str, bool]] = {}
    shown: list[tuple[Delivery, Publication, bool]] = []
    for delivery, publication in rows:
        first = publication.id not in actions
        if first:
            approver = current.member.has(publication.office_id, Role.APPROVER)
            actions[publication.id] = {
                "withdraw": approver and publication.state in ("scheduled", "queued", "published"),
                "correct": approver and publication.state in ("queued", "published"),
            }
        shown.append((delivery, publication, first))
    return await render(
        request,
        "deliveries.html",
        rows=shown,
        alerts=alerts,
        state=state,
        channel=channel,
        can_act=can_act,
        actions=actions,
        board_url=page_url(page),
        prev_url=page_url(page - 1) if page > 1 else "",
        next_url=page_url(page + 1) if more else "",
        page=page,
        states=[s.value for s in DeliveryState],
    )


@routes.post("/deliveries/{id}/retry")
@requires(Role.APPROVER)
async def retry_delivery(request: web.Request) -> web.StreamResponse:
    """Send a dead delivery back to the queue."""
    current = _current(request)
    delivery_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].transaction() as session:
        delivery = await session.get(Delivery, delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id}")
        publication = await session.get(Publication, delivery.publication_id)
        if publication is None or publication.office_id not in current.member.offices:
            raise NotFound(f"no delivery {delivery_id}")
        current.member.require(publication.office_id, Role.APPROVER)
        if not await queue.retry_dead(session, delivery_id):
            raise WorkflowError(f"delivery {delivery_id} is {delivery.state}, not dead")
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "delivery.retry",
            "delivery",
            delivery_id,
            office_id=publication.office_id,
            publication_id=publication.id,
        )
    await flash(request, "success", "已重新排队。", "Queued again.")
    raise _see_other("/console/deliveries")


@routes.post("/alerts/{id}/ack")
@requires(Role.APPROVER)
async def ack_alert(request: web.Request) -> web.StreamResponse:
    """Mark an alert as seen."""
    current = _current(request)
    alert_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].transaction() as session:
        alert = await session.get(Alert, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        if alert.publication_id is not None:
            publication = await session.get(Publication, alert.publication_id)
            if publication is None or publication.office_id not in current.member.offices:
                raise NotFound(f"no alert {alert_id}")
            current.member.require(publication.office_id, Role.APPROVER)
        if alert.acknowledged_at is None:
            alert.acknowledged_at = utcnow()
            alert.acknowledged_by = current.user.id
            audit.record(
                session, current.member.actor(_origin(request)), "alert.ack", "alert", alert_id
            )
    await flash(request, "success", "告警已确认。", "Alert acknowledged.")
    raise _see_other("/console/deliveries")


# --- administration -----------------------------------------------------------------------


@routes.get("/audit")
@requires(Role.ADMIN)
async def audit_page(request: web.Request) -> web.StreamResponse:
    """The audit log, searchable by action, actor or object, newest first."""
    current = _current(request)
    q = query(request, "q", 100)
    before = query(request, "before", 100, "")
    offices = current.offices_with(Role.ADMIN)
    stmt = select(AuditEntry).where(
        or_(AuditEntry.office_id.is_(None), AuditEntry.office_id.in_(offices))
    )
    if q:
        stmt = stmt.where(
            or_(
                AuditEntry.action.contains(q, autoescape=True),
                AuditEntry.actor.contains(q, autoescape=True),
                AuditEntry.object_id == q,
                AuditEntry.object_type == q,
            )
        )
    if digits(before):
        stmt = stmt.where(AuditEntry.id < int(before))
    async with request.config_dict[keys.DB].sessions() as session:
        rows = list(
            (await session.execute(stmt.order_by(AuditEntry.id.desc()).limit(PAGE + 1))).scalars()
        )
    next_url = ""
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        next_url = "?" + urlencode({"q": q, "before": rows[-1].id})
    return await render(request, "audit.html", rows=rows, q=q, next_url=next_url)


async def _users_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    current = _current(request)
    offices_ids = current.offices_with(Role.ADMIN)
    async with request.config_dict[keys.DB].sessions() as session:
        offices = list(
            (await session.execute(select(Office).where(Office.id.in_(offices_ids)))).scalars()
        )
        users = list(
            (
                await session.execute(
                    select(User)
                    .where(
                        or_(
                            User.id.in_(
                                select(Membership.user_id).where(
                                    Membership.office_id.in_(offices_ids)
                                )
                            ),
                            ~User.id.in_(select(Membership.user_id)),
                        )
                    )
                    .order_by(User.name)
                )
            ).scalars()
        )
    names = {o.id: o.key for o in offices}
    return await render(
        request,
        "users.html",
        status=status,
        users=users,
        offices=offices,
        office_names=names,
        roles=[r.value for r in Role],
        error=error,
        now=utcnow(),
    )


@routes.get("/users")
@requires(Role.ADMIN)
async def users_page(request: web.Request) -> web.StreamResponse:
    """Staff accounts and their roles (admin only)."""
    return await _users_page(request)


@routes.post("/users")
@requires(Role.ADMIN)
async def add_user(request: web.Request) -> web.StreamResponse:
    """Create a staff account with roles in one office."""
    current = _current(request)
    form = await _form(request)
    roles = []
    for value in _list(form, "roles"):
        try:
            roles.append(Role(value))
        except ValueError:
            raise ValidationError("roles", f"unknown role {value!r}") from None
    if not roles:
        return await _users_page(request, "roles: choose at least one role", 400)
    office_key = _text(form, "office", 64)
    async with request.config_dict[keys.DB].sessions() as session:
        office = (
            await session.execute(select(Office).where(Office.key == office_key))
        ).scalar_one_or_none()
    if office is None or not current.member.has(office.id, Role.ADMIN):
        return await _users_page(request, "office: not one of your offices", 400)
    password = form.get("password")
    try:
        async with request.config_dict[keys.DB].transaction() as session:
            await staff.add_user(
                session,
                _text(form, "name", 64),
                password if isinstance(password, str) else "",
                roles,
                [office.key],
                actor=current.member.actor(_origin(request)),
                display_name=_text(form, "display_name", 100),
            )
    except ValidationError as exc:
        return await _users_page(request, str(exc), 400)
    await flash(request, "success", "账号已创建。", "Account created.")
    raise _see_other("/console/users")


async def _admin_user(request: web.Request, session: AsyncSession) -> User:
    current = _current(request)
    user_id = _int(request.match_info["id"])
    user = await session.get(User, user_id)
    admin_offices = set(current.offices_with(Role.ADMIN))
    if user is None or (
        user.memberships and not {m.office_id for m in user.memberships} & admin_offices
    ):
        raise NotFound(f"no user {user_id}")
    return user


@routes.post("/users/{id}/active")
@requires(Role.ADMIN)
async def toggle_user(request: web.Request) -> web.StreamResponse:
    """Deactivate or reactivate an account (its sessions end at once)."""
    current = _current(request)
    async with request.config_dict[keys.DB].transaction() as session:
        user = await _admin_user(request, session)
        if user.id == current.user.id:
            raise ValidationError("user", "you cannot deactivate yourself")
        user.is_active = not user.is_active
        if not user.is_active:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "user.activate" if user.is_active else "user.deactivate",
            "user",
            user.id,
        )
    await flash(request, "success", "账号状态已更新。", "Account updated.")
    raise _see_other("/console/users")


@routes.post("/users/{id}/unlock")
@requires(Role.ADMIN)
async def unlock_user(request: web.Request) -> web.StreamResponse:
    """Lift a lock-out after repeated failed sign-ins."""
    current = _current(request)
    async with request.config_dict[keys.DB].transaction() as session:
        user = await _admin_user(request, session)
        user.locked_until = None
        user.failed_logins = 0
        audit.record(
            session, current.member.actor(_origin(request)), "user.unlock", "user", user.id
        )
    await flash(request, "success", "账号已解锁。", "Account unlocked.")
    raise _see_other("/console/users")


# --- personal access tokens ---------------------------------------------------------------


async def _tokens_page(
    request: web.Request, shown: str = "", error: str = "", status: int = 200
) -> web.Response:
    current = _current(request)
    async with request.config_dict[keys.DB].sessions() as session:
        tokens = list(
            (
                await session.execute(
                    select(ApiToken)
                    .where(ApiToken.user_id == current.user.id)
                    .order_by(ApiToken.id.desc())
                )
            ).scalars()
        )
    return await render(
        request,
        "tokens.html",
        status=status,
        tokens=tokens,
        shown=shown,
        scopes=API_SCOPES,
        error=error,
    )


@routes.get("/tokens")
@requires()
async def tokens_page(request: web.Request) -> web.StreamResponse:
    """One's own API tokens."""
    return await _tokens_page(request)


@routes.post("/tokens")
@requires()
async def create_token(request: web.Request) -> web.StreamResponse:
    """Create a token; its value is shown once and only its hash is kept."""
    current = _current(request)
    form = await _form(request)
    name = _text(form, "name", 100)
    scopes = _list(form, "scopes")
    if not name:
        return await _tokens_page(request, error="name: is required", status=400)
    if not scopes or any(s not in API_SCOPES for s in scopes):
        return await _tokens_page(request, error="scopes: choose known scopes", status=400)
    days = _text(form, "days", 4) or "90"
    if not digits(days) or not 1 <= int(days) <= 366:
        return await _tokens_page(request, error="days: 1 to 366", status=400)
    secret = "gct_" + new_token(32)
    async with request.config_dict[keys.DB].transaction() as session:
        token = ApiToken(
            user_id=current.user.id,
            name=name,
            prefix=secret[:12],
            token_hash=digest(secret),
            scopes=sorted(set(scopes)),
            created_at=utcnow(),
            expires_at=utcnow() + timedelta(days=int(days)),
        )
        session.add(token)
        await session.flush()
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "token.create",
            "api_token",
            token.id,
            scopes=token.scopes,
        )
    return await _tokens_page(request, shown=secret)


@routes.post("/tokens/{id}/revoke")
@requires()
async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke one of one's own tokens."""
    current = _current(request)
    token_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].transaction() as session:
        token = await session.get(ApiToken, token_id)
        if token is None or token.user_id != current.user.id:
            raise NotFound(f"no token {token_id}")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            audit.record(
                session,
                current.member.actor(_origin(request)),
                "token.revoke",
                "api_token",
                token.id,
            )
    await flash(request, "success", "令牌已吊销。", "Token revoked.")
    raise _see_other("/console/tokens")


__all__ = ["routes", "static_url", "translator"]
