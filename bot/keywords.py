"""Keyword rules managed by staff: exact / contains / regular expression, with priority and
validity dates. The WeChat console's own auto-reply stops once a callback is set.

Rules are read from the database at most every ``[bot] keyword_cache_seconds`` per process
(the hot path matches in memory). Priority: the lowest number wins, then the oldest rule.

Staff-written regular expressions are bounded so a pattern cannot stall the bot: at most
100 characters, no backreferences or look-arounds, no quantified group that itself
contains a quantifier (``(a+)+``, ``(a|aa)*`` — the shapes of catastrophic backtracking),
and matched against at most the first 200 characters of a message.
"""

from __future__ import annotations

import asyncio
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import KeywordRule
from bot.router import Article, NewsReply, Reply, TextReply
from publisher.db import Database

MATCH_KINDS = ("exact", "contains", "regex")
MAX_PATTERN = 200
MAX_REGEX = 100
MAX_TEXT = 200
MAX_REPLY_TEXT = 2000


class RuleError(ValueError):
    """A keyword rule staff cannot save, with the reason in Chinese."""


def normalize(text: str) -> str:
    """Full-width to half-width, case-folded, trimmed: how rules and messages compare."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


_QUANT = r"(?:[*+?]|\{\d*,?\d*\})"
_FORBIDDEN = re.compile(r"\\[1-9]|\\g|\(\?(?!:)|\(\?P")


def compile_rule_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a staff-written regular expression, refusing the dangerous shapes."""
    if not pattern or len(pattern) > MAX_REGEX:
        raise RuleError(f"正则表达式长度须为 1-{MAX_REGEX} 个字符")
    if _FORBIDDEN.search(pattern):
        raise RuleError("正则表达式不支持反向引用、环视或命名组")
    if _nested_quantifier(pattern):
        raise RuleError("正则表达式不得对含有重复的分组再次重复（如 (a+)+ ），以免匹配失控")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise RuleError(f"正则表达式无效：{exc}") from None


def _nested_quantifier(pattern: str) -> bool:
    # Walk the groups; a group whose body holds a quantifier or an alternation and which
    # is itself quantified can backtrack exponentially.
    stack: list[bool] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            end = pattern.find("]", i + 2)
            i = len(pattern) if end < 0 else end + 1
            if stack and re.match(_QUANT, pattern[i:]):
                stack[-1] = True
            continue
        if ch == "(":
            stack.append(False)
        elif ch == ")":
            inner = stack.pop() if stack else False
            if inner and re.match(_QUANT, pattern[i + 1 :]):
                return True
            if stack and (inner or re.match(_QUANT, pattern[i + 1 :])):
                stack[-1] = True
        elif ch == "|" and stack:
            stack[-1] = True
        elif stack and re.match(_QUANT, pattern[i:]) and i > 0:
            stack[-1] = True
        i += 1
    return False


