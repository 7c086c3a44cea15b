"""Annual report rendering and the accessible SVG charts (pure functions, tables)."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reports import annual, charts
from reports.figures import AccountActivity, CaseFigures, Figures
from reports.periods import parse_period

SVG_NS = "{http://www.w3.org/2000/svg}"


def figures(**kw: object) -> Figures:
    period = parse_period("2025")
    by_month = {m: {c: 0 for c in charts.CATEGORY_NAMES} for m in period.months()}
    by_month["2025-03"]["service"] = 4
    by_month["2025-03"]["decision"] = 2
    by_month["2025-11"]["results"] = 1
    base = Figures(
        period=period,
        office_key=None,
        account=None,
        published=7,
        by_category={
            "decision": 2,
            "implementation": 0,
            "management": 0,
            "service": 4,
            "results": 1,
            "key_area": 0,
        },
        by_kind={"disclosure": 7},
        by_channel={"website": 7, "wechat:main": 3},
        by_issuing_body={"示例市医疗保障局": 7},
        by_month=by_month,
        press_conferences=2,
        normative_issued=3,
        normative_repealed=1,
        normative_in_force=12,
        average_disclosure_days=4.5,
        late_items=[],
        hits=100,
        top_hits=[],
        cases=CaseFigures(
            received=10,
            rejected=2,
            answered=6,
            reply_rate=0.75,
            median_reply_days=3.0,
            p90_reply_days=9.0,
            within_5_share=0.5,
            satisfaction=4.25,
            rated=4,
            reply_days=(1, 2, 3, 4, 9, 20),
        ),
        accounts=[
            AccountActivity("wechat:main", 3, datetime(2025, 12, 30, tzinfo=UTC), False, 0.06),
            AccountActivity("weibo:main", 0, None, True, 0.0),
        ],
        columns=None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_report_fills_known_tables_and_marks_staff_fields() -> None:
    report = annual.build_report(2025, "示例市人民政府办公室", figures())
    html = annual.render_html(report)
    assert html.startswith("<!DOCTYPE html>") and 'lang="zh-CN"' in html
    assert "示例市人民政府办公室2025年政府信息公开工作年度报告" in html
    # Table 2: normative documents issued / repealed / in force.
    assert '<th scope="row">行政规范性文件</th><td>3</td><td>1</td><td>12</td>' in html
    assert '<th scope="row">规章</th><td class="staff-field">【待填写】</td>' in html
    assert '<th scope="row">答复率</th><td>75.0%</td>' in html
    assert html.count("【待填写】") >= 30
    assert "<script" not in html and "@page" not in html
    assert "@page" in annual.render_html(report, printable=True)


def test_csv_has_every_cell_with_its_source() -> None:
    report = annual.build_report(2025, "办公室", figures())
    rows = list(csv.DictReader(io.StringIO(annual.render_csv(report))))
    normative = [r for r in rows if r["row"] == "行政规范性文件"]
    assert [(r["column"], r["value"], r["source"]) for r in normative] == [
        ("本年制发件数", "3", "auto"),
        ("本年废止件数", "1", "auto"),
        ("现行有效件数", "12", "auto"),
    ]
    assert any(r["source"] == "staff" and r["value"] == "【待填写】" for r in rows)
    assert {r["source"] for r in rows} == {"auto", "staff"}


def test_application_and_review_tables_follow_the_2021_layout() -> None:
    report = annual.build_report(2025, "办公室", figures())
    tables = {t.key: t for section in report.sections for t in section.tables}
    table3, table4 = tables["table3"], tables["table4"]
    labels = [row[0] for row in table3.rows]
    # New + carried over, the coded outcomes (一 to 七), carried forward: 25 rows.
    assert len(labels) == 25
    assert labels[0].startswith("一、本年新收") and labels[-1] == "四、结转下年度继续办理"
    assert sum(label.startswith("（三）不予公开") for label in labels) == 8
    assert sum(label.startswith("（四）无法提供") for label in labels) == 3
    assert sum(label.startswith("（五）不予处理") for label in labels) == 5
    assert sum(label.startswith("（六）其他处理") for label in labels) == 3
    # Applicant types: natural persons, five kinds of organisation, total.
    assert len(table3.columns) == 8 and all(len(row) == 8 for row in table3.rows)
    # Review, litigation without review, litigation after review: 5 outcomes each.
    assert len(table4.columns) == 16
    assert sum(c.endswith("·总计") for c in table4.columns) == 3
    assert all(cell is annual.STAFF for row in (*table3.rows, *table4.rows) for cell in row[1:])
    rows = list(csv.DictReader(io.StringIO(annual.render_csv(report))))
    assert sum(r["table"] == table3.caption for r in rows) == 25 * 7
    assert any(r["column"] == "行政诉讼·复议后起诉·尚未审结" for r in rows)


def test_csv_neutralises_formulas_and_html_escapes_hostile_names() -> None:
    hostile = figures(by_channel={'=HYPERLINK("http://x")': 1, "<script>alert(1)</script>": 2})
    report = annual.build_report(2025, "<b>办公室</b>", hostile)
    text = annual.render_csv(report)
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text
    html = annual.render_html(report)
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "<b>办公室" not in html


@pytest.mark.parametrize(
    "render", [charts.monthly_publications, charts.reply_times, charts.account_activity]
)
def test_charts_are_accessible_svg_with_data_tables(render: object) -> None:
    html = render(figures())  # type: ignore[operator]
    svg = html[html.index("<svg") : html.index("</svg>") + 6]
    root = ET.fromstring(svg)  # noqa: S314 - our own output, checked for well-formedness
    assert root.get("role") == "img"
    title = root.find(f"{SVG_NS}title")
    desc = root.find(f"{SVG_NS}desc")
    assert title is not None and desc is not None and title.text and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert "<script" not in html and "<table" in html and 'scope="col"' in html


def test_chart_values_match_the_figures() -> None:
    html = charts.monthly_publications(figures())
    assert "<title>03月 服务公开：4</title>" in html and "<title>03月 决策公开：2</title>" in html
    replies = charts.reply_times(figures())
    # Buckets 0-1, 2-3, 4-5, 6-10, 11-15, >15 working days.
    table = replies[replies.index("<table") :]
    for bucket, count in [
        ("0-1", 1),
        ("2-3", 2),
        ("4-5", 1),
        ("6-10", 1),
        ("11-15", 0),
        (">15", 1),
    ]:
        assert f'<th scope="row">{bucket.replace(">", "&gt;")}天</th><td>{count}</td>' in table
    assert "共答复6件，其中4件在5个工作日内答复" in replies
    accounts = charts.account_activity(figures())
    assert "weibo:main（停更）" in accounts and "连续两周未更新：weibo:main" in accounts


def test_empty_figures_render() -> None:
    empty = figures(
        by_month={"2025-01": {c: 0 for c in charts.CATEGORY_NAMES}}, cases=None, accounts=[]
    )
    for render in (charts.monthly_publications, charts.reply_times, charts.account_activity):
        html = render(empty)
        svg = html[html.index("<svg") : html.index("</svg>") + 6]
        assert ET.fromstring(svg).get("role") == "img"  # noqa: S314 - our own output
