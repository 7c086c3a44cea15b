"""Fitting automatic comment answers to Weibo's 140 characters (pure), and the answer
lookup's order and switches against a real database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.comments.answers import WEIBO_LIMIT, Answerer, absolute, fit, plain, see_also
from bot.keywords import RuleCache, add_rule
from publisher.db import Database

URL = "https://www.example.gov.cn/disclosure/11340000MB0000000X/202611-00001"


def test_plain_drops_control_and_direction_characters() -> None:
    assert plain("a\x00b\x07c\u202ed\n\te  f") == "a b c d e f"
    assert plain(None) == "" and plain(12) == ""
    assert plain("<b>&amp;</b>") == "<b>&amp;</b>"  # nothing escaped or unescaped


def test_fit_keeps_short_text_and_cuts_long_text_keeping_the_link() -> None:
    assert fit("医保缴费请见官网") == "医保缴费请见官网"
    long = "很长的答复" * 40 + " " + URL + " 以上"
    fitted = fit(long)
    assert len(fitted) <= WEIBO_LIMIT and fitted.endswith(URL) and "…" in fitted
    assert len(fit("字" * 500)) == WEIBO_LIMIT
    assert fit("正文", url="https://x.example/" + "a" * 200) == ""  # the link alone is too long
    with_url = fit("标题" * 100, url=URL)
    assert len(with_url) <= WEIBO_LIMIT and with_url.endswith(" " + URL)


@pytest.mark.parametrize(
    "title",
    [
        "关于医保缴费的通知",
        '<script>alert("x")</script> & 通知',
        "长" * 300,
        "a\x00b\u202e标题",
    ],
)
def test_see_also_fits_and_escapes_nothing(title: str) -> None:
    text = see_also(title, URL)
    assert len(text) <= WEIBO_LIMIT and text.endswith("》：" + URL)
    assert "&amp;" not in text and "&lt;" not in text
    assert "\x00" not in text and "\u202e" not in text
    if len(title) < 50 and "\x00" not in title:
        assert text == f"请参阅《{title}》：{URL}"
    assert see_also("标题", "https://x.example/" + "a" * 200) == ""
    assert see_also("Title", URL, language="en") == f'See "Title": {URL}'


def test_absolute() -> None:
    assert (
        absolute("http://127.0.0.1:8080/", "/disclosure/1") == "http://127.0.0.1:8080/disclosure/1"
    )
    assert absolute("http://a", URL) == URL


@dataclass
class _Hit:
    title: str
    url: str
    publication_id: int = 7


@dataclass
class _Results:
    items: list[Any] = field(default_factory=list)


async def test_answerer_rules_first_then_search_with_switches(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with db.transaction() as session:
        manual = await add_rule(
            session, match="contains", pattern="医保", reply_text="医保请见官网"
        )
        auto = await add_rule(session, match="exact", pattern="公积金", reply_text="公积金请见官网")
        news = await add_rule(
            session,
            match="contains",
            pattern="招聘",
            reply_news=[{"title": "2026年招聘公告", "url": "http://gov.example/disclosure/9"}],
        )
    queries: list[str] = []

    async def search(_db: Database, query: str, *, limit: int = 10) -> _Results:
        queries.append(query)
        if "养老" in query:
            return _Results([_Hit("养老保险通知", "/disclosure/2")])
        if "出错" in query:
            raise RuntimeError("index down: 出错了 13812345678")
        return _Results()

    answers = Answerer(
        db,
        RuleCache(db, 0.0),
        base_url="http://gov.example",
        auto_rules=[auto.id],
        search_automatic=False,
        search=search,
    )
    got = await answers.find("main", "请问医保养老怎么办")
    # A rule the office keeps manual wins over search, as on WeChat, and stays manual.
    assert got is not None and (got.source, got.automatic, got.rule_id) == (
        "rule",
        False,
        manual.id,
    )
    got = await answers.find("main", "公积金")
    assert got is not None and got.automatic and got.text == "公积金请见官网"
    got = await answers.find("main", "招聘什么时候开始")
    assert got is not None and got.rule_id == news.id and not got.automatic
    assert got.text == "请参阅《2026年招聘公告》：http://gov.example/disclosure/9"
    got = await answers.find("main", "城乡养老保险")
    assert got is not None and got.source == "search" and not got.automatic
    assert got.text == "请参阅《养老保险通知》：http://gov.example/disclosure/2"
    assert got.publication_id == 7
    assert await answers.find("main", "养老") is None  # too short to answer by search
    assert await answers.find("main", "搜索出错了怎么办") is None  # search failure: no answer
    assert "13812345678" not in caplog.text and "出错" not in caplog.text
    assert await answers.find("main", "") is None
    assert all(len(q) <= 30 for q in queries)
    on = Answerer(
        db, RuleCache(db, 0.0), base_url="http://gov.example", search_automatic=True, search=search
    )
    got = await on.find("main", "城乡养老保险" + "很长" * 50)
    assert got is not None and got.automatic
