"""Pure parts of the comments inbox: parsing platform answers (malformed and hostile
items), reply limits, states, polling pace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.comments import service
from bot.comments.models import Comment
from publisher.errors import ValidationError


def test_parse_wechat_skips_garbage() -> None:
    data: dict[str, Any] = {
        "comment": [
            {
                "user_comment_id": 3,
                "openid": "o1",
                "create_time": 1700000000,
                "content": "<script>x</script>",
                "comment_type": 1,
                "reply": {"content": "已答复"},
            },
            {"user_comment_id": "x", "content": "bad id"},
            {"user_comment_id": 4, "content": ""},
            {"user_comment_id": True, "content": "bool id"},
            "nope",
            {"user_comment_id": 5, "content": "a\x00b" * 5000, "create_time": "garbage"},
        ]
    }
    parsed = service.parse_wechat(data)
    assert [p.remote_id for p in parsed] == ["3", "5"]
    assert parsed[0].featured and parsed[0].reply_text == "已答复"
    assert parsed[0].text == "<script>x</script>"  # stored as is, escaped when shown
    assert "\x00" not in parsed[1].text and len(parsed[1].text) == service.MAX_TEXT
    assert service.parse_wechat({"comment": "x"}) == [] and service.parse_wechat({}) == []


def test_parse_weibo_leaves_out_our_own_replies() -> None:
    owner = {"id": 99}
    data: dict[str, Any] = {
        "comments": [
            {
                "id": 12,
                "text": "网友",
                "user": {"id": 5, "screen_name": "网友0005"},
                "status": {"id": 1, "user": owner},
            },
            {
                "id": 13,
                "text": "我们的回复",
                "user": owner,
                "status": {"id": 1, "user": owner},
                "reply_comment": {"id": 12},
            },
            {"id": 11, "text": "更早", "user": {"id": 6}, "status": {"id": 1, "user": owner}},
            {"id": "1; drop", "text": "bad"},
            None,
        ]
    }
    assert [r.remote_id for r in service.parse_weibo(data)] == ["11", "12"]
    assert service.our_weibo_replies(data) == {"12": "我们的回复"}


@pytest.mark.parametrize(
    ("platform", "text", "ok"),
    [
        ("weibo", "好", True),
        ("weibo", "字" * 141, False),
        ("wechat", "字" * 600, True),
        ("wechat", "字" * 601, False),
        ("wechat", "   ", False),
        ("wechat", 5, False),
    ],
)
def test_reply_limits(platform: str, text: Any, ok: bool) -> None:
    if ok:
        assert service.reply_text(platform, text)
    else:
        with pytest.raises(ValidationError):
            service.reply_text(platform, text)


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, "new"),
        ({"reply_text": "r"}, "answered"),
        ({"featured": True, "reply_text": "r"}, "featured"),
        ({"case_id": 3, "featured": True}, "case"),
        ({"hidden": True, "case_id": 3}, "hidden"),
    ],
)
def test_state_precedence(fields: dict[str, Any], state: str) -> None:
    values: dict[str, Any] = {
        "hidden": False,
        "featured": False,
        "case_id": None,
        "reply_text": None,
        **fields,
    }
    assert service.state_of(Comment(**values)) == state


def test_newer_items_are_read_more_often() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    fresh = timedelta(days=3)
    assert service.poll_interval(now - timedelta(days=1), now, fresh, 60, 3600).seconds == 60
    assert service.poll_interval(now - timedelta(days=5), now, fresh, 60, 3600).seconds == 3600


def test_public_text_masks_personal_data() -> None:
    comment = Comment(text="我的电话13912345678，身份证11010519491231002X")
    shown = service.public_text(comment)
    assert "13912345678" not in shown and "11010519491231002X" not in shown
    assert shown.startswith("我的电话")


def test_parse_backfill() -> None:
    assert service.parse_backfill("4990000000000123:4990000000000007") == (
        4990000000000123,
        4990000000000007,
    )
    for bad in (None, "", "12", "12:", ":5", "x:5", "12:5x", "1:2:3"):
        assert service.parse_backfill(bad) is None, bad


def test_unknown_inbox_state_is_refused() -> None:
    with pytest.raises(ValidationError):
        service.state_condition("deleted")
