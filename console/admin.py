"""Admin pages over tables other packages own: the bot's keyword rules, the working-day
calendar of the cases service, and the website's column freshness."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select

from bot import keywords
from bot.cases.calendar import parse_calendar_lines
from bot.cases.models import CalendarDay
from bot.models import KeywordRule
from console.pages import _current, _int, _origin, _text, flash, render
from console.security import digits, query, requires
from govcast import keys
from publisher import audit
from publisher.errors import NotFound
from publisher.models import Role
from publisher.orm import utcnow

routes = web.RouteTableDef()


# --- keyword rules ------------------------------------------------------------------------


async def _keywords_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    async with request.config_dict[keys.DB].sessions() as session:
        rules = list(
            (
                await session.execute(
                    select(KeywordRule).order_by(KeywordRule.priority, KeywordRule.id).limit(1000)
                )
            ).scalars()
        )
    settings = request.config_dict[keys.SETTINGS]
    return await render(
        request,
        "keywords.html",
        status=status,
        rules=rules,
        error=error,
        accounts=sorted(settings.wechat.accounts),
        kinds=keywords.MATCH_KINDS,
    )


@routes.get("/admin/keywords")
@requires(Role.ADMIN)
async def keywords_page(request: web.Request) -> web.StreamResponse:
    """The bot's keyword auto-replies."""
    return await _keywords_page(request)


@routes.post("/admin/keywords")
@requires(Role.ADMIN)
async def add_keyword(request: web.Request) -> web.StreamResponse:
    """Add a text auto-reply rule (validated by the bot's own rules)."""
    current = _current(request)
    form: dict[str, Any] = dict(await request.post())
    priority = _text(form, "priority", 6) or "100"
    if not digits(priority) or int(priority) > 100000:
        return await _keywords_page(request, "priority: 0-100000", 400)
    account = _text(form, "account", 64)
    if account and account not in request.config_dict[keys.SETTINGS].wechat.accounts:
        return await _keywords_page(request, "account: not configured", 400)
    try:
        async with request.config_dict[keys.DB].transaction() as session:
            rule = await keywords.add_rule(
                session,
                match=_text(form, "match", 12),
                pattern=_text(form, "pattern", 500),
                reply_text=_text(form, "reply_text", 4000) or None,
                priority=int(priority),
                account=account,
                created_by=current.user.name,
                note=_text(form, "note", 200),
            )
            audit.record(
                session,
                current.member.actor(_origin(request)),
                "keyword.add",
                "keyword_rule",
                rule.id,
                pattern=rule.pattern,
            )
    except keywords.RuleError as exc:
        return await _keywords_page(request, str(exc), 400)
    await flash(request, "success", "规则已添加。", "Rule added.")
    raise web.HTTPSeeOther("/console/admin/keywords")


@routes.post("/admin/keywords/{id}/toggle")
@requires(Role.ADMIN)
async def toggle_keyword(request: web.Request) -> web.StreamResponse:
    """Enable or disable a rule."""
    current = _current(request)
    rule_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].transaction() as session:
        rule = await session.get(KeywordRule, rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id}")
        rule.enabled = not rule.enabled
        rule.updated_at = utcnow()
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "keyword.enable" if rule.enabled else "keyword.disable",
            "keyword_rule",
            rule.id,
        )
    await flash(request, "success", "规则已更新。", "Rule updated.")
    raise web.HTTPSeeOther("/console/admin/keywords")


@routes.post("/admin/keywords/{id}/delete")
@requires(Role.ADMIN)
async def delete_keyword(request: web.Request) -> web.StreamResponse:
    """Delete a rule."""
    current = _current(request)
    rule_id = _int(request.match_info["id"])
    async with request.config_dict[keys.DB].transaction() as session:
        rule = await session.get(KeywordRule, rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id}")
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "keyword.delete",
            "keyword_rule",
            rule.id,
            pattern=rule.pattern,
        )
        await session.delete(rule)
    await flash(request, "success", "规则已删除。", "Rule deleted.")
    raise web.HTTPSeeOther("/console/admin/keywords")


# --- working-day calendar -----------------------------------------------------------------


def _year(request: web.Request) -> int:
    raw = query(request, "year", 100, "")
    if digits(raw) and 2000 <= int(raw) <= 2100:
        return int(raw)
    return utcnow().year


async def _holidays_page(
    request: web.Request, year: int, error: str = "", text: str = "", status: int = 200
) -> web.Response:
    async with request.config_dict[keys.DB].sessions() as session:
        days = list(
            (
                await session.execute(
                    select(CalendarDay)
                    .where(
                        CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)
                    )
                    .order_by(CalendarDay.day)
                )
            ).scalars()
        )
    return await render(
        request, "holidays.html", status=status, days=days, year=year, error=error, text=text
    )


@routes.get("/admin/holidays")
@requires(Role.ADMIN)
async def holidays_page(request: web.Request) -> web.StreamResponse:
    """Official holidays and worked weekend days of one year."""
    return await _holidays_page(request, _year(request))


@routes.post("/admin/holidays")
@requires(Role.ADMIN)
async def edit_holidays(request: web.Request) -> web.StreamResponse:
    """Apply ``DATE,holiday|workday|normal[,NAME]`` lines, all or nothing."""
    current = _current(request)
    form: dict[str, Any] = dict(await request.post())
    text = _text(form, "lines", 20000)
    year = _year(request)
    try:
        rows = parse_calendar_lines(text)
    except ValueError as exc:
        return await _holidays_page(request, year, str(exc), text, 400)
    if not rows:
        return await _holidays_page(request, year, "lines: nothing to apply", text, 400)
    async with request.config_dict[keys.DB].transaction() as session:
        for day, kind, name in rows:
            await session.execute(delete(CalendarDay).where(CalendarDay.day == day))
            if kind != "normal":
                session.add(CalendarDay(day=day, kind=kind, name=name))
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "calendar.edit",
            "calendar",
            rows[0][0].year,
            days=[f"{d.isoformat()} {k}" for d, k, _ in rows][:200],
        )
    await flash(request, "success", f"已更新 {len(rows)} 天。", f"{len(rows)} days updated.")
    raise web.HTTPSeeOther(f"/console/admin/holidays?year={rows[0][0].year}")


# --- columns ------------------------------------------------------------------------------


@routes.get("/admin/columns")
@requires(Role.ADMIN)
async def columns_page(request: web.Request) -> web.StreamResponse:
    """Each website column's last update; stale or empty ones first (inspection risk)."""
    from website.columns import column_status

    statuses = await column_status(request.config_dict[keys.DB])
    statuses.sort(key=lambda s: (not (s.overdue or s.empty), s.key))
    return await render(request, "columns.html", statuses=statuses)
