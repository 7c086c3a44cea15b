"""The annual report on open government information, 2021 format (国办公开办函〔2021〕30号).

A publishing system fills what it knows (proactive disclosure, normative documents,
interaction); everything else is a clearly marked field for staff. Pure rendering to HTML
(for the website's annual-report column), print-ready HTML (CSS @page) and CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from html import escape

from reports import charts
from reports.figures import Figures, comment_totals

STAFF = None  # a cell staff must fill in
STAFF_MARK = "【待填写】"
STAFF_MARK_EN = "[to be filled in by staff]"
Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    """One table of the report; ``None`` cells are left for staff."""

    key: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Section:
    """A numbered section: free text for staff and the tables filled automatically."""

    heading: str
    text: str | None  # None: staff write it
    tables: tuple[Table, ...] = ()


@dataclass(frozen=True)
class AnnualReport:
    """The whole report, ready to render."""

    year: int
    office_name: str
    sections: tuple[Section, ...]
    figures: Figures


# Table 3's rows as the 2021 format numbers them: outcomes with their coded reasons.
TABLE3_ROWS = (
    "一、本年新收政府信息公开申请数量",
    "二、上年结转政府信息公开申请数量",
    "三、本年度办理结果（一）予以公开",
    "三、本年度办理结果（二）部分公开（区分处理的，只计这一情形，不计其他情形）",
    "（三）不予公开 1.属于国家秘密",
    "（三）不予公开 2.其他法律行政法规禁止公开",
    "（三）不予公开 3.危及“三安全一稳定”",
    "（三）不予公开 4.保护第三方合法权益",
    "（三）不予公开 5.属于三类内部事务信息",
    "（三）不予公开 6.属于四类过程性信息",
    "（三）不予公开 7.属于行政执法案卷",
    "（三）不予公开 8.属于行政查询事项",
    "（四）无法提供 1.本机关不掌握相关政府信息",
    "（四）无法提供 2.没有现成信息需要另行制作",
    "（四）无法提供 3.补正后申请内容仍不明确",
    "（五）不予处理 1.信访举报投诉类申请",
    "（五）不予处理 2.重复申请",
    "（五）不予处理 3.要求提供公开出版物",
    "（五）不予处理 4.无正当理由大量反复申请",
    "（五）不予处理 5.要求行政机关确认或重新出具已获取信息",
    "（六）其他处理 1.申请人无正当理由逾期不补正、行政机关不再处理其政府信息公开申请",
    "（六）其他处理 2.申请人逾期未按收费通知要求缴纳费用、行政机关不再处理其政府信息公开申请",
    "（六）其他处理 3.其他",
    "（七）总计",
    "四、结转下年度继续办理",
)


def _pct(value: float | None) -> Cell:
    return None if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> Cell:
    return None if value is None else round(value, 2)


def build_report(year: int, office_name: str, figures: Figures) -> AnnualReport:
    """Fill the 2021-format report from the year's figures."""
    cats = figures.by_category
    proactive = Table(
        "proactive",
        "主动公开信息数量（按“5+1”分类）",
        ("分类", "本年公开条数"),
        (
            *((name, cats.get(key, 0)) for key, name in charts.CATEGORY_NAMES.items()),
            ("合计", figures.published),
        ),
    )
    channels = Table(
        "channels",
        "发布渠道",
        ("渠道账号", "本年发布条数"),
        tuple((target, n) for target, n in figures.by_channel.items()),
    )
    timeliness = Table(
        "timeliness",
        "公开时效与新闻发布",
        ("项目", "数值"),
        (
            ("新闻发布会（场）", figures.press_conferences),
            ("信息形成至公开平均用时（工作日）", _num(figures.average_disclosure_days)),
            ("超过20个工作日公开的信息（条）", len(figures.late_items)),
        ),
    )
    c = figures.cases
    interaction = Table(
        "interaction",
        "政民互动情况",
        ("项目", "数值"),
        (
            ("收到留言（件）", c.received if c else None),
            ("不予受理（件）", c.rejected if c else None),
            ("已答复（件）", c.answered if c else None),
            ("答复率", _pct(c.reply_rate) if c else None),
            ("答复用时中位数（工作日）", _num(c.median_reply_days) if c else None),
            ("答复用时第90百分位（工作日）", _num(c.p90_reply_days) if c else None),
            ("5个工作日内答复占比", _pct(c.within_5_share) if c else None),
            ("满意度（5分制）", _num(c.satisfaction) if c else None),
        ),
    )
    comment_rows = [*figures.comments, comment_totals(figures.comments)]
    comments = Table(
        "comments",
        "政务新媒体评论回复情况",
        ("账号", "收到评论（条）", "已屏蔽（条）", "已回复（条）", "回复率"),
        tuple(
            (
                "合计" if r.target == "all" else r.target,
                r.received,
                r.hidden,
                r.answered,
                "—" if r.answer_rate is None else _pct(r.answer_rate),
            )
            for r in comment_rows
        ),
    )
    table2 = Table(
        "table2",
        "第二十条第（一）项 规章和规范性文件",
        ("信息内容", "本年制发件数", "本年废止件数", "现行有效件数"),
        (
            ("规章", STAFF, STAFF, STAFF),
            (
                "行政规范性文件",
                figures.normative_issued,
                figures.normative_repealed,
                figures.normative_in_force,
            ),
        ),
    )
    table2b = Table(
        "table2b",
        "第二十条第（五）、（六）、（八）、（九）项",
        ("信息内容", "本年处理决定数量 / 金额"),
        (
            ("行政许可", STAFF),
            ("行政处罚", STAFF),
            ("行政强制", STAFF),
            ("行政事业性收费（万元）", STAFF),
        ),
    )
    table3 = Table(
        "table3",
        "收到和处理政府信息公开申请情况",
        (
            "申请情况（第一项与第二项之和等于第三项与第四项之和）",
            "自然人",
            "法人或其他组织·商业企业",
            "法人或其他组织·科研机构",
            "法人或其他组织·社会公益组织",
            "法人或其他组织·法律服务机构",
            "法人或其他组织·其他",
            "总计",
        ),
        tuple((label, *([STAFF] * 7)) for label in TABLE3_ROWS),
    )
    outcome = ("结果维持", "结果纠正", "其他结果", "尚未审结", "总计")
    table4 = Table(
        "table4",
        "政府信息公开行政复议、行政诉讼情况",
        (
            "",
            *(f"行政复议·{c}" for c in outcome),
            *(f"行政诉讼·未经复议直接起诉·{c}" for c in outcome),
            *(f"行政诉讼·复议后起诉·{c}" for c in outcome),
        ),
        (("件数", *((STAFF,) * 15)),),
    )
    sections = (
        Section("一、总体情况", None, (proactive, channels, timeliness, interaction, comments)),
        Section("二、主动公开政府信息情况", "", (table2, table2b)),
        Section("三、收到和处理政府信息公开申请情况", "", (table3,)),
        Section("四、政府信息公开行政复议、行政诉讼情况", "", (table4,)),
        Section("五、存在的主要问题及改进情况", None),
        Section("六、其他需要报告的事项", None),
    )
    return AnnualReport(year, office_name, sections, figures)


