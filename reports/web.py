"""Console pages of the reports package: figures with charts, the annual report (HTML,
print-ready HTML, CSV), SVG charts and the inspection checklist.

The pages live on the main application under /console/reports/ and /console/inspect and
use the console's own sessions (console.security): no session, no page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape
from urllib.parse import quote

from aiohttp import web

from console.security import SESSION_COOKIE, Current, load_current, origin_ok, same
from govcast import keys
from publisher import audit
from publisher.errors import NotFound, ValidationError
from publisher.models import Role
from reports import annual, charts, inspect
from reports.figures import Figures, comment_totals, compute_figures
from reports.lists import entries, entry_kind, import_lines, remove_entry
from reports.models import ListKind
from reports.periods import parse_period

log = logging.getLogger("govcast.reports")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
MAX_QUERY = 64
CHARTS = {
    "publications": charts.monthly_publications,
    "replies": charts.reply_times,
    "accounts": charts.account_activity,
}


def setup(app: web.Application) -> None:
    """Add this package's routes and resources to the application."""
    app.router.add_get("/console/reports/", _staff_only(_index))
    app.router.add_get("/console/reports/figures", _staff_only(_figures_page))
    app.router.add_get(r"/console/reports/charts/{name:[a-z]+}.svg", _staff_only(_chart))
    app.router.add_get(
        r"/console/reports/annual/{year:\d{4}}.{fmt:html|csv|print}", _staff_only(_annual)
    )
    app.router.add_get("/console/inspect", _staff_only(_inspect))
    app.router.add_get("/console/reports/lists", _staff_only(_lists_page))
    app.router.add_post("/console/reports/lists", _staff_only(_lists_add))
    app.router.add_post(r"/console/reports/lists/{id:\d{1,18}}/delete", _staff_only(_lists_delete))


CURRENT = web.RequestKey("reports_current", Current)
EDITORS = (Role.ADMIN, Role.APPROVER)  # who may change the check lists
# Severities decide what blocks approval: only administrators change them.
ADMIN_ONLY_LISTS = frozenset({ListKind.SEVERITY.value})


def _staff_only(handler: Handler) -> Handler:
    async def inner(request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(SESSION_COOKIE, "")
        async with request.app[keys.DB].transaction() as session:
            current = await load_current(session, token)
        if current is None:
            if request.method != "GET":
                raise web.HTTPUnauthorized()
            raise web.HTTPSeeOther(f"/console/login?next={quote(request.path_qs, safe='')}")
        request[CURRENT] = current
        try:
            if request.method == "POST":
                await _check_post(request, current)
            response = await handler(request)
        except ValidationError as exc:
            response = _page("请求有误", f"<p>{escape(exc.message)}</p>", status=400)
        except NotFound as exc:
            response = _page("未找到", f"<p>{escape(str(exc))}</p>", status=404)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    inner.__name__ = handler.__name__
    return inner


STYLE = (
    "body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;line-height:1.6;"
    "color:#111;max-width:72em;margin:0 auto;padding:1em}"
    "a{color:#0b4f9c}table{border-collapse:collapse;margin:.8em 0}"
    "th,td{border:1px solid #777;padding:.25em .6em;text-align:left}"
    "caption{font-weight:bold;text-align:left}.fail{color:#8a1c1c}.ok{color:#1d5e20}"
    "figure.chart svg{max-width:100%;height:auto}label{margin-right:.5em}"
)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} - 统计与检查</title><style>{STYLE}</style></head><body>"
        '<nav aria-label="导航"><a href="/console/">控制台首页</a> | '
        '<a href="/console/reports/">统计报表</a> | <a href="/console/inspect">迎检自查</a></nav>'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status)


def _arg(request: web.Request, name: str, default: str = "") -> str:
    value = request.query.get(name, default)
    if len(value) > MAX_QUERY:
        raise ValidationError(name, f"at most {MAX_QUERY} characters")
    return value


