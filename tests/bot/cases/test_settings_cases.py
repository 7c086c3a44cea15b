"""The ``[cases]`` settings: defaults, environment overrides and clear errors."""

from __future__ import annotations

import pytest

from bot.cases.service import CaseRules
from govcast.settings import SettingsError, load_settings


def test_defaults_and_rules() -> None:
    settings = load_settings(env={})
    rules = CaseRules.from_settings(settings)
    assert (
        rules.reply_working_days,
        rules.extension_working_days,
        rules.max_total_working_days,
        rules.max_months,
    ) == (5, 5, 15, 3)
    assert "重复留言" in rules.reject_reasons and str(rules.zone) == "Asia/Shanghai"


def test_environment_lists() -> None:
    settings = load_settings(
        env={
            "GOVCAST_CASES__REJECT_REASONS": "广告, 重复 ,",
            "GOVCAST_CASES__REPLY_WORKING_DAYS": "3",
        }
    )
    assert settings.cases.reject_reasons == ("广告", "重复")
    assert settings.cases.reply_working_days == 3


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"cases.reply_working_days": 0}, "cases.reply_working_days"),
        ({"cases.max_total_working_days": 2}, "cases.max_total_working_days"),
        ({"cases.reject_reasons": "广告"}, "cases.reject_reasons"),
        ({"cases.reject_reasons": ["", "x"]}, "cases.reject_reasons"),
        ({"cases.departments": [1, 2]}, "cases.departments[0]"),
        ({"cases.unknown": 1}, "cases.unknown"),
        ({"cases.extension_working_days": -1}, "cases.extension_working_days"),
    ],
)
def test_bad_values_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, overrides=overrides)
    assert info.value.key == key
