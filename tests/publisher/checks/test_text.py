"""Listed words, leaders, typos, punctuation, alt text and lengths on realistic text."""

from __future__ import annotations

import pytest

from publisher.checks.findings import Severity
from publisher.checks.lists import CheckLists, Leader
from publisher.checks.run import Checker, CheckSubject, run_checks

LEADERS = (
    Leader("张建国", "市长"),
    Leader("李红梅", "常务副市长"),
    Leader("王立新", "副市长"),
    Leader("赵卫东", "市长", current=False),
    Leader("王立新", "秘书长", current=False),
)
LISTS = CheckLists(
    banned_words=("国家级最佳", "赌博网站"),
    sensitive_words=("群体性事件",),
    leaders=LEADERS,
)
CHECKER = Checker(LISTS)


def codes(text: str) -> list[tuple[str, str]]:
    return [(f.code, text[f.start : f.end]) for f in CHECKER.check_text(text, "body")]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("本产品荣获国家级最佳称号。", [("banned_word", "国家级最佳")]),
        ("妥善处置群体性事件", [("sensitive_word", "群体性事件")]),
        ("市长张建国出席会议并讲话。", []),
        ("张建国市长出席会议。", []),
        ("常务副市长李红梅主持会议。", []),
        ("副市长李红梅主持会议。", []),  # a shorter form of the right title
        ("副市长张建国出席会议。", [("leader_title", "副市长张建国")]),
        ("市长李红梅主持会议。", [("leader_title", "市长李红梅")]),
        ("王立新秘书长陪同调研。", [("leader_title", "王立新秘书长")]),
        ("市长赵卫东到企业调研。", [("leader_former", "市长赵卫东")]),
        # Names in other contexts: never flagged.
        ("市民张建国反映小区供暖问题。", []),
        ("赵卫东同志的来信已转交相关部门。", []),
        ("要认真布署，抓好落实。", [("typo", "布署")]),
        ("截止目前，已完成80%。", [("typo", "截止目前")]),
        ("要认真部署，截至目前已完成。", []),
    ],
)
def test_words_leaders_typos(text: str, expected: list[tuple[str, str]]) -> None:
    assert [c for c in codes(text) if c[0] != "punctuation"] == expected


def test_typo_suggestion_and_severities() -> None:
    findings = CHECKER.check_text("要认真布署。本产品国家级最佳。", "body")
    by_code = {f.code: f for f in findings}
    assert by_code["typo"].suggestion == "部署" and by_code["typo"].severity == Severity.WARNING
    assert by_code["banned_word"].severity == Severity.ERROR


@pytest.mark.parametrize(
    "text,expected",
    [
        ("各有关单位,请于12月31日前报送材料.", [",", "."]),
        ("关于印发《管理办法(试行)》的通知", ["(", ")"]),
        ("请问如何办理?", ["?"]),
        ("办理时间:工作日", [":"]),
        ("办理地点在１２号窗口", ["１２"]),
        # Near misses: numbers, times, URLs, English.
        ("办理时间为9:00至17:00，共计1,000人，增长3.5%。", []),
        ("详见http://www.example.gov.cn/a,b?x=1。", []),
        ("The Office (English version), see below.", []),
        ("请登录www.example.gov.cn查询。", []),
    ],
)
def test_punctuation(text: str, expected: list[str]) -> None:
    findings = [
        f for f in CHECKER.check_text(text, "body") if f.code in ("punctuation", "fullwidth_alnum")
    ]
    assert [text[f.start : f.end] for f in findings] == expected


def subject(**kw: object) -> CheckSubject:
    values: dict[str, object] = {
        "title": "关于开展2026年度医保缴费的通知",
        "summary": "",
        "body_html": "<p>正文。</p>",
        "channels": ("website",),
    }
    values.update(kw)
    return CheckSubject(**values)  # type: ignore[arg-type]


def test_missing_alt_points_at_the_tag() -> None:
    html = '<p>见下图。</p><img src="/media/a.png"><img src="/b.png" alt="示意图"><img src="c.png" alt=" ">'
    findings = [f for f in run_checks(subject(body_html=html)) if f.code == "missing_alt"]
    assert [html[f.start : f.end] for f in findings] == [
        '<img src="/media/a.png">',
        '<img src="c.png" alt=" ">',
    ]
    assert all(f.field == "body_html" for f in findings)


@pytest.mark.parametrize(
    "body_chars,summary_chars,flagged",
    [(4999, 300, False), (4999, 301, True), (5000, 500, False), (5000, 501, True)],
)
def test_summary_length_rule(body_chars: int, summary_chars: int, flagged: bool) -> None:
    html = "<p>" + "文" * body_chars + "</p>"
    findings = run_checks(subject(body_html=html, summary="要" * summary_chars))
    assert any(f.code == "summary_length" for f in findings) is flagged


@pytest.mark.parametrize(
    "title,channels,expected",
    [
        ("标" * 32, ("website", "wechat:main"), []),
        ("标" * 33, ("website", "wechat:main"), [("wechat_title_length", Severity.ERROR)]),
        ("标" * 33, ("website",), []),
        ("标" * 141, ("website", "weibo:main"), [("weibo_text_length", Severity.ERROR)]),
        ("标" * 100, ("website", "weibo:main"), [("weibo_text_length", Severity.WARNING)]),
        ("标" * 100, None, []),
    ],
)
def test_channel_limits(
    title: str, channels: tuple[str, ...] | None, expected: list[tuple[str, Severity]]
) -> None:
    findings = run_checks(subject(title=title, summary="概" * 60, channels=channels))
    assert [(f.code, f.severity) for f in findings if "length" in f.code] == expected


def test_severity_is_configurable_and_can_switch_checks_off() -> None:
    lists = CheckLists(
        typos={"布署": "部署"}, severities={"typo": Severity.ERROR, "punctuation": Severity.OFF}
    )
    findings = run_checks(subject(body_html="<p>认真布署,抓好落实</p>"), lists)
    assert [(f.code, f.severity) for f in findings] == [("typo", Severity.ERROR)]


def test_findings_are_ordered_by_field_and_offset_with_body_offsets_in_plain_text() -> None:
    html = "<p>请联系<strong>13812345678</strong>。</p>"
    findings = run_checks(subject(title="手机13812345678", body_html=html))
    assert [(f.field, f.code) for f in findings] == [
        ("title", "personal_mobile"),
        ("body", "personal_mobile"),
    ]
    from publisher.checks.run import body_text

    body = findings[1]
    assert body_text(html)[body.start : body.end] == "13812345678"


def test_empty_lists_and_empty_text() -> None:
    assert run_checks(CheckSubject(title="", summary="", body_html="")) == []
    assert Checker(CheckLists(typos={})).check_text("", "body") == []