def validate_news(items: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """1-8 articles with a title and an http(s) URL."""
    if not 1 <= len(items) <= 8:
        raise RuleError("图文回复须有 1-8 篇")
    out = []
    for item in items:
        title = str(item.get("title", "")).strip()
        url = str(item.get("url", "")).strip()
        if not title or len(title) > 64:
            raise RuleError("图文标题须为 1-64 个字符")
        if not re.match(r"^https?://\S+$", url) or len(url) > 1024:
            raise RuleError("图文链接须为 http(s) 地址")
        out.append(
            {
                "title": title,
                "url": url,
                "description": str(item.get("description", ""))[:120],
                "picurl": str(item.get("picurl", ""))[:1024],
            }
        )
    return out


def validate_rule(
    match: str,
    pattern: str,
    reply_text: str | None,
    reply_news: Sequence[Mapping[str, Any]] | None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> list[dict[str, str]] | None:
    """Check a rule before saving; returns the cleaned news items; RuleError if wrong."""
    if match not in MATCH_KINDS:
        raise RuleError("匹配方式须为 exact、contains 或 regex")
    if not pattern.strip() or len(pattern) > MAX_PATTERN:
        raise RuleError(f"关键词长度须为 1-{MAX_PATTERN} 个字符")
    if match == "regex":
        compile_rule_pattern(pattern)
    if bool(reply_text) == bool(reply_news):
        raise RuleError("须且只能设置文字回复或图文回复之一")
    if reply_text is not None and len(reply_text) > MAX_REPLY_TEXT:
        raise RuleError(f"文字回复不得超过 {MAX_REPLY_TEXT} 个字符")
    if valid_from and valid_to and valid_to <= valid_from:
        raise RuleError("有效期结束须晚于开始")
    return validate_news(reply_news) if reply_news else None


async def add_rule(
    session: AsyncSession,
    *,
    match: str,
    pattern: str,
    reply_text: str | None = None,
    reply_news: Sequence[Mapping[str, Any]] | None = None,
    priority: int = 100,
    account: str = "",
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    created_by: str = "",
    note: str = "",
) -> KeywordRule:
    """Validate and add a keyword rule (the caller commits)."""
    news = validate_rule(match, pattern, reply_text, reply_news, valid_from, valid_to)
    rule = KeywordRule(
        account=account,
        match=match,
        pattern=pattern.strip(),
        priority=priority,
        valid_from=valid_from,
        valid_to=valid_to,
        reply_text=reply_text or None,
        reply_news=news,
        enabled=True,
        created_by=created_by,
        note=note,
    )
    session.add(rule)
    await session.flush()
    return rule


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to match in memory."""

    id: int
    match: str
    needle: str
    regex: re.Pattern[str] | None
    valid_from: datetime | None
    valid_to: datetime | None
    reply: Reply

    def matches(self, text: str, now: datetime) -> bool:
        """Whether this rule answers ``text`` (already normalized) at ``now``."""
        if self.valid_from and now < self.valid_from:
            return False
        if self.valid_to and now >= self.valid_to:
            return False
        if self.match == "exact":
            return text == self.needle
        if self.match == "contains":
            return self.needle in text
        return self.regex is not None and self.regex.search(text[:MAX_TEXT]) is not None


def compile_rule(rule: KeywordRule) -> CompiledRule | None:
    """A stored rule compiled; None if it is (no longer) valid."""
    try:
        regex = compile_rule_pattern(rule.pattern) if rule.match == "regex" else None
    except RuleError:
        return None
    reply: Reply
    if rule.reply_news:
        try:
            news = validate_news(rule.reply_news)
        except RuleError:
            return None
        reply = NewsReply(tuple(Article(**item) for item in news))
    elif rule.reply_text:
        reply = TextReply(rule.reply_text)
    else:
        return None
    return CompiledRule(
        id=rule.id,
        match=rule.match,
        needle=normalize(rule.pattern),
        regex=regex,
        valid_from=rule.valid_from,
        valid_to=rule.valid_to,
        reply=reply,
    )


class RuleCache:
    """Each account's enabled rules, in priority order, reloaded every few seconds.

    One load at a time per account (single flight); while a reload runs, callers keep
    using the previous rules rather than piling onto the database.
    """

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._rules: dict[str, tuple[float, list[CompiledRule]]] = {}
        self._loading: dict[str, asyncio.Task[list[CompiledRule]]] = {}

    def invalidate(self) -> None:
        """Forget the cached rules (after staff changed them in this process)."""
        self._rules.clear()

    async def rules(self, account: str) -> list[CompiledRule]:
        """The account's rules, from memory when fresh."""
        cached = self._rules.get(account)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        task = self._loading.get(account)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(account))
            self._loading[account] = task
            task.add_done_callback(lambda _t: self._loading.pop(account, None))
        if cached:
            return cached[1]
        return await asyncio.shield(task)

    async def _load(self, account: str) -> list[CompiledRule]:
        started = time.monotonic()
        async with self.db.sessions() as session:
            rows = (
                await session.scalars(
                    select(KeywordRule)
                    .where(KeywordRule.enabled.is_(True))
                    .where(or_(KeywordRule.account == "", KeywordRule.account == account))
                    .order_by(KeywordRule.priority, KeywordRule.id)
                )
            ).all()
        compiled = [c for c in (compile_rule(r) for r in rows) if c is not None]
        self._rules[account] = (started, compiled)
        return compiled

    async def find(
        self, account: str, text: str, now: datetime | None = None
    ) -> CompiledRule | None:
        """The first rule answering ``text``, or None."""
        if not text:
            return None
        normalized = normalize(text)
        moment = now or datetime.now(UTC)
        for rule in await self.rules(account):
            if rule.matches(normalized, moment):
                return rule
        return None
