"""The WeChat custom menu in the console (admin only): view it (as stored, or from
``[bot.menu]`` until one is saved, and as the platform has it now), edit it within
WeChat's limits, and push it with ``menu/create`` (the code path of
``govcast wechat menu push``)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.menu import MenuUnavailable, fetch_menu, menu_payload, push_menu
from console.models import WechatMenu
from console.pages import _current, _form, _origin, _text, flash, render, translator
from console.security import query, requires
from govcast import keys
from govcast.settings import Settings, SettingsError
from publisher import audit
from publisher.errors import NotFound
from publisher.models import Role
from publisher.orm import utcnow
from publisher.outcomes import DeliveryError

routes = web.RouteTableDef()

# WeChat's menu/create limits (shared/reference/platform-facts.md; the settings check the
# same for [bot.menu]).
MAX_TOP = 3
MAX_SUB = 5
TOP_NAME_BYTES = 16
SUB_NAME_BYTES = 60
KEY_BYTES = 128
URL_BYTES = 1024
KINDS = ("click", "view")
MENU = "menu"  # a top button that opens sub-buttons
FETCH_TIMEOUT = 8.0
NO_MENU = "46003"  # menu/get's "menu no exist"

# A problem is (zh, en); shown in the session's language.
Problem = tuple[str, str]


@dataclass
class Slot:
    """One button as the form shows it (a top button may have sub-buttons)."""

    name: str = ""
    type: str = "click"
    key: str = ""
    url: str = ""
    sub: list[Slot] = field(default_factory=list)

    @property
    def filled(self) -> bool:
        """Whether anything was entered in this slot (or in its sub-buttons)."""
        return bool(self.name or self.key or self.url or any(s.filled for s in self.sub))


def _nbytes(text: str) -> int:
    return len(text.encode())


def _where(top: int, sub: int | None) -> Problem:
    if sub is None:
        return f"按钮{top + 1}", f"Button {top + 1}"
    return f"按钮{top + 1} · 子按钮{sub + 1}", f"Button {top + 1} · sub-button {sub + 1}"


def _problem(where: Problem, zh: str, en: str) -> Problem:
    return f"{where[0]}：{zh}", f"{where[1]}: {en}"


def _check_leaf(button: dict[str, Any], where: Problem, max_name: int) -> list[Problem]:
    problems = []
    name = button.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(_problem(where, "名称不能为空", "the name is empty"))
    elif _nbytes(name) > max_name:
        problems.append(
            _problem(
                where,
                f"名称最多{max_name}字节（约{max_name // 3}个汉字）",
                f"the name has at most {max_name} bytes (about {max_name // 3} Chinese characters)",
            )
        )
    kind = button.get("type")
    if kind == "click":
        key = button.get("key")
        if not isinstance(key, str) or not key or _nbytes(key) > KEY_BYTES:
            problems.append(
                _problem(
                    where,
                    f"点击事件的KEY须为1-{KEY_BYTES}字节",
                    f"the key must be 1-{KEY_BYTES} bytes",
                )
            )
    elif kind == "view":
        url = button.get("url")
        if (
            not isinstance(url, str)
            or not re.fullmatch(r"https?://[^\s/]+\S*", url)
            or _nbytes(url) > URL_BYTES
        ):
            problems.append(
                _problem(
                    where,
                    f"链接须为http(s)网址，最多{URL_BYTES}字节",
                    f"the link must be an http(s) URL of at most {URL_BYTES} bytes",
                )
            )
    else:
        problems.append(_problem(where, "类型须为点击或链接", "the type must be click or view"))
    return problems


def problems_of(buttons: Any) -> list[Problem]:
    """Everything WeChat's ``menu/create`` would refuse in ``buttons`` (pure)."""
    if not isinstance(buttons, list) or not buttons:
        return [("菜单至少需要一个按钮。", "The menu needs at least one button.")]
    problems: list[Problem] = []
    if len(buttons) > MAX_TOP:
        problems.append(
            (f"菜单最多{MAX_TOP}个一级按钮。", f"The menu has at most {MAX_TOP} top buttons.")
        )
    for i, button in enumerate(buttons[:MAX_TOP]):
        where = _where(i, None)
        if not isinstance(button, dict):
            problems.append(_problem(where, "格式错误", "malformed"))
            continue
        subs = button.get("sub_button")
        if subs:
            name = button.get("name")
            if not isinstance(name, str) or not name.strip() or _nbytes(name) > TOP_NAME_BYTES:
                problems.append(
                    _problem(
                        where,
                        f"名称须为1-{TOP_NAME_BYTES}字节",
                        f"the name must be 1-{TOP_NAME_BYTES} bytes",
                    )
                )
            if not isinstance(subs, list) or len(subs) > MAX_SUB:
                problems.append(
                    _problem(where, f"最多{MAX_SUB}个子按钮", f"has at most {MAX_SUB} sub-buttons")
                )
                continue
            for j, sub in enumerate(subs):
                if not isinstance(sub, dict) or sub.get("sub_button"):
                    problems.append(
                        _problem(_where(i, j), "子按钮不能再有子按钮", "cannot have sub-buttons")
                    )
                    continue
                problems.extend(_check_leaf(sub, _where(i, j), SUB_NAME_BYTES))
        else:
            problems.extend(_check_leaf(button, where, TOP_NAME_BYTES))
    return problems


