"""Running every content check over one publication: the entry point for the compose
page, the approval hook and the inspection of published items."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from publisher.checks.findings import Finding, Severity, apply_policy, context_snippet
from publisher.checks.lists import CheckLists
from publisher.checks.personal import find_personal_data
from publisher.checks.text import WordIndex, punctuation_findings
from publisher.markup import html_to_text, summary_limit

WECHAT_TITLE_LIMIT = 32
WEIBO_TEXT_LIMIT = 140
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT_ATTR = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_LINK_ATTR = re.compile(
    r"""<(a|img)\b[^>]*?\b(href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE
)
# Order in which fields are reported, as they appear on the compose page.
FIELD_ORDER = {"title": 0, "summary": 1, "body": 2, "body_html": 3, "channels": 4}


@dataclass(frozen=True)
class CheckSubject:
    """The parts of a publication the checks read."""

    title: str
    summary: str
    body_html: str
    channels: tuple[str, ...] | None = None  # None: unknown (e.g. a channel snapshot)


@dataclass(frozen=True)
class LinkRef:
    """A link or image address in the body, at ``body_html[start:end]``."""

    url: str
    kind: str  # link | image
    start: int
    end: int


def subject_of(obj: Any) -> CheckSubject:
    """A check subject from a PublicationInput, a Publication row or a snapshot."""
    if isinstance(obj, CheckSubject):
        return obj
    channels = getattr(obj, "channels", None)
    return CheckSubject(
        title=str(getattr(obj, "title", "") or ""),
        summary=str(getattr(obj, "summary", "") or ""),
        body_html=str(getattr(obj, "body_html", "") or ""),
        channels=tuple(channels) if channels is not None else None,
    )


def body_text(body_html: str) -> str:
    """The plain text the ``body`` field's offsets refer to."""
    return html_to_text(body_html)


def find_links(body_html: str) -> list[LinkRef]:
    """Every ``<a href>`` and ``<img src>`` address in the body HTML, with offsets."""
    refs = []
    for m in _LINK_ATTR.finditer(body_html):
        group = 3 if m.group(3) is not None else 4
        kind = "image" if m.group(1).lower() == "img" else "link"
        refs.append(LinkRef(m.group(group), kind, m.start(group), m.end(group)))
    return refs


def alt_text_findings(body_html: str) -> list[Finding]:
    """Images without a text alternative (GB/T 37668: non-text content has alt text)."""
    findings = []
    for m in _IMG_TAG.finditer(body_html):
        alt = _ALT_ATTR.search(m.group())
        value = next((g for g in alt.groups() if g is not None), "") if alt else ""
        if not value.strip():
            findings.append(
                Finding(
                    code="missing_alt",
                    severity=Severity.WARNING,
                    field="body_html",
                    start=m.start(),
                    end=m.end(),
                    snippet=m.group()[:120],
                    message="图片缺少替代文字（alt），请补充图片说明",
                    message_en="Image without alt text",
                )
            )
    return findings


def length_findings(subject: CheckSubject, text: str) -> list[Finding]:
    """The catalog's summary rule and the channels' title and text limits."""
    findings = []
    limit = summary_limit(len(text))
    if len(subject.summary) > limit:
        findings.append(
            Finding(
                code="summary_length",
                severity=Severity.ERROR,
                field="summary",
                start=limit,
                end=len(subject.summary),
                snippet=context_snippet(subject.summary, limit, len(subject.summary)),
                message=f"内容概述超过{limit}字（现{len(subject.summary)}字）",
                message_en=f"Summary longer than {limit} characters",
            )
        )
    targets = subject.channels or ()
    if any(t.split(":", 1)[0] == "wechat" for t in targets) and len(subject.title) > (
        WECHAT_TITLE_LIMIT
    ):
        findings.append(
            Finding(
                code="wechat_title_length",
                severity=Severity.ERROR,
                field="title",
                start=WECHAT_TITLE_LIMIT,
                end=len(subject.title),
                snippet=subject.title,
                message=f"微信图文标题不得超过{WECHAT_TITLE_LIMIT}字（现{len(subject.title)}字）",
                message_en=f"WeChat titles are limited to {WECHAT_TITLE_LIMIT} characters",
            )
        )
    if any(t.split(":", 1)[0] == "weibo" for t in targets):
        if len(subject.title) > WEIBO_TEXT_LIMIT:
            findings.append(
                Finding(
                    code="weibo_text_length",
                    severity=Severity.ERROR,
                    field="title",
                    start=WEIBO_TEXT_LIMIT,
                    end=len(subject.title),
                    snippet=subject.title,
                    message=f"微博正文不得超过{WEIBO_TEXT_LIMIT}字，标题已超出",
                    message_en=f"Weibo posts are limited to {WEIBO_TEXT_LIMIT} characters",
                )
            )
        elif len(subject.title) + len(subject.summary) > WEIBO_TEXT_LIMIT:
            findings.append(
                Finding(
                    code="weibo_text_length",
                    severity=Severity.WARNING,
                    field="summary",
                    start=max(0, WEIBO_TEXT_LIMIT - len(subject.title)),
                    end=len(subject.summary),
                    snippet=context_snippet(subject.summary, 0, 0, 30),
                    message=f"标题加概述超过微博{WEIBO_TEXT_LIMIT}字上限，微博中概述将被截断",
                    message_en="Title and summary exceed Weibo's limit; the post will be cut",
                )
            )
    return findings


class Checker:
    """The compiled lists (the automaton is built once) and the checks that use them."""

    def __init__(self, lists: CheckLists | None = None) -> None:
        self.lists = lists or CheckLists()
        self.words = WordIndex(self.lists)

    def check_text(self, text: str, field: str) -> list[Finding]:
        """Every text check over one plain-text field."""
        findings = self.words.check(text, field)
        findings.extend(find_personal_data(text, field))
        findings.extend(punctuation_findings(text, field))
        return findings

    def check(self, obj: Any) -> list[Finding]:
        """Every check that needs no network, graded by the configured severities."""
        subject = subject_of(obj)
        text = body_text(subject.body_html)
        findings = self.check_text(subject.title, "title")
        findings.extend(self.check_text(subject.summary, "summary"))
        findings.extend(self.check_text(text, "body"))
        findings.extend(alt_text_findings(subject.body_html))
        findings.extend(length_findings(subject, text))
        findings = apply_policy(findings, self.lists.severities)
        findings.sort(key=lambda f: (FIELD_ORDER.get(f.field, 9), f.start, f.code))
        return findings


def run_checks(obj: Any, lists: CheckLists | Checker | None = None) -> list[Finding]:
    """Check a PublicationInput, Publication or snapshot against the lists."""
    checker = lists if isinstance(lists, Checker) else Checker(lists)
    return checker.check(obj)
