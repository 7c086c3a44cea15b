"""Checks on plain text: listed words (Aho-Corasick), leaders' names and titles, typos
and full-width/half-width punctuation mix-ups."""

from __future__ import annotations

import re
from collections.abc import Iterable

import ahocorasick

from publisher.checks.findings import Finding, Severity, context_snippet
from publisher.checks.lists import COMMON_TITLES, CheckLists, Leader

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_URLISH = re.compile(r"(?:https?://|www\.)[!-~]+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PUNCT_CANDIDATE = re.compile(r"[,;:?!().]")
_HALF_PUNCT = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！", "(": "（", ")": "）"}
_FULLWIDTH_ALNUM = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+")


class WordIndex:
    """One automaton over every listed word, name and typo; built once, reused per check."""

    def __init__(self, lists: CheckLists) -> None:
        self.lists = lists
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, list[tuple[str, str]]] = {}

        def add(word: str, kind: str, payload: str = "") -> None:
            word = word.strip()
            if word and (kind, payload) not in entries.get(word, []):
                entries.setdefault(word, []).append((kind, payload))

        for word in lists.banned_words:
            add(word, "banned")
        for word in lists.sensitive_words:
            add(word, "sensitive")
        for word in lists.allowed_words:
            add(word, "allowed")
        for wrong, right in lists.typos.items():
            if wrong.strip() and wrong.strip() != right.strip():
                add(wrong, "typo", right.strip())
        for leader in lists.leaders:
            add(leader.name, "leader")
        for word, payload in entries.items():
            self._automaton.add_word(word, (word, tuple(payload)))
        self.empty = not entries
        if not self.empty:
            self._automaton.make_automaton()
        self._leaders: dict[str, list[Leader]] = {}
        for leader in lists.leaders:
            self._leaders.setdefault(leader.name.strip(), []).append(leader)
        titles = set(COMMON_TITLES)
        for leader in lists.leaders:
            titles.update(_split_titles(leader.title))
        # Longest first, so "副市长" wins over "市长" next to a name.
        self._titles = sorted((t for t in titles if t), key=len, reverse=True)
        # Who currently holds each listed title ("副市长" is held by a "常务副市长" too).
        listed = {
            t for leader in lists.leaders if leader.current for t in _split_titles(leader.title)
        }
        self._holders: dict[str, list[str]] = {}
        for title in listed:
            self._holders[title] = [
                leader.name.strip()
                for leader in lists.leaders
                if leader.current
                and any(_title_fits(title, held) for held in _split_titles(leader.title))
            ]
        # Every known title is a token, so "代市长" is not read as "市长".
        self._title_re = (
            re.compile("|".join(re.escape(t) for t in self._titles)) if listed else None
        )

    def matches(self, text: str) -> Iterable[tuple[int, int, str, tuple[tuple[str, str], ...]]]:
        """``(start, end, word, [(kind, payload)])`` for every listed word in ``text``."""
        if self.empty:
            return
        for last, (word, payload) in self._automaton.iter(text):
            yield last - len(word) + 1, last + 1, word, payload

    def check(self, text: str, field: str) -> list[Finding]:
        """Listed-word, typo and leader findings in one pass over ``text``."""
        findings: list[Finding] = []
        found = list(self.matches(text))
        names = [(s, e) for s, e, _, payload in found if any(k == "leader" for k, _ in payload)]
        allowed = [(s, e) for s, e, _, payload in found if any(k == "allowed" for k, _ in payload)]
        for start, end, word, payload in found:
            excepted = any(s <= start and end <= e for s, e in allowed)
            for kind, extra in payload:
                if excepted and kind in ("banned", "sensitive"):
                    continue  # inside a word the office lists as an exception
                if kind == "leader" and any(
                    s <= start and end <= e and (s, e) != (start, end) for s, e in names
                ):
                    # "张建" inside "张建国": the longest listed name at a place wins.
                    continue
                if kind == "banned":
                    findings.append(
                        _finding(
                            "banned_word",
                            Severity.ERROR,
                            text,
                            field,
                            start,
                            end,
                            f"含有禁用词“{word}”",
                            f"Banned word '{word}'",
                        )
                    )
                elif kind == "sensitive":
                    findings.append(
                        _finding(
                            "sensitive_word",
                            Severity.WARNING,
                            text,
                            field,
                            start,
                            end,
                            f"含有敏感词“{word}”，请核实",
                            f"Sensitive word '{word}': verify",
                        )
                    )
                elif kind == "typo":
                    findings.append(
                        _finding(
                            "typo",
                            Severity.WARNING,
                            text,
                            field,
                            start,
                            end,
                            f"疑似错别字：“{word}”应为“{extra}”",
                            f"Likely typo: '{word}' should be '{extra}'",
                            extra,
                        )
                    )
                elif kind == "leader":
                    findings.extend(self._leader(text, field, start, end, word))
        findings.extend(self._unknown_holders(text, field))
        return findings

    def _unknown_holders(self, text: str, field: str) -> list[Finding]:
        """A listed title followed by a name that is not its holder ("市长李四" when the
        mayor is 张建国): a warning, as the name may be someone else's in another place."""
        if self._title_re is None:
            return []
        found: list[Finding] = []
        for m in self._title_re.finditer(text):
            used = m.group()
            holders = self._holders.get(used)
            if not holders:
                continue  # a title nobody on the list holds (or only a generic one)
            at = m.end()
            if any(text.startswith(name, at) for name in self._leaders):
                continue  # a listed name: the leader check judges it
            name = _name_at(text, at)
            if name is None:
                continue
            right = "、".join(holders)
            found.append(
                _finding(
                    "leader_name",
                    Severity.WARNING,
                    text,
                    field,
                    m.start(),
                    at + len(name),
                    f"领导姓名可能有误：现任{used}为{right}，文中为“{name}”",
                    f"Possibly wrong name: the {used} is {right}, not '{name}'",
                    right,
                )
            )
        return found

    def _title_before(self, text: str, start: int) -> str | None:
        for title in self._titles:
            if text.endswith(title, 0, start):
                return title
        return None

    def _title_after(self, text: str, end: int) -> str | None:
        for title in self._titles:
            if text.startswith(title, end):
                return title
        return None

    def _leader(self, text: str, field: str, start: int, end: int, name: str) -> list[Finding]:
        holders = self._leaders.get(name, [])
        current = [t for h in holders if h.current for t in _split_titles(h.title)]
        former = [t for h in holders if not h.current for t in _split_titles(h.title)]
        found: list[Finding] = []
        before = self._title_before(text, start)
        after = self._title_after(text, end)
        spans = []
        if before is not None:
            spans.append((before, start - len(before), end))
        if after is not None:
            spans.append((after, start, end + len(after)))
        # The name alone, in another context, says nothing about a post: not flagged.
        for used, t_start, t_end in spans:
            if any(_title_fits(used, title) for title in current):
                continue
            if current:
                right = "、".join(h.title for h in holders if h.current)
                found.append(
                    _finding(
                        "leader_title",
                        Severity.ERROR,
                        text,
                        field,
                        t_start,
                        t_end,
                        f"领导职务有误：{name}现任{right}，文中称“{used}”",
                        f"Wrong title: {name} is {right}, not '{used}'",
                        right,
                    )
                )
            elif any(_title_fits(used, title) for title in former):
                found.append(
                    _finding(
                        "leader_former",
                        Severity.ERROR,
                        text,
                        field,
                        t_start,
                        t_end,
                        f"{name}已不再担任{used}，请核实职务",
                        f"{name} no longer holds the post '{used}'",
                    )
                )
        return found