def _leaf(slot: Slot) -> dict[str, Any]:
    if slot.type == "view":
        return {"type": "view", "name": slot.name, "url": slot.url}
    if slot.type == "click":
        return {"type": "click", "name": slot.name, "key": slot.key}
    return {"type": slot.type, "name": slot.name}


def buttons_of(slots: list[Slot]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The ``menu/create`` buttons of the filled slots, and what is wrong with them."""
    buttons: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, slot in enumerate(slots):
        if not slot.filled:
            continue
        subs = [s for s in slot.sub if s.filled]
        if slot.type == MENU:
            if not subs:
                problems.append(
                    _problem(
                        _where(i, None),
                        "子菜单至少需要一个子按钮",
                        "a sub-menu needs at least one sub-button",
                    )
                )
            buttons.append({"name": slot.name, "sub_button": [_leaf(s) for s in subs]})
            continue
        if subs:
            problems.append(
                _problem(
                    _where(i, None),
                    "填写了子按钮，类型须选“子菜单”",
                    "has sub-buttons: choose the type 'sub-menu'",
                )
            )
        buttons.append(_leaf(slot))
    problems.extend(p for p in problems_of(buttons) if p not in problems)
    return buttons, problems


def slots_of(buttons: list[Any]) -> list[Slot]:
    """The form's 3 x (1 + 5) slots filled from ``menu/create`` buttons."""

    def leaf(button: Any) -> Slot:
        if not isinstance(button, dict):
            return Slot()
        return Slot(
            name=str(button.get("name", "")),
            type=str(button.get("type", "click")),
            key=str(button.get("key", "")),
            url=str(button.get("url", "")),
        )

    slots = []
    for i in range(MAX_TOP):
        button = buttons[i] if i < len(buttons) else None
        if isinstance(button, dict) and button.get("sub_button"):
            subs = [leaf(b) for b in button["sub_button"][:MAX_SUB]]
            top = Slot(name=str(button.get("name", "")), type=MENU, sub=subs)
        else:
            top = leaf(button)
        top.sub += [Slot() for _ in range(MAX_SUB - len(top.sub))]
        slots.append(top)
    return slots


def slots_from_form(form: dict[str, Any]) -> list[Slot]:
    """The slots as submitted (fields ``b{i}_name`` ... ``b{i}_s{j}_url``)."""

    def slot(prefix: str, top: bool) -> Slot:
        kind = _text(form, f"{prefix}_type", 8) or "click"
        allowed = (*KINDS, MENU) if top else KINDS
        return Slot(
            name=_text(form, f"{prefix}_name", 200),
            type=kind if kind in allowed else "click",
            key=_text(form, f"{prefix}_key", 300),
            url=_text(form, f"{prefix}_url", 2000),
        )

    slots = []
    for i in range(MAX_TOP):
        top = slot(f"b{i}", True)
        top.sub = [slot(f"b{i}_s{j}", False) for j in range(MAX_SUB)]
        slots.append(top)
    return slots


def _account(request: web.Request, value: str) -> str:
    accounts = request.config_dict[keys.SETTINGS].wechat.accounts
    if value in accounts:
        return value
    if not value and accounts:
        return "main" if "main" in accounts else sorted(accounts)[0]
    raise NotFound(f"no WeChat account {value!r} is configured")


def _settings_buttons(settings: Settings) -> list[dict[str, Any]]:
    try:
        buttons: list[dict[str, Any]] = menu_payload(settings)["button"]
    except SettingsError:
        return []
    return buttons


async def current_menu(
    session: AsyncSession, settings: Settings, account: str
) -> tuple[list[dict[str, Any]], WechatMenu | None]:
    """The menu of ``account`` as the console will push it: stored, else ``[bot.menu]``."""
    row = await session.get(WechatMenu, account)
    if row is not None:
        return list(row.button), row
    return _settings_buttons(settings), None


async def _platform_menu(request: web.Request, account: str) -> tuple[list[Any] | None, str]:
    """The menu on the platform now (``menu/get``), or None and why it could not be read."""
    registry = request.config_dict.get(keys.CHANNELS)
    try:
        answer = await asyncio.wait_for(fetch_menu(registry, account), FETCH_TIMEOUT)
    except DeliveryError as exc:
        if str(exc.code) == NO_MENU:
            return [], ""
        return None, str(exc)[:300]
    except MenuUnavailable as exc:
        return None, str(exc)
    except TimeoutError:
        return None, "menu/get: no answer in time"
    menu = answer.get("menu") if isinstance(answer, dict) else None
    buttons = menu.get("button") if isinstance(menu, dict) else None
    if not isinstance(buttons, list):
        return [], ""
    # Only what the template can show: dicts, their sub-buttons dicts too.
    shown = []
    for button in buttons:
        if isinstance(button, dict):
            subs = button.get("sub_button")
            subs = [b for b in subs if isinstance(b, dict)] if isinstance(subs, list) else []
            shown.append({**button, "sub_button": subs})
    return shown, ""


async def _menu_page(
    request: web.Request,
    account: str,
    slots: list[Slot] | None = None,
    problems: list[Problem] | None = None,
    status: int = 200,
) -> web.Response:
    settings = request.config_dict[keys.SETTINGS]
    async with request.config_dict[keys.DB].sessions() as session:
        buttons, row = await current_menu(session, settings, account)
    platform, platform_error = await _platform_menu(request, account)
    t = translator(_current(request).lang)
    return await render(
        request,
        "menu.html",
        status=status,
        accounts=sorted(settings.wechat.accounts),
        account=account,
        slots=slots if slots is not None else slots_of(buttons),
        source="stored" if row is not None else ("settings" if buttons else "none"),
        row=row,
        platform=platform,
        platform_error=platform_error,
        problems=[t(zh, en) for zh, en in problems or []],
        limits={
            "top": MAX_TOP,
            "sub": MAX_SUB,
            "top_name": TOP_NAME_BYTES,
            "sub_name": SUB_NAME_BYTES,
            "key": KEY_BYTES,
            "url": URL_BYTES,
        },
        MENU=MENU,
    )


@routes.get("/admin/menu")
@requires(Role.ADMIN)
async def menu_page(request: web.Request) -> web.StreamResponse:
    """The custom menu of one account: as the console has it, and on the platform."""
    return await _menu_page(request, _account(request, query(request, "account", 64)))


@routes.post("/admin/menu")
@requires(Role.ADMIN)
async def save_menu(request: web.Request) -> web.StreamResponse:
    """Store an edited menu (validated against WeChat's limits; nothing is pushed yet)."""
    current = _current(request)
    form = await _form(request)
    account = _account(request, _text(form, "account", 64))
    slots = slots_from_form(form)
    buttons, problems = buttons_of(slots)
    if problems:
        return await _menu_page(request, account, slots, problems, 400)
    async with request.config_dict[keys.DB].transaction() as session:
        row = await session.get(WechatMenu, account)
        if row is None:
            row = WechatMenu(account=account, push_result="")
            session.add(row)
        row.button = buttons
        row.updated_at = utcnow()
        row.updated_by = current.user.name
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "wechat_menu.save",
            "wechat_menu",
            account,
            button=buttons,
        )
    await flash(
        request,
        "success",
        "菜单已保存（尚未推送到微信）。",
        "Menu saved (not yet pushed to WeChat).",
    )
    raise web.HTTPSeeOther(f"/console/admin/menu?account={account}")


