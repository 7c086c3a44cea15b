"""Parsing Weibo's comments/to_me answers (pure) with malformed and hostile items."""

from __future__ import annotations

from typing import Any

import pytest

from bot.cases.weibo import comment_text, parse_comments


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("回复@示例市发布:路灯不亮了", "路灯不亮了"),
        ("@示例市发布 请问医保怎么交", "请问医保怎么交"),
        ("  ", ""),
    ],
)
def test_comment_text(raw: str, clean: str) -> None:
    assert comment_text(raw) == clean


def test_parse_comments_skips_garbage_and_sorts() -> None:
    good: dict[str, Any] = {"id": 12, "text": "第二条", "user": {"id": 5}, "status": {"id": 9}}
    data = {
        "comments": [
            good,
            {"idstr": "11", "text": "第一条", "user": {"idstr": "6"}, "status": {"idstr": "9"}},
            {"id": "x1", "text": "bad id", "status": {"id": 9}},
            {"id": 13, "text": None, "status": {"id": 9}},
            {"id": 14, "text": "no status"},
            "not a dict",
            {"id": 15, "text": "<script>" * 2000, "status": {"id": "9; drop"}},
        ]
    }
    parsed = parse_comments(data)
    assert [c["id"] for c in parsed] == ["11", "12"]
    assert parsed[0] == {"id": "11", "status_id": "9", "user": "6", "text": "第一条"}
    assert parse_comments({"comments": "nope"}) == [] and parse_comments({}) == []