# Common single-character surnames (prepositions such as 于, 向, 和 are left out: "市长于会上
# 强调" is no name). Only a title followed by one of these is read as "title + name".
_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余杜叶程"
    "魏苏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方邹熊白孟秦邱侯江尹薛闫段雷黎史龙陶贺顾"
    "毛郝龚邵万钱严覃武戴莫孔汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿"
    "关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙"
    "鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏"
    "席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻"
    "苑迟邝高任"
)
# Characters that start what follows a name ("李四出席", "李四同志"): a name ends before them.
_AFTER_NAME = frozenset(
    '出主指强表讲调参会到带率一等和与同及的在是为说看走检视察慰问陪作了向对代今昨前近也就再还将已于、，。；：,;:（(“"'
)
# Words after a title that begin with a surname character but are no name.
_NOT_NAMES = frozenset(
    {
        "高度",
        "高兴",
        "任期",
        "任内",
        "任上",
        "常说",
        "方面",
        "明确",
        "时间",
        "全面",
        "应当",
        "安排",
        "关心",
        "关注",
        "包括",
        "文件",
        "信箱",
        "热线",
        "办公",
        "助理",
        "成员",
        "司机",
        "秘书",
    }
)


def _name_at(text: str, at: int) -> str | None:
    """A 2-3 character personal name starting at ``text[at]``, if one plausibly does."""
    if at >= len(text) or text[at] not in _SURNAMES:
        return None
    two = text[at : at + 2]
    if len(two) < 2 or not _CJK.match(two[1]) or two in _NOT_NAMES:
        return None
    third = text[at + 2 : at + 3]
    if third and _CJK.match(third) and third not in _AFTER_NAME:
        return text[at : at + 3]
    return two