async def _figures_for(request: web.Request, period_text: str) -> Figures:
    period = parse_period(period_text)
    account = _arg(request, "account") or None
    config = request.app[keys.CORE]
    settings = request.app[keys.SETTINGS]
    return await compute_figures(
        request.app[keys.DB],
        period,
        zone=settings.office.zone,
        account=account,
        accounts=[t for ts in config.targets_by_office.values() for t in ts],
    )


async def _index(request: web.Request) -> web.StreamResponse:
    year = datetime.now().year - 1
    body = (
        '<form method="get" action="/console/reports/figures">'
        '<label for="period">统计期间</label>'
        f'<input id="period" name="period" value="{year}" maxlength="16" '
        'aria-describedby="period-help"> '
        '<label for="account">账号（可选）</label>'
        '<input id="account" name="account" placeholder="wechat:main" maxlength="64"> '
        '<button type="submit">查看统计</button>'
        '<p id="period-help">格式：年份 2025，季度 2025-Q1，月份 2025-03。</p></form>'
        f"<h2>{year}年政府信息公开工作年度报告</h2><ul>"
        f'<li><a href="/console/reports/annual/{year}.html">'
        "网页版（可在网站“年报”栏目发布）</a></li>"
        f'<li><a href="/console/reports/annual/{year}.print">打印版</a></li>'
        f'<li><a href="/console/reports/annual/{year}.csv">CSV 表格</a></li></ul>'
        '<p><a href="/console/inspect">运行迎检自查</a> | '
        '<a href="/console/reports/lists">检查名单（禁用词、错别字、领导职务）</a></p>'
    )
    return _page("统计报表", body)


def _kv_table(caption: str, rows: list[tuple[str, object]]) -> str:
    cells = "".join(
        f'<tr><th scope="row">{escape(str(k))}</th><td>{escape(str(v))}</td></tr>' for k, v in rows
    )
    return f"<table><caption>{escape(caption)}</caption><tbody>{cells}</tbody></table>"


async def _figures_page(request: web.Request) -> web.StreamResponse:
    f = await _figures_for(request, _arg(request, "period"))
    c = f.cases
    parts = [
        _kv_table(
            "主动公开",
            [
                ("公开信息（条）", f.published),
                ("新闻发布会（场）", f.press_conferences),
                (
                    "平均公开用时（工作日）",
                    "—" if f.average_disclosure_days is None else f.average_disclosure_days,
                ),
                ("超过20个工作日（条）", len(f.late_items)),
                ("访问量", "—" if f.hits is None else f.hits),
            ],
        ),
        _kv_table(
            "按分类", [(charts.CATEGORY_NAMES.get(k, k), v) for k, v in f.by_category.items()]
        ),
        _kv_table("按类型", list(f.by_kind.items())),
        _kv_table("按渠道", list(f.by_channel.items())),
        _kv_table("按发布机构", list(f.by_issuing_body.items())),
        _kv_table(
            "规范性文件",
            [
                ("本期制发", f.normative_issued),
                ("本期废止/失效", f.normative_repealed),
                ("现行有效", f.normative_in_force),
            ],
        ),
    ]
    if c is not None:
        parts.append(
            _kv_table(
                "留言办理",
                [
                    ("收到", c.received),
                    ("不予受理", c.rejected),
                    ("已答复", c.answered),
                    ("答复率", "—" if c.reply_rate is None else f"{c.reply_rate:.1%}"),
                    (
                        "答复用时中位数（工作日）",
                        c.median_reply_days if c.median_reply_days is not None else "—",
                    ),
                    (
                        "第90百分位（工作日）",
                        c.p90_reply_days if c.p90_reply_days is not None else "—",
                    ),
                    (
                        "5个工作日内答复",
                        "—" if c.within_5_share is None else f"{c.within_5_share:.1%}",
                    ),
                    ("满意度", "—" if c.satisfaction is None else f"{c.satisfaction:.2f}"),
                ],
            )
        )
    if f.comments:
        rows_html = "".join(
            f'<tr><th scope="row">{"合计" if row.target == "all" else escape(row.target)}</th>'
            f"<td>{row.received}</td>"
            f"<td>{row.hidden}</td><td>{row.answered}</td>"
            f"<td>{'—' if row.answer_rate is None else f'{row.answer_rate:.1%}'}</td></tr>"
            for row in [*f.comments, comment_totals(f.comments)]
        )
        parts.append(
            '<table id="comments"><caption>微信、微博评论回复</caption><thead><tr>'
            '<th scope="col">账号</th><th scope="col">收到评论</th><th scope="col">已屏蔽</th>'
            '<th scope="col">已回复</th><th scope="col">回复率</th></tr></thead>'
            f"<tbody>{rows_html}</tbody></table>"
        )
    parts.append(
        _kv_table(
            "政务新媒体",
            [
                (
                    a.target,
                    f"{a.posts}条，每周{a.posts_per_week}条" + ("，两周未更新" if a.silent else ""),
                )
                for a in f.accounts
            ],
        )
    )
    if f.late_items:
        items = "".join(
            f'<li><a href="/console/publications/{i.publication_id}">{escape(i.title)}</a>'
            f"（{i.working_days}个工作日）</li>"
            for i in f.late_items[:100]
        )
        parts.append(f"<h2>超过20个工作日公开的信息</h2><ul>{items}</ul>")
    parts += [charts.monthly_publications(f), charts.reply_times(f), charts.account_activity(f)]
    parts += [f"<p>说明：{escape(n)}</p>" for n in f.notes]
    return _page(f"{f.period.label} 统计", "".join(parts))


