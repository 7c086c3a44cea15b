"""Leader names and titles: the longest listed name wins, and a listed title followed by
someone else's name is a warning; near misses stay quiet."""

from __future__ import annotations

import pytest

from publisher.checks.findings import Severity
from publisher.checks.lists import CheckLists, Leader
from publisher.checks.run import Checker

CHECKER = Checker(
    CheckLists(
        leaders=(
            Leader("张建国", "市长"),
            Leader("张建", "副市长"),
            Leader("李红梅", "常务副市长"),
            Leader("赵卫东", "市长", current=False),
        )
    )
)


def leader_findings(text: str) -> list[tuple[str, str]]:
    return [
        (f.code, text[f.start : f.end])
        for f in CHECKER.check_text(text, "body")
        if f.code.startswith("leader_")
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        # The longest listed name at a place: 张建国 (市长), not 张建 (副市长).
        ("市长张建国出席会议。", []),
        ("张建国市长出席会议。", []),
        ("副市长张建出席会议。", []),
        ("副市长张建国出席会议。", [("leader_title", "副市长张建国")]),
        ("市长张建出席会议。", [("leader_title", "市长张建")]),
        # A listed title followed by someone else's name.
        ("市长李四出席会议。", [("leader_name", "市长李四")]),
        ("市长王小明出席会议。", [("leader_name", "市长王小明")]),
        ("副市长刘洋主持会议。", [("leader_name", "副市长刘洋")]),
        ("市长张建国、副市长李四出席。", [("leader_name", "副市长李四")]),
        # A former holder is judged by the leader check, not as an unknown name.
        ("市长赵卫东到企业调研。", [("leader_former", "市长赵卫东")]),
        # Near misses: no name after the title, another title, or words that are no name.
        ("市长热线电话12345。", []),
        ("市长高度重视此项工作。", []),
        ("市长强调，要抓好落实。", []),
        ("市长于会上作出部署。", []),
        ("代市长李四出席会议。", []),  # 代市长 is not a listed title
        ("市委书记陈六出席会议。", []),  # nobody on the list holds it
        ("常务副市长李红梅主持会议。", []),
        ("市民张建国反映供暖问题。", []),
    ],
)
def test_leader_table(text: str, expected: list[tuple[str, str]]) -> None:
    assert leader_findings(text) == expected


def test_unknown_holder_is_a_warning_with_the_right_name() -> None:
    (finding,) = [
        f for f in CHECKER.check_text("市长李四出席会议", "title") if f.code == "leader_name"
    ]
    assert finding.severity == Severity.WARNING
    assert finding.suggestion == "张建国" and "张建国" in finding.message
    assert (finding.field, finding.start, finding.end) == ("title", 0, 4)


def test_several_holders_of_a_title_are_all_accepted() -> None:
    checker = Checker(
        CheckLists(
            leaders=(Leader("王立新", "副市长"), Leader("孙丽", "副市长"), Leader("张建国", "市长"))
        )
    )
    text = "副市长王立新、副市长孙丽和副市长周强出席。"
    found = [(f.code, text[f.start : f.end], f.suggestion) for f in checker.check_text(text, "b")]
    assert [f for f in found if f[0].startswith("leader")] == [
        ("leader_name", "副市长周强", "王立新、孙丽")
    ]


WORDS = Checker(
    CheckLists(
        banned_words=("最佳", "赌博"),
        sensitive_words=("上访",),
        allowed_words=("最佳实践", "反赌博", "信访上访"),
    )
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("本产品是全市最佳选择。", [("banned_word", "最佳")]),
        ("推广最佳实践案例。", []),  # an exception the office lists
        ("最佳实践与最佳方案。", [("banned_word", "最佳")]),  # only the second one
        ("开展反赌博宣传。", []),
        ("严禁赌博。", [("banned_word", "赌博")]),
        ("依法处理信访上访事项。", []),
        ("群众上访反映问题。", [("sensitive_word", "上访")]),
        ("最佳实", [("banned_word", "最佳")]),  # a near miss of the exception
    ],
)
def test_banned_word_exceptions(text: str, expected: list[tuple[str, str]]) -> None:
    found = [
        (f.code, text[f.start : f.end])
        for f in WORDS.check_text(text, "body")
        if f.code in ("banned_word", "sensitive_word")
    ]
    assert found == expected
    if expected == [("banned_word", "最佳")] and "最佳实践" in text:
        (finding,) = [f for f in WORDS.check_text(text, "body") if f.code == "banned_word"]
        assert finding.start == text.index("最佳方案")


def test_exceptions_need_a_banned_word_to_matter() -> None:
    assert Checker(CheckLists(allowed_words=("最佳实践",))).check_text("最佳实践", "b") == []
