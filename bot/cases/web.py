"""HTTP routes of the bot.cases package: the public case form, the citizen's case page,
published questions and answers, solicitation opinions and adoption reports; and the
periodic ticks (reply delivery, deadline reminders)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from bot.cases import captcha, deadlines, delivery, service, solicitations
from bot.cases.models import (
    AdoptionReport,
    Case,
    CaseKind,
    CaseState,
    Opinion,
    UsedChallenge,
)
from govcast import keys
from govcast.scheduler import Tick
from publisher.errors import GovcastError, NotFound, ValidationError, WorkflowError
from publisher.models import Publication
from publisher.orm import utcnow
from publisher.outcomes import ConfigurationError

log = logging.getLogger("govcast.bot.cases")

TEMPLATES = str(Path(__file__).resolve().parent / "templates")
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("cases_clock", Callable[[], datetime])  # type: ignore[arg-type]
KEY = web.AppKey("cases_secret_key", bytes)
MAX_FORM_BYTES = 64 * 1024
PAGE_SIZE = 20
USED = "该验证问题已使用，请回答新的问题。This check question was already used; answer the new one."


def setup(app: web.Application) -> None:
    """Add this package's routes and resources to the application."""
    settings = app[keys.SETTINGS]
    secret = settings.cases.secret_key.reveal()
    # Without a configured key each process signs its own challenges (fine for one process).
    app[KEY] = secret.encode() if secret else secrets.token_bytes(32)
    if CLOCK not in app:
        app[CLOCK] = utcnow
    app.router.add_get("/cases/", public_list)
    app.router.add_get("/cases/new", new_form)
    app.router.add_post("/cases/new", new_submit)
    app.router.add_get("/cases/track", track)
    app.router.add_post("/cases/track", track)
    app.router.add_post("/cases/rate", rate)
    app.router.add_get(r"/cases/{number:GC[0-9\-]{13,24}}", public_item)
    app.router.add_get(r"/solicitations/{id:\d{1,12}}/opinion", opinion_form)
    app.router.add_post(r"/solicitations/{id:\d{1,12}}/opinion", opinion_submit)
    app.router.add_get(r"/solicitations/{id:\d{1,12}}/report", solicitation_report)


def _page(
    request: web.Request, template: str, context: dict[str, Any], title: str, status: int = 200
) -> web.Response:
    from website.render import page

    return page(request, template, context, title=title, status=status, templates=(TEMPLATES,))


def _rules(request: web.Request) -> service.CaseRules:
    return service.CaseRules.from_settings(request.app[keys.SETTINGS])


def _origin_hash(request: web.Request) -> str:
    ip = request.remote or ""
    return hashlib.sha256(request.app[KEY] + ip.encode()).hexdigest()


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_FORM_BYTES, actual_size=request.content_length
        )
    try:
        raw = await request.post()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="malformed form") from None
    return {k: v if isinstance(v, str) else "" for k, v in raw.items()}


KINDS = [(k.value, f"{zh} / {en}") for k, (zh, en) in service.KIND_NAMES.items()]


def _form_context(
    request: web.Request,
    form: dict[str, str],
    errors: list[str],
    action: str,
    opinion: bool = False,
) -> dict[str, Any]:
    question, challenge = captcha.make_challenge(request.app[KEY], request.app[CLOCK]())
    defaults = {
        "kind": "consultation",
        "title": "",
        "text": "",
        "name": "",
        "phone": "",
        "consent": "",
    }
    return {
        "form": {**defaults, **form},
        "errors": errors,
        "kinds": KINDS,
        "question": question,
        "challenge": challenge,
        "action": action,
        "opinion": opinion,
        "days": request.app[keys.SETTINGS].cases.reply_working_days,
    }


MAYOR_READING = "mayor_reading"


async def _feedback_item(request: web.Request, raw: str) -> int | None:
    """The Mayor's E-Reading item this feedback belongs to (``?item=ID``), if valid."""
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPBadRequest(text="item must be a publication id")
    async with request.app[keys.DB].sessions() as session:
        pub = await session.get(Publication, int(raw))
    if (
        pub is None
        or pub.kind != "column_item"
        or pub.column_key != MAYOR_READING
        or pub.state != "published"
    ):
        raise web.HTTPNotFound(text="no such Mayor's E-Reading item")
    return pub.id


