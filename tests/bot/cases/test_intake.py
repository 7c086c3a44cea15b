"""The WeChat guided intake conversation, as a pure state machine."""

from __future__ import annotations

from bot.cases import intake
from bot.cases.intake import (
    CreateCase,
    CreateOpinion,
    ListMine,
    NotMine,
    Rate,
    Say,
    ShowStatus,
    StartOpinion,
    step,
)


def run(*messages: str) -> tuple[dict[str, object], object]:
    state: dict[str, object] = {}
    action: object = None
    for message in messages:
        outcome = step(state, message)
        state, action = outcome.state, outcome.action
    return state, action


def test_full_intake() -> None:
    state, action = run("留言", "2", "小区门口的路灯坏了一个月", "1")
    assert state == {}
    assert action == CreateCase(kind="complaint", text="小区门口的路灯坏了一个月", consent=True)


def test_menu_key_starts_and_consent_can_be_refused() -> None:
    outcome = step({}, "", menu_key=intake.MENU_KEY)
    assert outcome.state == {"step": "kind"}
    _, action = run("留言", "咨询", "请问医保什么时候缴费？", "不同意")
    assert action == CreateCase(kind="consultation", text="请问医保什么时候缴费？", consent=False)


def test_wrong_answers_repeat_the_question() -> None:
    state, action = run("留言", "9")
    assert state == {"step": "kind"} and isinstance(action, Say)
    state, action = run("留言", "1", "短")
    assert state == {"step": "text", "kind": "consultation"} and isinstance(action, Say)
    state, action = run("留言", "1", "x" * 5000)
    assert state["step"] == "text"
    state, action = run("留言", "1", "请问办事大厅几点开门", "maybe")
    assert state["step"] == "consent" and isinstance(action, Say)


def test_cancel() -> None:
    state, action = run("留言", "1", "取消")
    assert state == {} and action == Say(intake.CANCELLED)


def test_one_shot_commands() -> None:
    assert run("我的留言")[1] == ListMine()
    assert run(" gc20261128-0042 ")[1] == ShowStatus("GC20261128-0042")
    assert run("评价 5")[1] == Rate(5)
    assert run("评价 9")[1] == NotMine()
    assert run("意见 12")[1] == StartOpinion(12)
    assert run("天气怎么样")[1] == NotMine()


def test_opinion_conversation() -> None:
    outcome = step({"step": "opinion", "publication_id": 12}, "建议延长公示时间到六十天")
    assert outcome.action == CreateOpinion(12, "建议延长公示时间到六十天")
    assert outcome.state == {}


def test_start_word_inside_a_conversation_is_text() -> None:
    # "留言" typed as the text of an ongoing intake is too short, not a restart.
    state, _ = run("留言", "1", "留言")
    assert state["step"] == "text"


def test_is_command_is_cheap_and_exact() -> None:
    assert intake.is_command("留言") and intake.is_command("GC20261128-0001")
    assert intake.is_command("评价 3") and intake.is_command("我的留言")
    assert not intake.is_command("医保怎么缴费") and not intake.is_command("")
    assert not intake.is_command("留言" * 30)
