"""Personal data: true positives and near misses on realistic Chinese text."""

from __future__ import annotations

import pytest

from publisher.checks.findings import Severity
from publisher.checks.personal import (
    find_personal_data,
    find_personal_matches,
    luhn_valid,
    mask_personal_data,
    mask_spans,
    valid_id_number,
)

VALID_ID = "341502198503120019"
VALID_ID_X = "11010519491231002X"
VALID_CARD = "6222021234567894"
VALID_CARD_19 = "6217000012345678907"


@pytest.mark.parametrize(
    "text,kind,value",
    [
        (f"当事人王某某，公民身份号码{VALID_ID}，因违法建设被处罚。", "id_number", VALID_ID),
        (f"身份证号：{VALID_ID_X}。", "id_number", VALID_ID_X),
        (f"身份证号：{VALID_ID_X.lower()}。", "id_number", VALID_ID_X.lower()),
        ("如有疑问请联系李先生，手机13812345678。", "mobile", "13812345678"),
        ("联系人手机：139-5641-2345", "mobile", "139-5641-2345"),
        ("电话+86 138 1234 5678转接", "mobile", "+86 138 1234 5678"),
        ("咨询电话：0564-3371234。", "landline", "0564-3371234"),
        ("值班电话（0564）3371234", "landline", "（0564）3371234"),
        (f"补助资金已打入其银行卡{VALID_CARD}。", "bank_card", VALID_CARD),
        ("账号6222 0212 3456 7894，户名张某。", "bank_card", "6222 0212 3456 7894"),
        (f"卡号{VALID_CARD_19}", "bank_card", VALID_CARD_19),
        ("申请人住址为幸福路88号3栋2单元501室。", "address", "幸福路88号3栋2单元501室"),
        ("家住光明小区5栋302室，", "address", "光明小区5栋302室"),
    ],
)
def test_true_positives(text: str, kind: str, value: str) -> None:
    matches = find_personal_matches(text)
    assert [(m.kind, m.value) for m in matches] == [(kind, value)]
    m = matches[0]
    assert text[m.start : m.end] == value


@pytest.mark.parametrize(
    "text",
    [
        # 18 digits with a valid date but a wrong check digit: not an ID number.
        "项目编号341502198503120018已登记。",
        # 18 digits, impossible birth date (month 13).
        "合同号341502198513120019",
        # 16 digits that fail Luhn: not a bank card.
        "订单号6222021234567895。",
        # Unified social credit code and index number: letters glue the digits.
        "统一社会信用代码11340000MB0000000X，索引号11340000MB0000000X/202401-00042",
        # A longer digit run is not a phone number.
        "流水号2023138123456789012345",
        # Hotlines, dates, amounts, document numbers.
        "请拨打12345政务服务便民热线，2024年1月5日发放资金1380000元，六医保〔2026〕3号",
        # An office address without unit or room.
        "地址：示例市人民路1号市政务服务中心",
        # A 12-digit number without an area-code separator.
        "编号056433712345",
    ],
)
def test_near_misses_are_not_flagged(text: str) -> None:
    assert find_personal_matches(text) == []


@pytest.mark.parametrize(
    "value,ok",
    [
        (VALID_ID, True),
        (VALID_ID_X, True),
        ("341502198503120018", False),
        ("341502180003120019", False),
        ("34150219850231001X", False),
        ("3415021985031200", False),
    ],
)
def test_id_checksum(value: str, ok: bool) -> None:
    assert valid_id_number(value) is ok


@pytest.mark.parametrize(
    "value,ok",
    [("79927398713", True), (VALID_CARD, True), ("6222021234567895", False), ("", False)],
)
def test_luhn(value: str, ok: bool) -> None:
    assert luhn_valid(value) is ok


def test_masking_keeps_length_and_separators() -> None:
    text = (
        f"身份证{VALID_ID_X}，手机13812345678，卡号6222 0212 3456 7894，"
        "电话0564-3371234，住址幸福路88号3栋2单元501室。"
    )
    masked = mask_personal_data(text)
    assert masked == (
        "身份证1101**********002X，手机138****5678，卡号6222 **** **** 7894，"
        "电话0564-*****34，住址幸福路**号*栋*单元***室。"
    )
    assert len(masked) == len(text)
    assert find_personal_matches(masked) == []


def test_masking_leaves_clean_text_alone() -> None:
    text = "请于2026年12月31日前到示例市人民路1号办理，咨询12345。"
    assert mask_personal_data(text) == text


def test_position_based_masking_ignores_stale_spans() -> None:
    text = "手机13812345678"
    assert mask_spans(text, [(2, 13, "mobile")]) == "手机138****5678"
    assert mask_spans(text, [(2, 99, "mobile"), (-1, 3, "mobile")]) == text


def test_findings_point_at_the_place_with_severity() -> None:
    text = "联系电话0564-3371234，手机13812345678"
    findings = find_personal_data(text, "body")
    assert [(f.code, f.severity, f.field, text[f.start : f.end]) for f in findings] == [
        ("personal_landline", Severity.WARNING, "body", "0564-3371234"),
        ("personal_mobile", Severity.ERROR, "body", "13812345678"),
    ]
    assert findings[1].suggestion == "138****5678"
    assert "13812345678" in findings[1].snippet


def test_hostile_and_oversized_input_is_fast_enough_and_safe() -> None:
    # Long digit and Chinese runs must not blow up the regexes.
    text = "1" * 100_000 + "路" * 50_000 + "号" * 1000
    assert find_personal_matches(text) == []
