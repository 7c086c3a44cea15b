"""The editable lists: parsing, validation and loading into the checker."""

from __future__ import annotations

import pytest

from publisher.checks.findings import Severity
from publisher.checks.lists import DEFAULT_TYPOS, Leader
from publisher.db import Database
from publisher.errors import ValidationError
from reports.lists import add_entry, import_lines, load_lists, parse_lines


@pytest.mark.parametrize(
    "kind,text,expected",
    [
        ("banned", "赌博\n\n# 注释\n  色情  \n", [("赌博", "", True), ("色情", "", True)]),
        ("typo", "布署=部署\n既使 = 即使", [("布署", "部署", True), ("既使", "即使", True)]),
        (
            "leader",
            "张建国,市长\n赵卫东，市长，former",
            [("张建国", "市长", True), ("赵卫东", "市长", False)],
        ),
        (
            "severity",
            "typo=error\npunctuation=off",
            [("typo", "error", True), ("punctuation", "off", True)],
        ),
    ],
)
def test_parse_lines(kind: str, text: str, expected: list[tuple[str, str, bool]]) -> None:
    assert parse_lines(kind, text) == expected


@pytest.mark.parametrize(
    "kind,text,line",
    [
        ("typo", "布署=部署\n既使", "line 2"),
        ("typo", "部署=部署", "line 1"),
        ("leader", "张建国", "line 1"),
        ("leader", "张建国,市长,retired", "line 1"),
        ("severity", "typo=fatal", "line 1"),
        ("severity", "nothing=error", "line 1"),
        ("banned", "ok\n" + "长" * 101, "line 2"),
        ("banned", "坏\x07词", "line 1"),
    ],
)
def test_bad_lines_name_the_line(kind: str, text: str, line: str) -> None:
    with pytest.raises(ValidationError, match=line):
        parse_lines(kind, text)


def test_unknown_list_and_too_many_lines() -> None:
    with pytest.raises(ValidationError, match="unknown list"):
        parse_lines("secret", "x")
    with pytest.raises(ValidationError, match="at most"):
        parse_lines("banned", "词\n" * 100_001)


async def test_stored_lists_feed_the_checker(db: Database) -> None:
    async with db.transaction() as session:
        assert await import_lines(session, "banned", "赌博\n赌博\n色情") == 3
        await import_lines(session, "typo", "布署=部署\n即然=既然")
        await import_lines(session, "typo", "布署=布置")  # replaces the earlier correction
        await add_entry(session, "leader", "张建国", "市长")
        await add_entry(session, "leader", "赵卫东", "市长", current=False)
        await add_entry(session, "severity", "typo", "error")
        await add_entry(session, "severity", "typo", "warning")
    async with db.sessions() as session:
        lists = await load_lists(session)
    assert lists.banned_words == ("赌博", "色情")
    assert lists.typos["布署"] == "布置" and lists.typos["即然"] == "既然"
    assert set(DEFAULT_TYPOS) <= set(lists.typos)
    assert lists.leaders == (Leader("张建国", "市长"), Leader("赵卫东", "市长", False))
    assert lists.severities == {"typo": Severity.WARNING}


class _Draft:
    id = 1
    title = "通知"
    summary = ""
    body_html = "<p>严禁赌博，远离色情。</p>"
    channels = ("website",)


async def test_checker_is_cached_until_the_lists_change(db: Database) -> None:
    from reports.lists import checker_for, content_checks, remove_entry

    async with db.transaction() as session:
        await import_lines(session, "banned", "赌博")
    async with db.sessions() as session:
        first = await checker_for(session)
        again = await checker_for(session)
        assert first is again  # no change: the automaton is not rebuilt
        assert [f.snippet for f in await content_checks(session, _Draft())] == [
            "严禁赌博，远离色情。"
        ]
    # Another process (its own engine) changes the list: this one sees it at once.
    other = Database(db.url)
    try:
        async with other.transaction() as session:
            entry = await add_entry(session, "banned", "色情")
    finally:
        await other.dispose()
    async with db.sessions() as session:
        second = await checker_for(session)
        assert second is not first
        words = [
            _Draft.body_html[3:][f.start : f.end] for f in await content_checks(session, _Draft())
        ]
    assert words == ["赌博", "色情"]
    # An edit in place (same entry, new value) and a removal are seen as well.
    async with db.transaction() as session:
        await add_entry(session, "severity", "banned_word", "warning")
    async with db.sessions() as session:
        graded = {f.severity for f in await content_checks(session, _Draft())}
    assert graded == {Severity.WARNING}
    async with db.transaction() as session:
        await add_entry(session, "severity", "banned_word", "error")
    async with db.sessions() as session:
        graded = {f.severity for f in await content_checks(session, _Draft())}
    assert graded == {Severity.ERROR}
    async with db.transaction() as session:
        await remove_entry(session, entry.id)
    async with db.sessions() as session:
        codes = [f.code for f in await content_checks(session, _Draft())]
    assert codes == ["banned_word"]


async def test_stored_exceptions_reach_the_checker(db: Database) -> None:
    from reports.lists import content_checks

    class Draft:
        id = 2
        title = "推广最佳实践"
        summary = ""
        body_html = "<p>本方案为最佳方案。</p>"
        channels = ("website",)

    async with db.transaction() as session:
        await import_lines(session, "banned", "最佳")
        assert await import_lines(session, "allowed", "最佳实践\n# 注释") == 1
    async with db.sessions() as session:
        lists = await load_lists(session)
        found = [(f.field, f.code) for f in await content_checks(session, Draft())]
    assert lists.allowed_words == ("最佳实践",)
    assert found == [("body", "banned_word")]  # the title's 最佳实践 is an exception