async def new_form(request: web.Request) -> web.Response:
    """The public form to leave a message (``?item=ID``: feedback on an E-Reading item)."""
    item = await _feedback_item(request, request.query.get("item", ""))
    action = f"/cases/new?item={item}" if item else "/cases/new"
    return _page(
        request,
        "cases_new.html",
        _form_context(request, {}, [], action),
        "我要留言 / Leave a message",
    )


async def _consume(request: web.Request, token: str, now: datetime) -> bool:
    """Mark a solved challenge as used; False if it was used before (a replay)."""
    expires = datetime.fromtimestamp(captcha.expiry_of(token), tz=now.tzinfo)
    try:
        async with request.app[keys.DB].transaction() as session:
            await session.execute(delete(UsedChallenge).where(UsedChallenge.expires_at < now))
            session.add(UsedChallenge(nonce=captcha.nonce_of(token), expires_at=expires))
    except IntegrityError:
        return False
    return True


async def _too_many(
    request: web.Request, model: type[Case] | type[Opinion], origin: str, now: datetime
) -> bool:
    limit = request.app[keys.SETTINGS].cases.web_per_hour
    column = Case.received_at if model is Case else Opinion.created_at
    async with request.app[keys.DB].sessions() as session:
        count = (
            await session.execute(
                select(func.count())
                .select_from(model)
                .where(model.origin_hash == origin, column > now - timedelta(hours=1))
            )
        ).scalar_one()
    return bool(count >= limit)


async def new_submit(request: web.Request) -> web.Response:
    """Create a case from the form (CAPTCHA and per-IP rate limit first)."""
    now = request.app[CLOCK]()
    item = await _feedback_item(request, request.query.get("item", ""))
    form = await _form(request)
    action = f"/cases/new?item={item}" if item else "/cases/new"
    errors: list[str] = []
    if not captcha.verify(
        request.app[KEY], form.get("challenge", ""), form.get("captcha", ""), now
    ):
        errors.append("验证问题回答不正确或已过期。The check answer is wrong or expired.")
    if form.get("kind") not in {k.value for k in CaseKind}:
        errors.append("请选择类型。Choose a type.")
    text = form.get("text", "").strip()
    if not 5 <= len(text) <= service.MAX_TEXT:
        errors.append(
            f"内容需 5-{service.MAX_TEXT} 字。The message needs 5-{service.MAX_TEXT} characters."
        )
    if (
        len(form.get("title", "")) > 200
        or len(form.get("name", "")) > 100
        or len(form.get("phone", "")) > 40
    ):
        errors.append("标题、姓名或电话过长。Subject, name or phone too long.")
    if errors:
        return _page(
            request,
            "cases_new.html",
            _form_context(request, form, errors, action),
            "我要留言 / Leave a message",
            status=400,
        )
    origin = _origin_hash(request)
    if await _too_many(request, Case, origin, now):
        raise web.HTTPTooManyRequests(
            text="留言过于频繁，请稍后再试。Too many messages; try later."
        )
    if not await _consume(request, form["challenge"], now):
        return _page(
            request,
            "cases_new.html",
            _form_context(request, form, [USED], action),
            "我要留言 / Leave a message",
            status=400,
        )
    rules = _rules(request)
    db = request.app[keys.DB]
    async with db.transaction() as session:
        calendar = await service.load_calendar(session)
        office_id = await service.office_id_by_key(session, request.app[keys.SETTINGS].office.key)
        case, secret = await service.receive(
            session,
            rules,
            calendar,
            office_id,
            service.NewCase(
                kind=form["kind"],
                channel="web",
                text=text,
                title=form.get("title", ""),
                contact_name=form.get("name", ""),
                contact_phone=form.get("phone", ""),
                consent_publish=form.get("consent") == "1",
                origin_hash=origin,
                publication_id=item,
            ),
            now=now,
        )
        number, due = case.number, service.due_date(case, rules.zone).isoformat()
    return _page(
        request,
        "cases_done.html",
        {"number": number, "secret": secret, "due": due},
        "留言已收到 / Message received",
    )