async def _chart(request: web.Request) -> web.StreamResponse:
    render = CHARTS.get(request.match_info["name"])
    if render is None:
        raise NotFound("no such chart")
    f = await _figures_for(request, _arg(request, "period"))
    html = render(f)
    svg = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    return web.Response(text=svg, content_type="image/svg+xml")


async def _annual(request: web.Request) -> web.StreamResponse:
    year = int(request.match_info["year"])
    fmt = request.match_info["fmt"]
    f = await _figures_for(request, str(year))
    settings = request.app[keys.SETTINGS]
    report = annual.build_report(year, settings.office.name, f)
    if fmt == "csv":
        return web.Response(
            body=annual.render_csv(report).encode("utf-8-sig"),  # BOM: Excel reads UTF-8
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="annual-report-{year}.csv"'},
        )
    html = annual.render_html(report, printable=fmt == "print")
    return web.Response(text=html, content_type="text/html")


async def _inspect(request: web.Request) -> web.StreamResponse:
    offline = _arg(request, "offline") == "1"
    result = await inspect.run_inspection(
        request.app[keys.DB],
        request.app[keys.CORE],
        None if offline else request.app[keys.HTTP],
    )
    log.info("inspection run", extra={"vetoed": result.vetoed})
    switch = (
        '<p><a href="/console/inspect">包含网站可访问性和链接检测</a></p>'
        if offline
        else '<p><a href="/console/inspect?offline=1">跳过网络检测（更快）</a></p>'
    )
    return _page("迎检自查", switch + inspect.render_html(result))


MAX_FORM_FIELD = 4 * 1024 * 1024
LIST_NAMES = {
    "banned": ("禁用词（阻止发布）", "每行一个词"),
    "sensitive": ("敏感词（提示核实）", "每行一个词"),
    "allowed": ("例外词（其中的禁用词、敏感词不提示）", "每行一个词，如“最佳实践”"),
    "typo": ("常见错别字", "每行：错词=正词"),
    "leader": ("领导姓名职务", "每行：姓名,职务；已离任的加“,former”"),
    "severity": ("检查级别", "每行：检查代码=error|warning|off"),
}


