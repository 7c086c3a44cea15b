"""Answers for comments from the WeChat bot's own matching: the keyword rules (the same
``RuleCache.find`` the WeChat callback uses) and then the website's corpus search (the
same ``website.search.search`` with the same query cut as the bot).

Whether an answer goes out without a person is the office's choice: a keyword rule only if
its id is in ``[comments] auto_answer_rules``; a search hit only with
``[comments] weibo_search_answers``. Anything else is a suggestion for staff.

Replies are plain text fitted to the platform's limit (Weibo comments: 140 characters):
titles and staff text are never HTML-escaped (Weibo shows text literally), control
characters are dropped, and the citizen's own words are never quoted back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.keywords import RuleCache
from bot.router import NewsReply, TextReply
from publisher.db import Database

log = logging.getLogger("govcast.bot.comments")

WEIBO_LIMIT = 140
# The WeChat bot cuts search queries to this many characters (bot.handlers.MAX_QUERY).
SEARCH_QUERY = 30
# Shorter comments ("支持", "谢谢", "通知") hit almost any notice: never answered by search.
SEARCH_MIN_TEXT = 4
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_URL = re.compile(r"https?://[^\s<>\"'\u3000-\u303f\uff00-\uffef]+")
SEE_ALSO = {"zh": "请参阅《{title}》：{url}", "en": 'See "{title}": {url}'}

Search = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Answer:
    """An answer to one comment: where it came from, its text, and whether it may be posted
    without a person."""

    source: str  # "rule" | "search"
    text: str
    automatic: bool
    rule_id: int | None = None
    publication_id: int | None = None


def plain(value: object, limit: int = 2000) -> str:
    """Text made safe to post: control and direction-override characters removed, spaces
    collapsed (pure)."""
    if not isinstance(value, str):
        return ""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def fit(text: str, limit: int = WEIBO_LIMIT, url: str = "") -> str:
    """``text`` (and ``url`` after it) within ``limit`` characters; the link is kept whole
    and the words are cut with an ellipsis; "" if even the link does not fit (pure)."""
    body, link = plain(text), plain(url, 1000)
    if not link:
        found = _URL.search(body)
        if found is None or len(body) <= limit:
            return body if len(body) <= limit else body[: limit - 1] + "…"
        # A staff reply longer than a comment: keep its first link whole, cut the words.
        link = found.group(0)
        body = " ".join((body[: found.start()] + body[found.end() :]).split())
    if len(link) > limit:
        return ""
    joined = f"{body} {link}" if body else link
    if len(joined) <= limit:
        return joined
    room = limit - len(link) - 1
    if room < 2:
        return link
    return f"{body[: room - 1]}… {link}"


def see_also(title: str, url: str, limit: int = WEIBO_LIMIT, language: str = "zh") -> str:
    """ "请参阅《title》：url" within ``limit``, the title shortened if needed (pure)."""
    template = SEE_ALSO.get(language, SEE_ALSO["zh"])
    link = plain(url, 1000)
    name = plain(title, 200)
    fixed = len(template.format(title="", url=link))
    if fixed > limit:
        return ""
    room = limit - fixed
    if len(name) > room:
        name = name[: max(0, room - 1)] + "…"
    return template.format(title=name, url=link)


def absolute(base_url: str, url: str) -> str:
    """A site-relative address made absolute against the public website (pure)."""
    return base_url.rstrip("/") + url if url.startswith("/") else url


class Answerer:
    """Finds the answer to a comment the way the WeChat bot answers a message."""

    def __init__(
        self,
        db: Database,
        rules: RuleCache,
        *,
        base_url: str,
        auto_rules: Collection[int] = (),
        search_automatic: bool = False,
        limit: int = WEIBO_LIMIT,
        language: str = "zh",
        search: Search | None = None,
    ) -> None:
        self.db = db
        self.rules = rules
        self.base_url = base_url
        self.auto_rules = frozenset(auto_rules)
        self.search_automatic = search_automatic
        self.limit = limit
        self.language = language
        self._search = search

    async def find(self, account: str, text: str, now: datetime | None = None) -> Answer | None:
        """The rule answering ``text`` (as WeChat would), else the best published item."""
        rule = await self.rules.find(account, text, now)
        if rule is not None:
            reply = self._rule_text(rule.reply)
            if reply:
                # A rule the office keeps manual is a suggestion; search must not pre-empt it.
                return Answer("rule", reply, rule.id in self.auto_rules, rule_id=rule.id)
        return await self._search_answer(text)

    def _rule_text(self, reply: object) -> str:
        if isinstance(reply, TextReply):
            return fit(reply.content, self.limit)
        if isinstance(reply, NewsReply) and reply.articles:
            first = reply.articles[0]
            return see_also(
                first.title, absolute(self.base_url, first.url), self.limit, self.language
            )
        return ""

    async def _search_answer(self, text: str) -> Answer | None:
        query = text.strip()[:SEARCH_QUERY]
        if len(query) < SEARCH_MIN_TEXT:
            return None
        search = self._search
        if search is None:
            from website.search import search as website_search

            search = website_search
        try:
            results = await search(self.db, query, limit=1)
        except Exception as error:  # the index is a convenience: the comment becomes a case
            # Only the error's type: its message may carry the query, i.e. the citizen's words.
            log.warning("comment answer search failed", extra={"error": type(error).__name__})
            return None
        items = list(getattr(results, "items", []))
        if not items:
            return None
        hit = items[0]
        reply = see_also(
            str(hit.title), absolute(self.base_url, str(hit.url)), self.limit, self.language
        )
        if not reply:
            return None
        return Answer(
            "search", reply, self.search_automatic, publication_id=int(hit.publication_id)
        )
