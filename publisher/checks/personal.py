"""Personal data in text: ID numbers, mobile and landline phone numbers, bank card
numbers and home addresses; found with validation (GB 11643 checksum, Luhn) and masked.

Used by the content checks and by the cases package to mask answers before they are
published. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from publisher.checks.findings import Finding, Severity, context_snippet

# GB 11643-1999: weights of the first 17 digits and the check character for sum % 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Boundaries: a digit run that is part of a longer run (or of a code mixing letters and
# digits, such as a unified social credit code or an index number) is not a match.
_ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])")
_MOBILE_RE = re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?![0-9A-Za-z])")
# A landline needs its area code set apart ("0564-3371234", "(0564)3371234",
# "（0564）3371234"): a bare 11-12 digit run is too ambiguous to call a phone number.
_LANDLINE_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:0\d{2,3}-|[(（]0\d{2,3}[)）]\s?)[2-9]\d{6,7}(?:-\d{1,5})?(?![0-9A-Za-z])"
)
_CARD_RE = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){15,18}(?![0-9A-Za-z])")
# A home address: a road, street, village or housing estate followed by a building,
# unit or room number. Office addresses ("人民路1号") carry no unit or room and are
# deliberately not matched.
_ADDRESS_RE = re.compile(
    r"[\u4e00-\u9fa5]{1,12}?(?:路|街|巷|大道|大街|村|小区|花园|家园|新村|公寓|苑|里)"
    r"(?:[\u4e00-\u9fa5]{0,6}?\d+号(?:院)?)?"
    r"(?:\d+(?:栋|幢|号楼|座))?(?:\d+单元)?(?:\d+(?:层|楼))?(?:\d+(?:室|户|号房))?"
)
_UNIT_MARKERS = ("栋", "幢", "号楼", "单元", "室", "户", "号房")
# Words that introduce an address are not part of it.
_ADDRESS_LEAD = re.compile(r"^.*?(?:住址|地址|家住|住在|居住于|居住在|现住|户籍)[为是在：:]?")


@dataclass(frozen=True)
class PersonalMatch:
    """A piece of personal data at ``text[start:end]``."""

    kind: str  # id_number | mobile | landline | bank_card | address
    start: int
    end: int
    value: str


KIND_NAMES = {
    "id_number": ("身份证号码", "ID card number"),
    "mobile": ("手机号码", "mobile phone number"),
    "landline": ("固定电话号码", "landline phone number"),
    "bank_card": ("银行卡号", "bank card number"),
    "address": ("详细住址", "home address"),
}
# Landlines are mostly office numbers printed for the public: a warning, not a block.
DEFAULT_SEVERITY = {
    "id_number": Severity.ERROR,
    "mobile": Severity.ERROR,
    "landline": Severity.WARNING,
    "bank_card": Severity.ERROR,
    "address": Severity.ERROR,
}
# When two detectors claim overlapping text, the more specific one wins.
_PRIORITY = ("id_number", "bank_card", "mobile", "landline", "address")


def valid_id_number(value: str) -> bool:
    """An 18-character resident ID number with a real birth date and a correct check digit."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born.year < 1900:
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by bank card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def find_personal_matches(text: str) -> list[PersonalMatch]:
    """Every piece of personal data in ``text``, in order, without overlaps."""
    found: dict[str, list[PersonalMatch]] = {k: [] for k in _PRIORITY}
    for m in _ID_RE.finditer(text):
        if valid_id_number(m.group()):
            found["id_number"].append(PersonalMatch("id_number", m.start(), m.end(), m.group()))
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 16 <= len(digits) <= 19 and luhn_valid(digits) and not valid_id_number(digits):
            found["bank_card"].append(PersonalMatch("bank_card", m.start(), m.end(), m.group()))
    for m in _MOBILE_RE.finditer(text):
        found["mobile"].append(PersonalMatch("mobile", m.start(), m.end(), m.group()))
    for m in _LANDLINE_RE.finditer(text):
        found["landline"].append(PersonalMatch("landline", m.start(), m.end(), m.group()))
    for m in _ADDRESS_RE.finditer(text):
        if any(marker in m.group() for marker in _UNIT_MARKERS):
            lead = _ADDRESS_LEAD.match(m.group())
            start = m.start() + (lead.end() if lead else 0)
            if m.end() - start >= 4:
                found["address"].append(
                    PersonalMatch("address", start, m.end(), text[start : m.end()])
                )
    kept: list[PersonalMatch] = []
    for kind in _PRIORITY:
        for match in found[kind]:
            if not any(match.start < k.end and k.start < match.end for k in kept):
                kept.append(match)
    return sorted(kept, key=lambda p: p.start)


def mask_value(kind: str, value: str) -> str:
    """The masked form of one value; separators and length are kept."""
    if kind == "address":
        return re.sub(r"\d", "*", value)
    positions = [i for i, ch in enumerate(value) if ch.isdigit() or ch in "Xx"]
    if kind == "mobile":
        # Keep a +86 prefix readable: the 11 digits of the number itself count.
        positions = positions[-11:]
        keep_head, keep_tail = 3, 4
    elif kind == "id_number":
        keep_head, keep_tail = 4, 4
    elif kind == "bank_card":
        keep_head, keep_tail = 4, 4
    else:  # landline: the area code stays, then all but the last 2 digits
        digits_after_code = re.search(r"[-)）]\s?(\d+)", value)
        start = digits_after_code.start(1) if digits_after_code else 0
        positions = [i for i in positions if i >= start]
        keep_head, keep_tail = 0, 2
    hidden = positions[keep_head : len(positions) - keep_tail]
    chars = list(value)
    for i in hidden:
        chars[i] = "*"
    return "".join(chars)


def mask_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Mask ``(start, end, kind)`` spans of ``text`` (position-based masking)."""
    out: list[str] = []
    last = 0
    for start, end, kind in sorted(spans):
        if start < last or end > len(text) or start < 0:
            continue  # overlapping or stale span: never corrupt the text
        out.append(text[last:start])
        out.append(mask_value(kind, text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def mask_personal_data(text: str) -> str:
    """``text`` with every piece of personal data masked (one-click masking)."""
    return mask_spans(text, [(m.start, m.end, m.kind) for m in find_personal_matches(text)])


def find_personal_data(
    text: str, field: str = "text", severities: dict[str, Severity] | None = None
) -> list[Finding]:
    """Findings for every piece of personal data in ``text`` (``field`` names the text)."""
    grade = {**DEFAULT_SEVERITY, **(severities or {})}
    findings = []
    for m in find_personal_matches(text):
        zh, en = KIND_NAMES[m.kind]
        findings.append(
            Finding(
                code=f"personal_{m.kind}",
                severity=grade[m.kind],
                field=field,
                start=m.start,
                end=m.end,
                snippet=context_snippet(text, m.start, m.end),
                message=f"疑似公开了个人信息（{zh}），请脱敏处理",
                message_en=f"Possible personal data ({en}); mask it",
                suggestion=mask_value(m.kind, m.value),
            )
        )
    return findings
