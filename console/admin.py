"""Admin pages: staff accounts' roles and password resets, the bot's keyword rules and
WeChat custom menu, the working-day calendar of the cases service, and the website's
column freshness."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select

from bot import keywords
from bot.cases.calendar import parse_calendar_lines
from bot.cases.models import CalendarDay
from bot.models import KeywordRule
from console.models import ConsoleSession, PasswordReset
from console.pages import (
    _admin_user,
    _current,
    _form,
    _int,
    _list,
    _origin,
    _text,
    _users_page,
    flash,
    render,
    translator,
)
from console.security import digits, query, requires
from govcast import keys
from publisher import audit, staff
from publisher.errors import NotFound, ValidationError
from publisher.models import Membership, Office, Role
from publisher.orm import utcnow

routes = web.RouteTableDef()
# Generated temporary passwords: no look-alikes (0/O, 1/l/I), so they can be read out.
TEMP_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
TEMP_LENGTH = 14


# --- users: roles and password resets -----------------------------------------------------


def temporary_password() -> str:
    """A random password for an admin reset, shown once."""
    return "".join(secrets.choice(TEMP_ALPHABET) for _ in range(TEMP_LENGTH))


@routes.post("/users/{id}/roles")
@requires(Role.ADMIN)
async def set_user_roles(request: web.Request) -> web.StreamResponse:
    """Replace an account's roles in one of the admin's offices (takes effect at once)."""
    current = _current(request)
    form = await _form(request)
    roles: set[Role] = set()
    for value in _list(form, "roles"):
        try:
            roles.add(Role(value))
        except ValueError:
            raise ValidationError("roles", f"unknown role {value!r}") from None
    office_key = _text(form, "office", 64)
    async with request.config_dict[keys.DB].transaction() as session:
        user = await _admin_user(request, session)
        office = (
            await session.execute(select(Office).where(Office.key == office_key))
        ).scalar_one_or_none()
        if office is None or not current.member.has(office.id, Role.ADMIN):
            error = "office: not one of your offices"
        elif not roles and not any(m.office_id != office.id for m in user.memberships):
            error = "roles: choose at least one role (deactivate the account to end its access)"
        elif (
            user.id == current.user.id
            and Role.ADMIN in user.roles_in(office.id)
            and Role.ADMIN not in roles
        ):
            error = "roles: you cannot take your own admin role away"
        else:
            error = ""
        if not error:
            assert office is not None
            before = sorted(r.value for r in user.roles_in(office.id))
            wanted = {role.value for role in roles}
            kept = [m for m in user.memberships if m.office_id != office.id or m.role in wanted]
            held = {m.role for m in kept if m.office_id == office.id}
            user.memberships = kept + [
                Membership(office_id=office.id, role=value) for value in sorted(wanted - held)
            ]
            audit.record(
                session,
                current.member.actor(_origin(request)),
                "user.roles",
                "user",
                user.id,
                office=office.key,
                before=before,
                after=sorted(r.value for r in roles),
            )
    if error:
        return await _users_page(request, error, 400)
    await flash(request, "success", "角色已更新。", "Roles updated.")
    raise web.HTTPSeeOther("/console/users")


@routes.post("/users/{id}/password")
@requires(Role.ADMIN)
async def reset_user_password(request: web.Request) -> web.StreamResponse:
    """Set a temporary password (typed or generated, shown once); the holder's sessions
    end and they must choose their own at the next sign-in."""
    current = _current(request)
    form = await _form(request)
    typed = form.get("password") or ""
    if not isinstance(typed, str):
        raise ValidationError("password", "must be text")
    generated = not typed
    password = temporary_password() if generated else typed
    try:
        staff.check_password_strength(password)
    except ValidationError as exc:
        return await _users_page(request, str(exc), 400)
    if _int(request.match_info["id"]) == current.user.id:
        return await _users_page(request, "password: change your own on the password page", 400)
    now = utcnow()
    async with request.config_dict[keys.DB].transaction() as session:
        user = await _admin_user(request, session)
        user.password_hash = staff.hash_password(password)
        user.password_changed_at = now
        user.failed_logins = 0
        user.locked_until = None
        await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
        reset = await session.get(PasswordReset, user.id)
        if reset is None:
            session.add(PasswordReset(user_id=user.id, reset_at=now, reset_by=current.user.name))
        else:
            reset.reset_at = now
            reset.reset_by = current.user.name
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "user.password_reset",
            "user",
            user.id,
            generated=generated,
        )
        name = user.name
    t = translator(current.lang)
    # Rendered directly, never stored (a flash message would keep it in the database).
    return await render(
        request,
        "users_password.html",
        name=name,
        password=password if generated else "",
        notice=t(
            f"{name} 的密码已重置，其登录会话已全部结束；下次登录时须设置新密码。",
            f"The password of {name} was reset and their sessions ended; they must choose "
            "a new one at the next sign-in.",
        ),
    )


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
