"""Masking of personal data in citizens' questions and answers before publication.

ID numbers (GB 11643 checksum), phone numbers, bank cards (Luhn) and home addresses come
from the compliance engineer's detectors in ``publisher.checks.personal``; this module adds
personal names, which need context: names the citizen gave, and names introduced by
"我叫 / 本人 / 姓名" or followed by a title (先生, 女士 ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from publisher.checks.personal import mask_personal_data

# Common single-character surnames (the ~100 most frequent cover most of the population).
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_SURNAME_SET = frozenset(_SURNAMES)
_COMPOUND = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "令狐", "慕容", "尉迟", "长孙")
_NAME_BODY = r"[\u4e00-\u9fa5]{1,2}"
_INTRO_RE = re.compile(
    r"(?:我叫|我是|本人|姓名[：:]?|联系人[：:]?|举报人[：:]?|投诉人[：:]?|户主)\s?"
    r"((?:" + "|".join(_COMPOUND) + r")[\u4e00-\u9fa5]{1,2}|[\u4e00-\u9fa5]" + _NAME_BODY + ")"
)
_TITLE_RE = re.compile(r"先生|女士|同志|老师|师傅|阿姨|大爷|大妈")
# Building, unit and room numbers the address detector can miss ("小区3号楼1单元101室").
_UNIT_RE = re.compile(r"\d+(?=号楼|栋|幢|单元|室|户|号房)")
# Words that look like "surname + 1-2 characters" after an intro but are not names.
_NOT_NAMES = (
    "市民",
    "居民",
    "村民",
    "业主",
    "家长",
    "学生",
    "患者",
    "群众",
    "网友",
    "一名",
    "一位",
)


def _mask_name(name: str) -> str:
    """Keep the surname: 张三 -> 张*, 欧阳娜娜 -> 欧阳**."""
    surname = next((c for c in _COMPOUND if name.startswith(c)), name[:1])
    return surname + "*" * (len(name) - len(surname))


def detect_names(text: str) -> list[str]:
    """Personal names found by context (introductions and forms of address)."""
    found: list[str] = []
    for m in _INTRO_RE.finditer(text):
        name = m.group(1)
        if name[:1] in _SURNAME_SET or name.startswith(_COMPOUND):
            if not any(name.startswith(w) for w in _NOT_NAMES):
                found.append(name)
    return found


def mask_text(text: str, names: Iterable[str] = ()) -> str:
    """``text`` with ID numbers, phones, bank cards, addresses and names masked."""
    masked = _UNIT_RE.sub(lambda m: "*" * len(m.group()), mask_personal_data(text))
    wanted = {n.strip() for n in names if n and 2 <= len(n.strip()) <= 6}
    wanted.update(detect_names(masked))
    # Longest first, so "欧阳娜娜" is masked before a shorter overlapping name.
    for name in sorted(wanted, key=len, reverse=True):
        masked = masked.replace(name, _mask_name(name))

    return _mask_titled(masked)


def _mask_titled(text: str) -> str:
    # "李四先生" -> "李*先生": look back from each form of address for a surname two or
    # one characters before it; "王先生" (surname only) carries no given name to hide.
    chars = list(text)
    for m in _TITLE_RE.finditer(text):
        at = m.start()
        for width in (2, 1):
            start = at - width - 1
            if start < 0:
                continue
            if chars[start] in _SURNAME_SET and all(
                "\u4e00" <= c <= "\u9fa5" for c in chars[start + 1 : at]
            ):
                for i in range(start + 1, at):
                    chars[i] = "*"
                break
    return "".join(chars)
