"""Inspection readiness: the State Council's checklist (国办秘函〔2019〕19号 and the annual
evaluation) run against the office's own site and accounts. Single-veto items first, then
deductions; each failing item says exactly what to fix and links to the items."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.cases.calendar import add_months, working_days_between
from bot.cases.models import Case, CaseState
from bot.cases.service import load_calendar
from publisher.checks.links import LinkChecker
from publisher.config import CoreConfig
from publisher.db import Database
from publisher.models import Publication
from publisher.orm import utcnow
from reports.figures import (
    LIVE_STATES,
    SILENT_AFTER,
    SOCIAL_CHANNELS,
    ColumnFigure,
    compute_figures,
)
from reports.lists import checker_for
from reports.periods import Period

log = logging.getLogger("govcast.reports")

PROBE_TIMEOUT_SECONDS = 15.0
RECENT = timedelta(days=366)  # published items checked for wording and personal data
MAX_ITEMS_CHECKED = 5000
MAX_LINK_ITEMS = 200
STALE_COLUMN_LIMIT = 5
BACKDATE_TOLERANCE = timedelta(minutes=2)
_LEADER_CODES = ("leader_title", "leader_former")
COLUMN_NAMES = {
    "news": "新闻动态",
    "press_conference": "新闻发布会",
    "notices": "通知公告",
    "policy": "政策文件",
    "solicitation": "意见征集",
    "guide": "政府信息公开指南",
    "rules": "政府信息公开制度",
    "annual_report": "政府信息公开年报",
    "statutory": "法定主动公开内容",
}


@dataclass(frozen=True)
class Problem:
    """One concrete thing to fix, with a link to it when there is one."""

    text: str
    url: str | None = None


@dataclass
class CheckItem:
    """One line of the checklist."""

    code: str
    title: str
    veto: bool  # a single-veto item: failing it fails the whole inspection
    fix: str  # what to do, in Chinese
    problems: list[Problem] = field(default_factory=list)
    skipped: str = ""  # why the item could not be checked (never silently passed)

    @property
    def passed(self) -> bool:
        """No problems found (and the item was checked)."""
        return not self.problems and not self.skipped


@dataclass(frozen=True)
class Inspection:
    """The whole checklist at one moment."""

    at: datetime
    items: list[CheckItem]

    @property
    def vetoed(self) -> bool:
        """Whether any single-veto item fails."""
        return any(i.veto and not i.passed for i in self.items)


def _pub_url(publication_id: int) -> str:
    return f"/console/publications/{publication_id}"


async def run_inspection(
    db: Database,
    config: CoreConfig,
    http: aiohttp.ClientSession | None,
    *,
    office_key: str | None = None,
    now: datetime | None = None,
) -> Inspection:
    """Run every checklist item; with ``http`` None the network probes are marked skipped."""
    now = now or utcnow()
    zone = config.timezone
    items: list[CheckItem] = []
    async with db.sessions() as session:
        checker = await checker_for(session)
        calendar = await load_calendar(session)
        recent = (
            (
                await session.execute(
                    select(Publication)
                    .where(
                        Publication.state.in_(LIVE_STATES),
                        Publication.published_at.is_not(None),
                        Publication.published_at <= now,
                        Publication.published_at >= now - RECENT,
                    )
                    .order_by(Publication.published_at.desc())
                    .limit(MAX_ITEMS_CHECKED)
                )
            )
            .scalars()
            .all()
        )
        backdated = (
            (
                await session.execute(
                    select(Publication)
                    .where(
                        Publication.state.in_(LIVE_STATES),
                        Publication.imported.is_(False),
                        Publication.published_at.is_not(None),
                        # Portable column comparison here; the tolerance is applied below.
                        (Publication.published_at < Publication.created_at)
                        | (Publication.published_at < Publication.approved_at),
                    )
                    .order_by(Publication.id)
                )
            )
            .scalars()
            .all()
        )
        latest = (
            await session.execute(
                select(func.max(Publication.published_at)).where(
                    Publication.state.in_(LIVE_STATES), Publication.published_at <= now
                )
            )
        ).scalar_one()
        three_months_ago = add_months(now, -3, zone)
        overdue_cases = (
            await session.execute(
                select(Case.id, Case.number, Case.received_at)
                .where(
                    Case.state.not_in([CaseState.REJECTED.value, CaseState.CLOSED.value]),
                    Case.replied_at.is_(None),
                    Case.received_at < three_months_ago,
                )
                .order_by(Case.received_at)
            )
        ).all()
        slow_cases = (
            await session.execute(
                select(Case.id, Case.number, Case.received_at, Case.replied_at).where(
                    Case.replied_at.is_not(None), Case.replied_at >= now - RECENT
                )
            )
        ).all()
        last_public_reply = (
            await session.execute(select(func.max(Case.published_at)))
        ).scalar_one()

    findings = {p.id: checker.check(p) for p in recent}

    # 1. Wrong leader names or titles in published items.
    item = CheckItem(
        "leader_titles",
        "领导姓名、职务表述错误",
        True,
        "核对领导姓名和职务，按现任领导名单更正已发布信息（发布更正）。",
    )
    for p in recent:
        for f in findings[p.id]:
            if f.code in _LEADER_CODES:
                item.problems.append(
                    Problem(f"《{p.title}》：{f.message}（{f.snippet}）", _pub_url(p.id))
                )
    items.append(item)

    # 2. Personal data exposed.
    item = CheckItem(
        "personal_data",
        "公开信息中泄露个人隐私",
        True,
        "对身份证号、手机号、银行卡号、住址等个人信息做脱敏处理后发布更正。",
    )
    for p in recent:
        for f in findings[p.id]:
            if f.code.startswith("personal_") and f.blocking:
                item.problems.append(
                    Problem(f"《{p.title}》：{f.message}（{f.snippet}）", _pub_url(p.id))
                )
    items.append(item)

    # 3. Back-dated items.
    item = CheckItem(
        "backdated",
        "发布日期早于成文或审批时间（倒签日期）",
        True,
        "核实发布日期；发布日期不得早于信息形成和审批的时间，不得人为修改。",
    )
    for p in backdated:
        if _earlier_than(p) == "":
            continue  # within the clock-skew tolerance
        item.problems.append(
            Problem(
                f"《{p.title}》发布日期{_local(p.published_at, zone)}早于{_earlier_than(p)}时间",
                _pub_url(p.id),
            )
        )
    items.append(item)

    # 4. Home page stale.
    item = CheckItem(
        "home_stale", "首页两周未更新", True, "两周内在首页发布新的信息（动态、通知公告等）。"
    )
    if latest is None or now - latest > timedelta(days=14):
        when = _local(latest, zone) if latest else "从未"
        item.problems.append(Problem(f"最近一次发布：{when}", "/"))
    items.append(item)

    # 5. Stale and empty columns.
    period = Period(
        "inspection",
        (now - timedelta(days=1)).astimezone(zone).date(),
        (now + timedelta(days=1)).astimezone(zone).date(),
    )
    figures = await compute_figures(
        db,
        period,
        zone=zone,
        office_key=office_key,
        accounts=_social_targets(config, office_key),
        now=now,
    )
    stale = CheckItem(
        "columns_stale",
        "栏目不更新（5个及以上）",
        True,
        "动态类栏目两周内、通知公告和政策文件类栏目6个月内须有更新。",
    )
    empty = CheckItem(
        "columns_empty", "空白栏目（5个及以上）", True, "为空白栏目补充内容，或将其合并、撤销。"
    )
    if figures.columns is None:
        stale.skipped = empty.skipped = "网站栏目统计不可用"
    else:
        stale_cols = [c for c in figures.columns if c.stale]
        empty_cols = [c for c in figures.columns if c.empty]
        if len(stale_cols) >= STALE_COLUMN_LIMIT:
            stale.problems = stale_column_problems(stale_cols, zone)
        if len(empty_cols) >= STALE_COLUMN_LIMIT:
            empty.problems = [Problem(f"栏目“{_column(c.key)}”没有内容") for c in empty_cols]
    items += [stale, empty]

    # 6. Accounts silent for 2 weeks.
    item = CheckItem(
        "accounts_silent",
        "政务新媒体账号两周未更新",
        True,
        "两周内在该账号发布内容；确已停用的账号应按程序关停注销。",
    )
    for a in figures.accounts:
        if a.last_post_at is None or now - a.last_post_at > SILENT_AFTER:
            when = _local(a.last_post_at, zone) if a.last_post_at else "从未发布"
            item.problems.append(Problem(f"账号 {a.target} 最近一次发布：{when}"))
    items.append(item)

    # 7. Messages unanswered for more than 3 months.
    item = CheckItem(
        "cases_overdue",
        "留言超过3个月未答复",
        True,
        "立即办理并答复这些留言，答复后在网站公开（征得同意并脱敏）。",
    )
    for _cid, number, received in overdue_cases:
        item.problems.append(Problem(f"留言 {number}，收到于{_local(received, zone)}"))
    items.append(item)

    # 8 and 9. Site reachable, links working.
    reach = CheckItem(
        "site_unreachable",
        "网站无法访问",
        True,
        "检查网站服务器、域名解析和网络；首页及主要栏目须15秒内可打开。",
    )
    links = CheckItem(
        "broken_links", "网站存在错链、断链", True, "修正或删除无法访问的链接和图片（发布更正）。"
    )
    if http is None:
        reach.skipped = links.skipped = "未进行网络检测"
    else:
        reach.problems = await _probe_site(http, config.website_base_url)
        links.problems = await _broken_links(http, config, list(recent[:MAX_LINK_ITEMS]))
    items += [reach, links]

    # Deductions.
    slow = CheckItem(
        "cases_slow",
        "留言答复超过5个工作日",
        False,
        "简单咨询应在5个工作日内答复；需延期的应说明理由。",
    )
    for _cid, number, received, replied in slow_cases:
        if replied is None:
            continue
        days = working_days_between(received, replied, calendar, zone)
        if days > 5:
            slow.problems.append(Problem(f"留言 {number} 用时{days}个工作日"))
    items.append(slow)

    policy = CheckItem(
        "policy_stale", "政策文件栏目6个月未更新", False, "及时发布新的政策文件及其解读。"
    )
    if figures.columns is None:
        policy.skipped = "网站栏目统计不可用"
    else:
        policy.problems = [
            Problem(f"政策文件栏目最近更新：{_local(c.last_published_at, zone)}")
            for c in figures.columns
            if c.key == "policy" and (c.stale or c.empty)
        ]
    items.append(policy)

    replies = CheckItem(
        "reply_column_stale",
        "留言答复栏目2个月未更新",
        False,
        "将已答复的留言（征得同意并脱敏）公开到网站。",
    )
    if last_public_reply is None or now - last_public_reply > timedelta(days=61):
        when = _local(last_public_reply, zone) if last_public_reply else "从未公开"
        replies.problems.append(Problem(f"最近一次公开答复：{when}", "/cases/"))
    items.append(replies)

    late = CheckItem(
        "late_disclosure", "信息未在20个工作日内公开", False, "信息形成或变更后20个工作日内公开。"
    )
    year = Period(
        "year",
        (now - RECENT).astimezone(zone).date(),
        (now + timedelta(days=1)).astimezone(zone).date(),
    )
    year_figures = await compute_figures(db, year, zone=zone, office_key=office_key, now=now)
    for late_item in year_figures.late_items:
        late.problems.append(
            Problem(
                f"《{late_item.title}》用时{late_item.working_days}个工作日",
                _pub_url(late_item.publication_id),
            )
        )
    items.append(late)

    wording = CheckItem("wording", "错别字和标点误用", False, "按提示更正错别字和中英文标点混用。")
    alt = CheckItem(
        "missing_alt", "图片缺少替代文字（无障碍）", False, "为图片补充说明文字（alt）。"
    )
    for p in recent:
        for f in findings[p.id]:
            if f.code in ("typo", "punctuation"):
                wording.problems.append(Problem(f"《{p.title}》：{f.message}", _pub_url(p.id)))
            elif f.code == "missing_alt":
                alt.problems.append(Problem(f"《{p.title}》：{f.message}", _pub_url(p.id)))
    items += [wording, alt]
    return Inspection(now, items)


def _column(key: str) -> str:
    return COLUMN_NAMES.get(key, key)


def stale_column_problems(columns: list[ColumnFigure], zone: Any) -> list[Problem]:
    """One problem per stale column, named as staff know it (新闻动态, not ``news``)."""
    return [
        Problem(f"栏目“{_column(c.key)}”最近更新：{_local(c.last_published_at, zone)}")
        for c in columns
    ]


def _earlier_than(p: Publication) -> str:
    """Which earlier moment the publication date precedes ("" when within tolerance)."""
    published = p.published_at
    if published is None:
        return ""
    if p.approved_at is not None and published < p.approved_at - BACKDATE_TOLERANCE:
        return "审批"
    if published < p.created_at - BACKDATE_TOLERANCE:
        return "创建"
    return ""


def _social_targets(config: CoreConfig, office_key: str | None) -> list[str]:
    offices = [office_key] if office_key else list(config.targets_by_office)
    return [
        t
        for key in offices
        for t in config.targets_by_office.get(key, ())
        if t.split(":", 1)[0] in SOCIAL_CHANNELS
    ]


def _local(moment: datetime | None, zone: Any) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


async def _probe_site(http: aiohttp.ClientSession, base_url: str) -> list[Problem]:
    base = base_url.rstrip("/")
    problems = []
    for path in ("/", "/disclosure/"):
        url = base + path
        try:
            async with http.get(
                url,
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS),
                allow_redirects=True,
            ) as resp:
                status = resp.status
        except TimeoutError:
            problems.append(Problem(f"{url} 超过{PROBE_TIMEOUT_SECONDS:g}秒未响应", url))
            continue
        except (aiohttp.ClientError, ValueError) as exc:
            problems.append(Problem(f"{url} 无法连接（{type(exc).__name__}）", url))
            continue
        if status >= 400:
            problems.append(Problem(f"{url} 返回 HTTP {status}", url))
    return problems


async def _broken_links(
    http: aiohttp.ClientSession, config: CoreConfig, publications: list[Publication]
) -> list[Problem]:
    checker = LinkChecker(
        http,
        timeout_seconds=PROBE_TIMEOUT_SECONDS,
        base_url=config.website_base_url.rstrip("/") + "/",
    )
    problems = []
    for p in publications:
        for f in await checker.check_html(p.body_html):
            problems.append(Problem(f"《{p.title}》：{f.message}", _pub_url(p.id)))
    return problems


def render_text(inspection: Inspection) -> str:
    """The checklist as plain text for the command line."""
    verdict = "存在单项否决问题，须立即整改" if inspection.vetoed else "未发现单项否决问题"
    lines = [f"检查时间：{inspection.at.isoformat(timespec='seconds')}", f"结论：{verdict}"]
    for veto in (True, False):
        lines.append("")
        lines.append("一、单项否决指标" if veto else "二、扣分指标")
        for item in (i for i in inspection.items if i.veto == veto):
            mark = "通过" if item.passed else ("未检测" if item.skipped else "不通过")
            lines.append(f"[{mark}] {item.title}" + (f"（{item.skipped}）" if item.skipped else ""))
            if item.problems:
                lines.append(f"    整改：{item.fix}")
                for problem in item.problems[:50]:
                    link = f" {problem.url}" if problem.url else ""
                    lines.append(f"    - {problem.text}{link}")
                if len(item.problems) > 50:
                    lines.append(f"    …… 另有{len(item.problems) - 50}处")
    return "\n".join(lines) + "\n"


def render_html(inspection: Inspection) -> str:
    """The checklist as an HTML fragment (links to the items)."""
    out = [
        f"<p>检查时间：{escape(inspection.at.isoformat(timespec='seconds'))}。"
        + (
            "<strong>存在单项否决问题，须立即整改。</strong>"
            if inspection.vetoed
            else "未发现单项否决问题。"
        )
        + "</p>"
    ]
    for veto, heading in ((True, "一、单项否决指标"), (False, "二、扣分指标")):
        out.append(f'<h2>{heading}</h2><ul class="checklist">')
        for item in (i for i in inspection.items if i.veto == veto):
            mark = "通过" if item.passed else ("未检测" if item.skipped else "不通过")
            out.append(
                f'<li class="{"ok" if item.passed else "fail"}"><strong>[{mark}]</strong> '
                f"{escape(item.title)}"
            )
            if item.skipped:
                out.append(f"（{escape(item.skipped)}）")
            if item.problems:
                out.append(f"<p>整改要求：{escape(item.fix)}</p><ul>")
                for problem in item.problems[:200]:
                    text = escape(problem.text)
                    if problem.url:
                        text = f'<a href="{escape(problem.url)}">{text}</a>'
                    out.append(f"<li>{text}</li>")
                out.append("</ul>")
            out.append("</li>")
        out.append("</ul>")
    return "".join(out)