async def _check_post(request: web.Request, current: Current) -> None:
    if not origin_ok(request):
        raise web.HTTPForbidden(text="cross-site request refused")
    form = await request.post()
    sent = form.get("_csrf")
    if not isinstance(sent, str) or not same(sent, current.csrf_token):
        raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page")
    if not current.any_role(*EDITORS):
        raise web.HTTPForbidden(text="only approvers and administrators change the lists")


def _may_change(current: Current, kind: str) -> bool:
    roles = (Role.ADMIN,) if kind in ADMIN_ONLY_LISTS else EDITORS
    return current.any_role(*roles)


def _list_actor(request: web.Request) -> audit.Actor:
    return request[CURRENT].member.actor(request.remote or "")


async def _lists_page(request: web.Request) -> web.StreamResponse:
    current = request[CURRENT]
    csrf = escape(current.csrf_token)
    async with request.app[keys.DB].sessions() as session:
        rows = await entries(session)
    parts = ["<p>这些名单用于发布前内容检查和迎检自查；默认错别字表始终生效。</p>"]
    for kind, (name, hint) in LIST_NAMES.items():
        can_edit = _may_change(current, kind)
        mine = [r for r in rows if r.kind == kind]
        parts.append(f"<h2>{escape(name)}（{len(mine)}）</h2>")
        if mine:
            cells = []
            for r in mine[:500]:
                action = (
                    f'<form method="post" action="/console/reports/lists/{r.id}/delete">'
                    f'<input type="hidden" name="_csrf" value="{csrf}">'
                    f'<button type="submit" aria-label="删除 {escape(r.term)}">删除</button></form>'
                    if can_edit
                    else ""
                )
                state = "" if r.current else "（已离任）"
                cells.append(
                    f"<tr><td>{escape(r.term)}</td><td>{escape(r.value)}{state}</td>"
                    f"<td>{action}</td></tr>"
                )
            more = f"<p>另有{len(mine) - 500}条未显示。</p>" if len(mine) > 500 else ""
            parts.append(
                f'<table><thead><tr><th scope="col">词条</th><th scope="col">值</th>'
                f'<th scope="col">操作</th></tr></thead><tbody>{"".join(cells)}</tbody></table>'
                + more
            )
        if can_edit:
            parts.append(
                '<form method="post" action="/console/reports/lists">'
                f'<input type="hidden" name="_csrf" value="{csrf}">'
                f'<input type="hidden" name="kind" value="{kind}">'
                f'<label for="add-{kind}">添加（{escape(hint)}）</label><br>'
                f'<textarea id="add-{kind}" name="lines" rows="3" cols="60"></textarea><br>'
                '<button type="submit">添加</button></form>'
            )
    return _page("检查名单", "".join(parts))


async def _lists_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    kind, lines = form.get("kind"), form.get("lines")
    if not isinstance(kind, str) or kind not in {k.value for k in ListKind}:
        raise ValidationError("kind", "unknown list")
    if not isinstance(lines, str) or len(lines) > MAX_FORM_FIELD:
        raise ValidationError("lines", "text of at most 4 MiB")
    if not _may_change(request[CURRENT], kind):
        raise web.HTTPForbidden(text="only administrators change the check severities")
    async with request.app[keys.DB].transaction() as session:
        count = await import_lines(session, kind, lines, actor=_list_actor(request))
    log.info("check list changed", extra={"list": kind, "entries": count})
    raise web.HTTPSeeOther("/console/reports/lists")


async def _lists_delete(request: web.Request) -> web.StreamResponse:
    entry_id = int(request.match_info["id"])
    async with request.app[keys.DB].transaction() as session:
        if not _may_change(request[CURRENT], await entry_kind(session, entry_id)):
            raise web.HTTPForbidden(text="only administrators change the check severities")
        await remove_entry(session, entry_id, actor=_list_actor(request))
    raise web.HTTPSeeOther("/console/reports/lists")