@routes.post("/admin/menu/push")
@requires(Role.ADMIN)
async def push_menu_page(request: web.Request) -> web.StreamResponse:
    """Push the account's menu with ``menu/create``; shows success or the platform's error."""
    current = _current(request)
    form = await _form(request)
    account = _account(request, _text(form, "account", 64))
    settings = request.config_dict[keys.SETTINGS]
    db = request.config_dict[keys.DB]
    async with db.sessions() as session:
        buttons, _ = await current_menu(session, settings, account)
    problems = problems_of(buttons)
    if problems:
        return await _menu_page(request, account, None, problems, 400)
    error = ""
    try:
        await push_menu(request.config_dict.get(keys.CHANNELS), account, {"button": buttons})
    except (DeliveryError, MenuUnavailable) as exc:
        code = getattr(exc, "code", None)
        error = (f"[{code}] " if code is not None else "") + str(exc)
        error = error[:480]
    async with db.transaction() as session:
        row = await session.get(WechatMenu, account)
        if row is not None:
            row.pushed_at = utcnow()
            row.push_result = f"error: {error}" if error else "ok"
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "wechat_menu.push",
            "wechat_menu",
            account,
            ok=not error,
            error=error,
        )
    if error:
        await flash(
            request, "error", f"推送失败：微信返回 {error}", f"Push failed: WeChat answered {error}"
        )
    else:
        await flash(
            request,
            "success",
            f"菜单已推送到微信（{len(buttons)}个按钮）。",
            f"Menu pushed to WeChat ({len(buttons)} buttons).",
        )
    raise web.HTTPSeeOther(f"/console/admin/menu?account={account}")
