"""The WeChat guided intake as a pure state machine: 留言 (or the menu key) -> type ->
text -> consent -> a case. Also opinions on a solicitation (意见 <id> -> text).

``step(state, text)`` takes the stored conversation state (a dict, empty when idle) and the
citizen's message, and returns the next state and what to do. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.cases.models import CaseKind

START_WORDS = frozenset({"留言", "我要留言", "咨询投诉", "leave a message"})
MENU_KEY = "leave_message"
MY_CASES_WORDS = frozenset({"我的留言", "我的案件", "查询留言", "my cases"})
CANCEL_WORDS = frozenset({"取消", "退出", "cancel"})
CASE_NUMBER_RE = re.compile(r"^\s*(GC\d{8}-(?:\d{1,6}-)?\d{4,6})\s*$", re.IGNORECASE)
RATE_RE = re.compile(r"^\s*评价\s*([1-5])\s*$")
OPINION_RE = re.compile(r"^\s*意见\s*(\d{1,12})\s*$")
MIN_TEXT, MAX_TEXT = 5, 2000
# A conversation idle for longer than this is forgotten (stored as its last update time).
IDLE_SECONDS = 30 * 60

KIND_CHOICES = {
    "1": CaseKind.CONSULTATION,
    "咨询": CaseKind.CONSULTATION,
    "2": CaseKind.COMPLAINT,
    "投诉": CaseKind.COMPLAINT,
    "3": CaseKind.SUGGESTION,
    "建议": CaseKind.SUGGESTION,
    "4": CaseKind.HELP,
    "求助": CaseKind.HELP,
}
YES = frozenset({"1", "是", "同意", "可以", "yes", "y"})
NO = frozenset({"2", "否", "不同意", "不", "no", "n"})

ASK_KIND = (
    "请选择留言类型，回复数字：\n1 咨询\n2 投诉\n3 建议\n4 求助\n"
    "Choose a type: 1 consultation, 2 complaint, 3 suggestion, 4 help. 回复“取消”退出。"
)
ASK_TEXT = (
    f"请用一条消息写下您的具体内容（{MIN_TEXT}-{MAX_TEXT}字），勿填写身份证号等敏感信息。"
    "Please describe it in one message."
)
ASK_CONSENT = (
    "答复后是否同意将您的留言和答复（隐去个人信息）公开？回复 1 同意，2 不同意。"
    "May we publish it with the answer (personal data masked)? 1 yes, 2 no."
)
CANCELLED = "已取消。Cancelled."


@dataclass(frozen=True)
class Say:
    """Reply with this text; nothing else happens."""

    text: str


@dataclass(frozen=True)
class CreateCase:
    """Create the case from the collected answers."""

    kind: str
    text: str
    consent: bool


@dataclass(frozen=True)
class CreateOpinion:
    """Record an opinion on a solicitation."""

    publication_id: int
    text: str


@dataclass(frozen=True)
class ShowStatus:
    """Show the status of one case number (only if it belongs to this citizen)."""

    number: str


@dataclass(frozen=True)
class ListMine:
    """List this citizen's cases."""


@dataclass(frozen=True)
class Rate:
    """Rate the citizen's latest replied case."""

    rating: int


@dataclass(frozen=True)
class StartOpinion:
    """Check the solicitation is open, then ask for the opinion."""

    publication_id: int


@dataclass(frozen=True)
class NotMine:
    """Not a cases message: let the next handler (keywords, search) have it."""


Action = Say | CreateCase | CreateOpinion | ShowStatus | ListMine | Rate | StartOpinion | NotMine


@dataclass(frozen=True)
class Outcome:
    state: dict[str, Any] = field(default_factory=dict)
    action: Action = field(default_factory=NotMine)


def step(state: dict[str, Any], text: str, *, menu_key: str = "") -> Outcome:
    """The next conversation state and action for one incoming message."""
    message = (text or "").strip()
    lowered = message.lower()
    current = state.get("step", "")
    if menu_key == MENU_KEY or (not current and lowered in START_WORDS):
        return Outcome({"step": "kind"}, Say(ASK_KIND))
    if current and lowered in CANCEL_WORDS:
        return Outcome({}, Say(CANCELLED))
    if current == "kind":
        kind = KIND_CHOICES.get(message)
        if kind is None:
            return Outcome(state, Say("请回复 1-4 选择类型。Reply 1-4.\n" + ASK_KIND))
        return Outcome({"step": "text", "kind": kind.value}, Say(ASK_TEXT))
    if current == "text":
        if len(message) < MIN_TEXT or len(message) > MAX_TEXT:
            return Outcome(state, Say(f"内容需 {MIN_TEXT}-{MAX_TEXT} 字。" + ASK_TEXT))
        return Outcome({**state, "step": "consent", "text": message}, Say(ASK_CONSENT))
    if current == "consent":
        if lowered in YES or lowered in NO:
            return Outcome(
                {}, CreateCase(kind=state["kind"], text=state["text"], consent=lowered in YES)
            )
        return Outcome(state, Say(ASK_CONSENT))
    if current == "opinion":
        if len(message) < MIN_TEXT or len(message) > MAX_TEXT:
            return Outcome(state, Say(f"意见需 {MIN_TEXT}-{MAX_TEXT} 字，请重新发送。"))
        return Outcome({}, CreateOpinion(int(state["publication_id"]), message))
    # Idle: one-shot commands.
    if lowered in MY_CASES_WORDS:
        return Outcome({}, ListMine())
    number = CASE_NUMBER_RE.match(message)
    if number:
        return Outcome({}, ShowStatus(number.group(1).upper()))
    rating = RATE_RE.match(message)
    if rating:
        return Outcome({}, Rate(int(rating.group(1))))
    opinion = OPINION_RE.match(message)
    if opinion:
        return Outcome({}, StartOpinion(int(opinion.group(1))))
    return Outcome(state, NotMine())


def is_command(text: str) -> bool:
    """Whether an idle citizen's message is for the cases router (pure, cheap)."""
    message = (text or "").strip()
    if len(message) > 40:
        return False
    lowered = message.lower()
    return (
        lowered in START_WORDS
        or lowered in MY_CASES_WORDS
        or bool(CASE_NUMBER_RE.match(message) or RATE_RE.match(message))
        or bool(OPINION_RE.match(message))
    )


def opinion_prompt(title: str) -> str:
    """Ask for the opinion on a solicitation."""
    return (
        f"正在征集意见：《{title[:60]}》。请用一条消息发送您的意见。"
        "Send your opinion in one message."
    )