async def track(request: web.Request) -> web.Response:
    """The citizen's own case page: opened with the case number and its secret."""
    title = "查询留言 / Track a case"
    if request.method == "POST":
        form = await _form(request)
    else:
        form = {k: v for k, v in request.query.items()}
    number, secret = form.get("number", "")[:40], form.get("secret", "")[:100]
    if not number or not secret:
        return _page(request, "cases_track.html", {"case": None, "error": ""}, title)
    rules = _rules(request)
    async with request.app[keys.DB].sessions() as session:
        case = await service.open_with_secret(session, number, secret)
    if case is None:
        return _page(
            request,
            "cases_track.html",
            {"case": None, "error": "编号或查询密码不正确。Number or secret is wrong."},
            title,
            status=404,
        )
    zh, en = service.STATE_NAMES[CaseState(case.state)]
    due = (
        service.due_date(case, rules.zone).isoformat() if case.state in service.OPEN_STATES else ""
    )
    return _page(
        request,
        "cases_track.html",
        {
            "case": case,
            "state": f"{zh} / {en}",
            "due": due,
            "secret": secret,
            "error": "",
            "can_rate": case.state == CaseState.REPLIED.value,
        },
        title,
    )


async def rate(request: web.Request) -> web.Response:
    """The citizen rates the reply (1-5) from the case page."""
    form = await _form(request)
    try:
        rating = int(form.get("rating", "")[:2])
    except ValueError:
        raise web.HTTPBadRequest(text="rating must be 1-5") from None
    async with request.app[keys.DB].transaction() as session:
        case = await service.open_with_secret(
            session, form.get("number", "")[:40], form.get("secret", "")[:100]
        )
        if case is None:
            raise web.HTTPNotFound(text="编号或查询密码不正确。Number or secret is wrong.")
        try:
            await service.rate(session, case, rating, now=request.app[CLOCK]())
        except (ValidationError, WorkflowError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    return _page(
        request,
        "cases_track.html",
        {"case": None, "error": "感谢您的评价！Thank you for rating."},
        "评价 / Rated",
    )


async def public_list(request: web.Request) -> web.Response:
    """Published questions and answers (with consent, masked, confirmed by staff)."""
    try:
        page = max(1, min(int(request.query.get("page", "1")), 10000))
    except ValueError:
        raise web.HTTPBadRequest(text="page must be a number") from None
    async with request.app[keys.DB].sessions() as session:
        rows = list(
            (
                await session.execute(
                    select(Case)
                    .where(Case.published_at.is_not(None), Case.consent_publish.is_(True))
                    .order_by(Case.published_at.desc(), Case.id.desc())
                    .limit(PAGE_SIZE + 1)
                    .offset((page - 1) * PAGE_SIZE)
                )
            ).scalars()
        )
    return _page(
        request,
        "cases_list.html",
        {
            "cases": rows[:PAGE_SIZE],
            "more": len(rows) > PAGE_SIZE,
            "page": page,
        },
        "公开答复 / Published answers",
    )


async def public_item(request: web.Request) -> web.Response:
    """One published question and answer; unpublished cases do not exist here."""
    async with request.app[keys.DB].sessions() as session:
        case = await service.case_by_number(session, request.match_info["number"])
    if case is None or case.published_at is None or not case.consent_publish:
        raise web.HTTPNotFound()
    return _page(request, "cases_item.html", {"case": case}, f"留言 {case.number}")


async def opinion_form(request: web.Request) -> web.Response:
    """The form for an opinion on an open solicitation."""
    pub_id = int(request.match_info["id"])
    async with request.app[keys.DB].sessions() as session:
        try:
            pub = await solicitations.open_solicitation(session, pub_id, request.app[CLOCK]())
        except NotFound:
            raise web.HTTPNotFound() from None
        except WorkflowError as exc:
            raise web.HTTPConflict(text=str(exc)) from None
    ctx = _form_context(request, {}, [], f"/solicitations/{pub_id}/opinion", opinion=True)
    return _page(request, "cases_new.html", ctx, f"意见征集 / Opinion: {pub.title}")


async def opinion_submit(request: web.Request) -> web.Response:
    """Record an opinion on an open solicitation."""
    pub_id = int(request.match_info["id"])
    now = request.app[CLOCK]()
    form = await _form(request)
    action = f"/solicitations/{pub_id}/opinion"
    if not captcha.verify(
        request.app[KEY], form.get("challenge", ""), form.get("captcha", ""), now
    ):
        ctx = _form_context(
            request,
            form,
            ["验证问题回答不正确或已过期。The check answer is wrong."],
            action,
            opinion=True,
        )
        return _page(request, "cases_new.html", ctx, "意见征集 / Opinion", status=400)
    origin = _origin_hash(request)
    if await _too_many(request, Opinion, origin, now):
        raise web.HTTPTooManyRequests(text="提交过于频繁，请稍后再试。Too many; try later.")
    if not await _consume(request, form["challenge"], now):
        ctx = _form_context(request, form, [USED], action, opinion=True)
        return _page(request, "cases_new.html", ctx, "意见征集 / Opinion", status=400)
    try:
        async with request.app[keys.DB].transaction() as session:
            await solicitations.add_opinion(
                session,
                pub_id,
                form.get("text", ""),
                "web",
                contact_name=form.get("name", ""),
                origin_hash=origin,
                now=now,
            )
    except NotFound:
        raise web.HTTPNotFound() from None
    except (ValidationError, WorkflowError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return _page(
        request,
        "cases_track.html",
        {"case": None, "error": "感谢您的意见！Thank you for your opinion."},
        "意见已收到 / Opinion received",
    )


async def solicitation_report(request: web.Request) -> web.Response:
    """A solicitation's window, opinion count and adoption report."""
    pub_id = int(request.match_info["id"])
    zone = request.app[keys.SETTINGS].office.zone
    async with request.app[keys.DB].sessions() as session:
        pub = await session.get(Publication, pub_id)
        if pub is None or pub.kind != "solicitation" or pub.state != "published":
            raise web.HTTPNotFound()
        report = await session.get(AdoptionReport, pub_id)
        count = await solicitations.opinion_count(session, pub_id)

    def day(value: datetime | None) -> str:
        return value.astimezone(zone).date().isoformat() if value else ""

    return _page(
        request,
        "solicitation_report.html",
        {
            "report": report,
            "count": count,
            "opens": day(pub.solicitation_opens_at),
            "closes": day(pub.solicitation_closes_at),
        },
        f"{pub.title}",
    )


# --- ticks ---------------------------------------------------------------------------------


def api_lookup(app: web.Application) -> delivery.ApiLookup:
    """(channel, account) -> the channel's API for that account."""

    def lookup(channel: str, account: str) -> Any:
        registry: Any = app[keys.CHANNELS]
        try:
            adapter = registry[channel]
        except (KeyError, TypeError):
            raise ConfigurationError(f"channel {channel!r} is not configured") from None
        api = getattr(adapter, "api", None)
        if api is None:
            raise ConfigurationError(f"channel {channel!r} cannot send messages to citizens")
        return api(account)

    return lookup


def ticks(app: web.Application) -> list[Tick]:
    """Reply delivery and deadline reminders."""
    settings = app[keys.SETTINGS]
    options = delivery.DeliveryOptions(
        base_url=settings.website.base_url,
        wechat_template_id=settings.cases.wechat_template_id,
        lease_seconds=settings.queue.lease_seconds,
    )
    rules = service.CaseRules.from_settings(settings)
    clock = app.get(CLOCK, utcnow)

    async def send_messages() -> int:
        return await delivery.deliver_due(app[keys.DB], api_lookup(app), options, now=clock())

    async def remind() -> int:
        async with app[keys.DB].transaction() as session:
            calendar = await service.load_calendar(session)
            return await deadlines.remind(session, rules, calendar, now=clock())

    answerers: list[Any] = []

    def weibo_answers() -> Any:
        # One per application: its rule cache is the WeChat bot's RuleCache, kept warm.
        if not answerers:
            from bot.comments.answers import Answerer
            from bot.keywords import RuleCache

            answerers.append(
                Answerer(
                    app[keys.DB],
                    RuleCache(app[keys.DB], settings.bot.keyword_cache_seconds),
                    base_url=settings.website.base_url,
                    auto_rules=settings.comments.auto_answer_rules,
                    search_automatic=settings.comments.weibo_search_answers,
                    language=settings.bot.language,
                )
            )
        return answerers[0]

    async def poll_weibo() -> int:
        from bot.cases import weibo

        total = 0
        for account, account_settings in settings.weibo.accounts.items():
            office = account_settings.office or settings.office.key
            total += await weibo.poll_account(
                app[keys.DB],
                rules,
                api_lookup(app),
                account,
                office,
                now=clock(),
                answers=weibo_answers(),
            )
        return total

    seconds = settings.scheduler.tick_seconds
    return [
        Tick("cases_send_messages", seconds, send_messages),
        Tick("cases_deadline_reminders", max(60.0, seconds), remind),
        Tick("cases_weibo_comments", settings.cases.weibo_poll_seconds, poll_weibo),
    ]


__all__ = ["CLOCK", "GovcastError", "setup", "ticks"]