def _cell(value: Cell) -> str:
    if value is None:
        return f'<td class="staff-field">{STAFF_MARK}</td>'
    return f"<td>{escape(str(value))}</td>"


def _table_html(table: Table) -> str:
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in table.columns)
    rows = []
    for row in table.rows:
        first, *rest = row
        label = STAFF_MARK if first is None else escape(str(first))
        rows.append(f'<tr><th scope="row">{label}</th>{"".join(_cell(v) for v in rest)}</tr>')
    return (
        f'<table id="{table.key}"><caption>{escape(table.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


SCREEN_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;line-height:1.7;color:#111;
max-width:60em;margin:0 auto;padding:1em}
table{border-collapse:collapse;margin:1em 0;width:100%}
th,td{border:1px solid #555;padding:.3em .5em;text-align:left}
caption{font-weight:bold;text-align:left;padding:.3em 0}
.staff-field{background:#fff3cd;color:#5c4400;font-weight:bold}
.note{color:#444}
figure.chart svg{max-width:100%;height:auto}
"""
PRINT_CSS = """
@page{size:A4;margin:2.5cm 2cm;@bottom-center{content:counter(page)}}
@media print{body{max-width:none;padding:0;font-size:12pt}
h2{break-after:avoid}table,figure{break-inside:avoid}details{display:block}
details>summary{display:none}.no-print{display:none}}
"""


def render_html(report: AnnualReport, *, printable: bool = False, charts_on: bool = True) -> str:
    """The report as one HTML document (print-ready with ``printable``)."""
    title = f"{report.office_name}{report.year}年政府信息公开工作年度报告"
    body = [f"<h1>{escape(title)}</h1>"]
    body.append(
        '<p class="note">本报告依据《中华人民共和国政府信息公开条例》和国务院办公厅政府信息与政务'
        "公开办公室《中华人民共和国政府信息公开工作年度报告格式》（国办公开办函〔2021〕30号）编制。"
        f"标注“{STAFF_MARK}”的内容由工作人员填写，其余数据由系统根据发布和留言记录自动统计。</p>"
    )
    for section in report.sections:
        body.append(f"<section><h2>{escape(section.heading)}</h2>")
        if section.text is None:
            body.append(f'<p class="staff-field">{STAFF_MARK}</p>')
        elif section.text:
            body.append(f"<p>{escape(section.text)}</p>")
        for table in section.tables:
            body.append(_table_html(table))
        if charts_on and section.heading.startswith("一"):
            body.append(charts.monthly_publications(report.figures))
            body.append(charts.reply_times(report.figures))
            body.append(charts.account_activity(report.figures))
        body.append("</section>")
    for note in report.figures.notes:
        body.append(f'<p class="note">说明：{escape(note)}</p>')
    css = SCREEN_CSS + (PRINT_CSS if printable else "")
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="ArticleTitle" content="{escape(title)}">'
        f'<meta name="ColumnName" content="政府信息公开年报">'
        f"<title>{escape(title)}</title><style>{css}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>"
    )


def render_csv(report: AnnualReport) -> str:
    """The report's tables as CSV: section, table, row, column, value, source."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "table", "row", "column", "value", "source"])
    for section in report.sections:
        if section.text is None:
            writer.writerow([section.heading, "", "", "", STAFF_MARK, "staff"])
        for table in section.tables:
            for row in table.rows:
                label = "" if row[0] is None else str(row[0])
                for column, value in zip(table.columns[1:], row[1:], strict=True):
                    writer.writerow(
                        [
                            section.heading,
                            table.caption,
                            _csv_safe(label),
                            column,
                            STAFF_MARK if value is None else _csv_safe(str(value)),
                            "staff" if value is None else "auto",
                        ]
                    )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    # Spreadsheet formula injection: a cell starting with = + - @ is read as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
