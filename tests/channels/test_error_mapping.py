"""Error-mapping tables: every platform code becomes the right typed error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.base import ConfigurationError, PermanentError, TransientError, WaitForWindow
from channels.wechat import mass_status_error, publish_status_error
from channels.wechat_api import seconds_to_next_day, wechat_error
from channels.weibo_api import weibo_error

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 23:00 in Beijing


@pytest.mark.parametrize(
    ("code", "kind", "retry_after"),
    [
        (-1, TransientError, None),
        (40001, TransientError, None),
        (40014, TransientError, None),
        (42001, TransientError, None),
        (45009, TransientError, "next_day"),
        (45011, TransientError, 60.0),
        # Out of mass-send quota: a wait for the window, not a failed attempt.
        (45028, WaitForWindow, "next_day"),
        (48001, ConfigurationError, None),
        (40013, ConfigurationError, None),
        (40125, ConfigurationError, None),
        (40164, ConfigurationError, None),
        (45103, PermanentError, None),
        (53503, PermanentError, None),
        (45065, PermanentError, None),
        (88000, PermanentError, None),
        (99999, PermanentError, None),
    ],
)
def test_wechat_errcodes(code: int, kind: type, retry_after: object) -> None:
    error = wechat_error(code, "platform says <b>no</b>\x00", what="draft/add", now=NOW)
    assert type(error) is kind
    assert error.code == code
    assert f"errcode {code}" in error.message and "draft/add" in error.message
    assert "\x00" not in error.message
    if retry_after == "next_day":
        assert isinstance(error, TransientError)
        assert error.retry_after == pytest.approx(seconds_to_next_day(NOW))
        assert 3600 <= (error.retry_after or 0) <= 3700  # midnight Beijing is an hour away
    elif retry_after is not None:
        assert isinstance(error, TransientError) and error.retry_after == retry_after
    if code == 48001:
        assert "verified" in error.message


@pytest.mark.parametrize(
    ("code", "kind", "retry_after"),
    [
        (10022, TransientError, 600.0),
        (10023, TransientError, 900.0),
        (10024, TransientError, 600.0),
        (20016, TransientError, 120.0),
        (10001, TransientError, None),
        (10017, ConfigurationError, None),
        (21327, ConfigurationError, None),
        (21321, ConfigurationError, None),
        (10014, ConfigurationError, None),
        (21332, ConfigurationError, None),
        (20012, PermanentError, None),
        (20019, PermanentError, None),
        (20017, PermanentError, None),
        (20111, PermanentError, None),
        (20101, PermanentError, None),
        (123456, PermanentError, None),
    ],
)
def test_weibo_error_codes(code: int, kind: type, retry_after: float | None) -> None:
    error = weibo_error(code, "error text", what="statuses/share.json")
    assert type(error) is kind and error.code == code
    assert f"error_code {code}" in error.message
    if retry_after is not None:
        assert isinstance(error, TransientError) and error.retry_after == retry_after


@pytest.mark.parametrize(
    ("status", "fails", "words"),
    [
        (0, False, ""),
        (1, False, ""),
        (2, True, "原创"),
        (3, True, "失败"),
        (4, True, "审核"),
        (5, True, "删除"),
        (6, True, "封禁"),
        (7, True, "未知"),
    ],
)
def test_publish_status_table(status: int, fails: bool, words: str) -> None:
    error = publish_status_error(status)
    assert (error is not None) == fails
    if error is not None:
        assert isinstance(error, PermanentError)
        assert words in error.message and f"publish_status {status}" in error.message


@pytest.mark.parametrize(
    ("status", "fails"),
    [
        ("send success", False),
        ("SEND_SUCCESS", False),
        ("SENDING", False),
        ("send fail", True),
        ("err(10001)", True),
        ("DELETE", True),
    ],
)
def test_mass_status_table(status: str, fails: bool) -> None:
    assert (mass_status_error(status) is not None) == fails