def _split_titles(title: str) -> list[str]:
    return [t.strip() for t in re.split(r"[、，,/ ]+", title) if t.strip()]


def _title_fits(used: str, title: str) -> bool:
    """ "副市长" fits "常务副市长"; "市长" does not fit "副市长"."""
    if used == title:
        return True
    if not title.endswith(used):
        return False
    rest = title[: len(title) - len(used)]
    return not rest.endswith(("副", "代"))


def _finding(
    code: str,
    severity: Severity,
    text: str,
    field: str,
    start: int,
    end: int,
    message: str,
    message_en: str,
    suggestion: str = "",
) -> Finding:
    return Finding(
        code=code,
        severity=severity,
        field=field,
        start=start,
        end=end,
        snippet=context_snippet(text, start, end),
        message=message,
        message_en=message_en,
        suggestion=suggestion,
    )


def punctuation_findings(text: str, field: str) -> list[Finding]:
    """Half-width punctuation inside Chinese text, and full-width letters or digits."""
    if not _CJK.search(text):
        return []
    skip = [(m.start(), m.end()) for m in _URLISH.finditer(text)]
    findings: list[Finding] = []
    for m in _PUNCT_CANDIDATE.finditer(text):
        i, ch = m.start(), m.group()
        full = _HALF_PUNCT.get(ch)
        if any(a <= i < b for a, b in skip):
            continue
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if ch == ".":
            # A full stop written as "." right after Chinese text; "3.5" and "Co." stay.
            if _CJK.match(before) and not after.isdigit():
                findings.append(
                    _finding(
                        "punctuation",
                        Severity.WARNING,
                        text,
                        field,
                        i,
                        i + 1,
                        "中文语句中使用了半角句点“.”，应为“。”",
                        "Half-width '.' in Chinese text; use '。'",
                        "。",
                    )
                )
            continue
        if ch in "()":
            # Parentheses around or next to Chinese text: "（试行）".
            inner = text[i + 1] if ch == "(" else before
            if not (_CJK.match(inner or "") or _CJK.match(before if ch == "(" else after)):
                continue
        elif not (_CJK.match(before) or _CJK.match(after)):
            continue  # "9:00", "1,000", English text
        findings.append(
            _finding(
                "punctuation",
                Severity.WARNING,
                text,
                field,
                i,
                i + 1,
                f"中文语句中使用了半角标点“{ch}”，应为“{full}”",
                f"Half-width '{ch}' in Chinese text; use '{full}'",
                full or "",
            )
        )
    for m in _FULLWIDTH_ALNUM.finditer(text):
        half = "".join(chr(ord(c) - 0xFEE0) for c in m.group())
        findings.append(
            _finding(
                "fullwidth_alnum",
                Severity.WARNING,
                text,
                field,
                m.start(),
                m.end(),
                f"使用了全角字母或数字“{m.group()}”，应为“{half}”",
                f"Full-width letters/digits '{m.group()}'; use '{half}'",
                half,
            )
        )
    return findings
