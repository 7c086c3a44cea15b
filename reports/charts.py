"""Server-side SVG charts: readable without JavaScript, labelled for screen readers
(role="img", <title>, <desc>, aria-labelledby) and followed by the same data as a table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from reports.figures import AccountActivity, Figures

CATEGORY_NAMES = {
    "decision": "决策公开",
    "implementation": "执行公开",
    "management": "管理公开",
    "service": "服务公开",
    "results": "结果公开",
    "key_area": "重点领域",
}
# Colour-blind-safe palette (Okabe-Ito); every value is also printed in the table.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#555555")
_ID = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class Series:
    """One named row of values, one value per label."""

    name: str
    values: tuple[float, ...]


def _safe_id(text: str) -> str:
    return _ID.sub("-", text.lower())[:40] or "chart"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    return float(((int(value) // step) + 1) * step)


def _fmt(value: float) -> str:
    return f"{value:g}"


def data_table(caption: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """The chart's data as an accessible table (header cells with scope)."""
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in series)
    rows = []
    for i, label in enumerate(labels):
        cells = "".join(f"<td>{_fmt(s.values[i])}</td>" for s in series)
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{cells}</tr>')
    return (
        f'<table class="chart-data"><caption>{escape(caption)}</caption>'
        f'<thead><tr><th scope="col">项目</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def bar_chart(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 720,
    height: int = 320,
) -> str:
    """A stacked vertical bar chart as an SVG string."""
    cid = _safe_id(chart_id)
    left, right, top, bottom = 48, 16, 40, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    slot = plot_w / max(1, len(labels))
    bar_w = max(2.0, slot * 0.6)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for k in range(5):  # grid lines and axis values
        value = top_value * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            'stroke="#dddddd" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#333333">{_fmt(round(value, 1))}</text>'
        )
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        base = float(top + plot_h)
        for j, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top_value
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} '
                f"{escape(s.name)}：{_fmt(value)}</title></rect>"
            )
        if totals[i]:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{base - 4:.1f}" font-size="11" '
                f'text-anchor="middle" fill="#111111">{_fmt(totals[i])}</text>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" font-size="11" '
            f'text-anchor="middle" fill="#333333">{escape(label)}</text>'
        )
    if len(series) > 1:  # legend: the names are written out, not only coloured
        x = left
        for j, s in enumerate(series):
            parts.append(
                f'<rect x="{x}" y="{height - 22}" width="12" height="12" '
                f'fill="{PALETTE[j % len(PALETTE)]}"/>'
                f'<text x="{x + 16}" y="{height - 12}" font-size="12" fill="#111111">'
                f"{escape(s.name)}</text>"
            )
            x += 16 + 14 * len(s.name) + 18
    parts.append("</svg>")
    return "".join(parts)


def figure(
    chart_id: str, title: str, description: str, labels: Sequence[str], series: Sequence[Series]
) -> str:
    """The chart and its data table in one <figure>."""
    svg = bar_chart(chart_id, title, description, labels, series)
    table = data_table(title, labels, series)
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{svg}'
        f"<details><summary>数据表</summary>{table}</details></figure>"
    )


def monthly_publications(figures: Figures) -> str:
    """Publications per month, stacked by "5+1" category."""
    months = list(figures.by_month)
    series = [
        Series(name, tuple(float(figures.by_month[m].get(key, 0)) for m in months))
        for key, name in CATEGORY_NAMES.items()
    ]
    total = sum(figures.by_month[m].get(k, 0) for m in months for k in CATEGORY_NAMES)
    return figure(
        f"pubs-{figures.period.label}",
        f"{figures.period.label} 各月主动公开信息数（按“5+1”分类）",
        f"{len(months)}个月共公开{total}条信息，柱高为当月总数，颜色区分分类，数据见下表。",
        [m[5:] + "月" if len(months) > 1 else m for m in months],
        series,
    )


REPLY_BUCKETS = (
    ("0-1", 0, 1),
    ("2-3", 2, 3),
    ("4-5", 4, 5),
    ("6-10", 6, 10),
    ("11-15", 11, 15),
    (">15", 16, 10**9),
)


def reply_times(figures: Figures) -> str:
    """How many cases were answered within each number of working days."""
    days = figures.cases.reply_days if figures.cases else ()
    counts = tuple(float(sum(1 for d in days if lo <= d <= hi)) for _, lo, hi in REPLY_BUCKETS)
    within = sum(1 for d in days if d <= 5)
    return figure(
        f"reply-{figures.period.label}",
        f"{figures.period.label} 留言答复用时（工作日）",
        f"共答复{len(days)}件，其中{within}件在5个工作日内答复。",
        [f"{name}天" for name, _, _ in REPLY_BUCKETS],
        [Series("答复件数", counts)],
    )


def account_activity(figures: Figures) -> str:
    """Posts per WeChat/Weibo account; silent accounts are named in the labels."""
    accounts: Sequence[AccountActivity] = figures.accounts
    labels = [a.target + ("（停更）" if a.silent else "") for a in accounts]
    silent = [a.target for a in accounts if a.silent]
    desc = f"{len(accounts)}个账号。" + (
        f"连续两周未更新：{'、'.join(silent)}。" if silent else "所有账号两周内均有更新。"
    )
    return figure(
        f"accounts-{figures.period.label}",
        f"{figures.period.label} 政务新媒体账号发布数",
        desc,
        labels,
        [Series("发布条数", tuple(float(a.posts) for a in accounts))],
    )
