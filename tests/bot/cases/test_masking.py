"""Personal data in realistic citizens' messages is masked before publication."""

from __future__ import annotations

import pytest

from bot.cases.masking import detect_names, mask_text

ID = "341501199003071239"  # valid GB 11643 checksum
CARD = "6217001234567890122"  # valid Luhn


@pytest.mark.parametrize(
    ("text", "must_not_contain", "must_contain"),
    [
        (f"我叫张伟，身份证号{ID}，想咨询医保缴费。", [ID, "张伟"], ["张*", "医保缴费"]),
        ("联系电话13912345678，请尽快回电。", ["13912345678"], ["139****5678"]),
        (f"补贴请打到我的银行卡{CARD}。", [CARD], ["6217"]),
        ("我家住金安区梅山路18号5栋2单元302室，楼下噪音扰民。", ["302室"], ["梅山路", "噪音扰民"]),
        ("市民李四先生反映路灯不亮。", ["李四"], ["李*先生"]),
        ("联系人：欧阳娜娜，电话0564-3371234", ["欧阳娜娜", "3371234"], ["欧阳**"]),
        ("本人王小明，住在城南小区3号楼1单元101室", ["王小明", "101室"], ["王**"]),
    ],
)
def test_masking_realistic_messages(
    text: str, must_not_contain: list[str], must_contain: list[str]
) -> None:
    masked = mask_text(text)
    for value in must_not_contain:
        assert value not in masked
    for value in must_contain:
        assert value in masked


def test_invalid_checksums_are_left_alone() -> None:
    # Not an ID number (bad check digit) and not a card (bad Luhn): e.g. an order number.
    assert mask_text("订单号341501199003071230") == "订单号341501199003071230"


def test_the_citizens_own_name_is_masked_everywhere() -> None:
    assert mask_text("赵敏反映，赵敏的孩子入学问题", ["赵敏"]) == "赵*反映，赵*的孩子入学问题"


def test_words_after_an_introduction_that_are_not_names() -> None:
    assert detect_names("本人市民，反映问题") == []
    assert "政府" in mask_text("我是政府工作人员")  # 政 is not a common surname


def test_hostile_and_oversized_input() -> None:
    text = "<script>alert(1)</script>" + "王" * 20000 + "先生"
    masked = mask_text(text)
    assert masked.startswith("<script>")
    assert len(masked) == len(text)
